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

/// Threads of the current parallel region (1 outside one).
inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

/// Elements between consecutive threads' slices of a shared scratch array holding `n` elements
/// of `elem_size` bytes per thread: rounded up to whole cache lines plus one line of gap, so no
/// two threads ever write to the same cache line (false sharing), whatever the base alignment.
inline int64_t scratch_stride(int64_t n, int64_t elem_size) {
  constexpr int64_t kLine = 64;
  const int64_t bytes = (n * elem_size + kLine - 1) / kLine * kLine + kLine;
  return (bytes + elem_size - 1) / elem_size;
}

/// Threads worth starting for `work` units (multiply-adds, elements) when each thread should
/// get at least `grain` of them: between 1 and max_threads. Tiny calls then run serially and
/// never wait on a busy core for a team barrier.
inline int threads_for(int64_t work, int64_t grain, int max_threads) {
  const int64_t t = work / grain;
  return t < 1 ? 1 : (t < max_threads ? static_cast<int>(t) : max_threads);
}

}  // namespace fastconv::util
