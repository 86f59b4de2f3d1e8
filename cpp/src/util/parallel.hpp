// util/parallel.hpp — OpenMP helpers for the drivers (which pass num_threads explicitly).
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastconv::util {

/// Index of the calling thread within the current parallel region (0 outside one), used to
/// pick a thread's slice of a shared scratch buffer.
inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace fastconv::util
