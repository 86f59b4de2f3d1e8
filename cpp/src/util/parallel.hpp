// util/parallel.hpp — OpenMP helpers for the drivers (which pass num_threads explicitly).
#pragma once

#include <cstdint>

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

/// Threads worth starting for `work` units (multiply-adds, elements) when each thread should
/// get at least `grain` of them: between 1 and max_threads. Tiny calls then run serially and
/// never wait on a busy core for a team barrier.
inline int threads_for(int64_t work, int64_t grain, int max_threads) {
  const int64_t t = work / grain;
  return t < 1 ? 1 : (t < max_threads ? static_cast<int>(t) : max_threads);
}

}  // namespace fastconv::util
