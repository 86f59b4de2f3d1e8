// pool/pool.cpp — the public pooling entry points (fastconv/pool.hpp): dispatch by kind and
// dtype, empty problems, and the gradient of max pooling, which scatters through the argmax
// indices (one task per plane, so overlapping windows accumulate in a fixed order).
#include <algorithm>
#include <atomic>

#include "adaptive_pool.hpp"
#include "fastconv/errors.hpp"
#include "fastconv/pool.hpp"
#include "fastconv/runtime.hpp"
#include "fixed_pool.hpp"
#include "util/dtype.hpp"
#include "util/parallel.hpp"

namespace fastconv {

namespace {

using util::with_dtype;

// Threads for a call: about 16K elements read or written per thread at least.
int threads_for(const PoolProblem& p) {
  return util::threads_for(p.planes() * (p.in_spatial() + p.out_spatial()), int64_t(1) << 14,
                           num_threads());
}

bool is_max(PoolKind k) { return k == PoolKind::max || k == PoolKind::adaptive_max; }
bool is_adaptive(PoolKind k) { return k == PoolKind::adaptive_max || k == PoolKind::adaptive_avg; }

// dx[plane][indices[o]] += dy[plane][o]; index -1 (a max-pool window entirely in the padding)
// contributes nothing. Returns false if another index lies outside the plane (nothing is
// written out of bounds).
template <typename T>
bool scatter(const PoolProblem& p, const T* dy, const int64_t* indices, T* dx, int threads) {
  const int64_t plane_in = p.in_spatial(), plane_out = p.out_spatial();
  std::atomic<bool> ok{true};
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t plane = 0; plane < p.planes(); ++plane) {
    T* g = dx + plane * plane_in;
    std::fill(g, g + plane_in, T(0));
    const T* gy = dy + plane * plane_out;
    const int64_t* idx = indices + plane * plane_out;
    for (int64_t o = 0; o < plane_out; ++o) {
      if (idx[o] < 0 || idx[o] >= plane_in) {
        if (idx[o] != -1) ok.store(false, std::memory_order_relaxed);
        continue;
      }
      g[idx[o]] += gy[o];
    }
  }
  return ok.load();
}

}  // namespace

void pool_fwd(const PoolProblem& p, DType dtype, const void* x, void* y, int64_t* indices) {
  if (indices && !is_max(p.kind)) throw InvalidArgument(p.op + ": only max pooling has indices");
  if (p.planes() == 0 || p.out_spatial() == 0) return;
  const int threads = threads_for(p);
  const auto& kernels = kernels::active_kernels();
  with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    const auto* xs = static_cast<const T*>(x);
    auto* ys = static_cast<T*>(y);
    const auto& pk = kernels.get<T>().pool;
    if (is_adaptive(p.kind)) {
      pool::adaptive_forward(p, xs, ys, indices, pk, threads);
    } else if (indices) {
      pool::fixed_max_forward_indices(p, xs, ys, indices, threads);
    } else {
      pool::fixed_forward(p, xs, ys, pk, threads);
    }
  });
}

void pool_avg_bwd(const PoolProblem& p, DType dtype, const void* dy, void* dx) {
  if (is_max(p.kind)) throw InvalidArgument(p.op + ": pool_avg_bwd takes an average pooling");
  if (p.planes() == 0) return;
  const int threads = threads_for(p);
  with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    const auto* gy = static_cast<const T*>(dy);
    auto* gx = static_cast<T*>(dx);
    if (p.out_spatial() == 0) {
      std::fill(gx, gx + p.planes() * p.in_spatial(), T(0));
    } else if (p.kind == PoolKind::adaptive_avg) {
      pool::adaptive_avg_backward(p, gy, gx, threads);
    } else {
      pool::fixed_avg_backward(p, gy, gx, threads);
    }
  });
}

void pool_max_bwd(const PoolProblem& p, DType dtype, const void* dy, const int64_t* indices,
                  void* dx) {
  if (p.planes() == 0) return;
  bool ok = true;
  with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    ok = scatter(p, static_cast<const T*>(dy), indices, static_cast<T*>(dx), threads_for(p));
  });
  if (!ok) {
    throw InvalidArgument(p.op + ": found an index outside the input plane of " +
                          std::to_string(p.in_spatial()) + " elements");
  }
}

}  // namespace fastconv
