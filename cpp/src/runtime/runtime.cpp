// runtime/runtime.cpp — thread count and build description (fastconv/runtime.hpp).
//
// The thread count is one atomic read at the start of every parallel region (num_threads
// clause), never omp_set_num_threads: that setting is per calling thread in OpenMP and would not
// follow the user's call into threads the user creates. A forked child runs on one thread.
// Threads that compute at the same time split the setting (ThreadShare) rather than each
// starting a full team.
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>

#include <Eigen/Core>

#include "fastconv/errors.hpp"
#include "fastconv/runtime.hpp"
#include "kernels/kernel_table.hpp"
#include "util/buffer.hpp"
#include "util/memo.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastconv {

namespace {
int default_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();  // OMP_NUM_THREADS, else the cores this process may use
#else
  return 1;
#endif
}

std::atomic<int>& thread_setting();

// libgomp's thread pool does not survive fork(): a child that enters a parallel region with
// more than one thread waits forever for workers that no longer exist. A forked child
// therefore computes on one thread (as PyTorch does); it may raise it again explicitly only at
// its own risk.
void after_fork_in_child() { thread_setting().store(1, std::memory_order_relaxed); }

std::atomic<int>& thread_setting() {
  static std::atomic<int> n{[] {
    pthread_atfork(nullptr, nullptr, &after_fork_in_child);
    return default_threads();
  }()};
  return n;
}
}  // namespace

namespace {
std::atomic<int> sharing_callers{0};  // threads holding a ThreadShare
thread_local int share_threads = 0;   // this thread's share; 0: none held
}  // namespace

int num_threads() {
  return share_threads > 0 ? share_threads : thread_setting().load(std::memory_order_relaxed);
}

ThreadShare::ThreadShare() : outermost_(share_threads == 0) {
  if (!outermost_) return;
  const int callers = sharing_callers.fetch_add(1, std::memory_order_relaxed) + 1;
  share_threads = std::max(1, thread_setting().load(std::memory_order_relaxed) / callers);
}

ThreadShare::~ThreadShare() {
  if (!outermost_) return;
  sharing_callers.fetch_sub(1, std::memory_order_relaxed);
  share_threads = 0;
}

void set_num_threads(int n) {
  // A bound well above any core count: libgomp aborts the process when it cannot create threads.
  constexpr int kMaxThreads = 1024;
  if (n < 1 || n > kMaxThreads) {
    throw InvalidArgument("set_num_threads: expected 1 <= n <= " + std::to_string(kMaxThreads) +
                          ", got " + std::to_string(n));
  }
  thread_setting().store(n, std::memory_order_relaxed);
}

namespace {
std::atomic<int64_t> workspace_setting{0};
}  // namespace

int64_t workspace_limit() { return workspace_setting.load(std::memory_order_relaxed); }

void set_workspace_limit(int64_t bytes) {
  if (bytes < 0) {
    throw InvalidArgument("set_workspace_limit: expected bytes >= 0 (0: the default), got " +
                          std::to_string(bytes));
  }
  workspace_setting.store(bytes, std::memory_order_relaxed);
}

std::size_t release_memory() {
  return util::release_cached_buffers() + static_cast<std::size_t>(util::release_memos());
}

double measure_fma_peak(int threads, double seconds) {
  if (threads < 1 || threads > 1024) {
    throw InvalidArgument("measure_fma_peak: expected 1 <= threads <= 1024, got " +
                          std::to_string(threads));
  }
  const auto& k = kernels::active_kernels();
  float sink = 0;
  // Calibrate the round count on one thread, then time all threads together.
  int64_t iters = 1 << 16;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    k.fma_probe(iters, &sink);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > seconds / 12 || iters > (int64_t(1) << 40)) break;
    iters *= 2;
  }
  // Each thread times itself (a late start does not count against it); the rates add up.
  // Best of three, since a core shared with another process only ever lowers the figure.
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    double rate = 0;
#pragma omp parallel num_threads(threads) reduction(+ : rate)
    {
      float local = 0;
      const auto t0 = std::chrono::steady_clock::now();
      const double flops = k.fma_probe(iters, &local);
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rate += flops / s;
    }
    if (rate > best) best = rate;
  }
  return best / 1e9;
}

std::string compiler_description() {
#if defined(__clang__)
  return "Clang " __clang_version__;
#elif defined(__GNUC__)
  return "GCC " __VERSION__;
#else
  return "unknown";
#endif
}

std::string eigen_version() {
  return std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
         std::to_string(EIGEN_MINOR_VERSION);
}

int openmp_version() {
#ifdef _OPENMP
  return _OPENMP;
#else
  return 0;
#endif
}

}  // namespace fastconv
