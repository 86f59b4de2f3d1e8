// nn/softmax.cpp — softmax and log-softmax along one axis (fastconv/activation.hpp), forward and
// backward, with the maximum subtracted first so exp never overflows.
//
//   x, y, dy, dx   [outer][D][inner]; the axis is D
//
// Rows are contiguous when inner = 1; otherwise the inner positions of one outer index are
// processed together, D rows of `inner` elements. Sums in double; NaN in a row gives a NaN row.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "fastconv/activation.hpp"
#include "fastconv/conv.hpp"
#include "fastconv/errors.hpp"
#include "fastconv/runtime.hpp"
#include "util/buffer.hpp"
#include "util/checked.hpp"
#include "util/dtype.hpp"
#include "util/parallel.hpp"

namespace fastconv {

namespace {

int threads_for(int64_t n) { return util::threads_for(n, int64_t(1) << 14, num_threads()); }

// One outer index: xs, ys are D x inner.
template <typename T>
void forward_block(int64_t D, int64_t inner, const T* xs, T* ys, bool log, double* mx,
                   double* sum) {
  std::fill(mx, mx + inner, -std::numeric_limits<double>::infinity());
  std::fill(sum, sum + inner, 0.0);
  for (int64_t d = 0; d < D; ++d) {
    const T* x = xs + d * inner;
    for (int64_t i = 0; i < inner; ++i)  // NaN kept: the row's max becomes NaN
      mx[i] = (x[i] > mx[i] || x[i] != x[i]) ? double(x[i]) : mx[i];
  }
  for (int64_t d = 0; d < D; ++d) {
    const T* x = xs + d * inner;
    for (int64_t i = 0; i < inner; ++i) sum[i] += std::exp(double(x[i]) - mx[i]);
  }
  for (int64_t i = 0; i < inner; ++i) sum[i] = log ? mx[i] + std::log(sum[i]) : 1 / sum[i];
  for (int64_t d = 0; d < D; ++d) {
    const T* x = xs + d * inner;
    T* y = ys + d * inner;
    for (int64_t i = 0; i < inner; ++i)
      y[i] = log ? T(double(x[i]) - sum[i]) : T(std::exp(double(x[i]) - mx[i]) * sum[i]);
  }
}

template <typename T>
void backward_block(int64_t D, int64_t inner, const T* ys, const T* gs, T* dxs, bool log,
                    double* sum) {
  std::fill(sum, sum + inner, 0.0);
  for (int64_t d = 0; d < D; ++d) {
    const T* y = ys + d * inner;
    const T* g = gs + d * inner;
    for (int64_t i = 0; i < inner; ++i) sum[i] += log ? double(g[i]) : double(g[i]) * double(y[i]);
  }
  for (int64_t d = 0; d < D; ++d) {
    const T* y = ys + d * inner;
    const T* g = gs + d * inner;
    T* dx = dxs + d * inner;
    for (int64_t i = 0; i < inner; ++i)
      dx[i] = log ? T(double(g[i]) - std::exp(double(y[i])) * sum[i])
                  : T(double(y[i]) * (double(g[i]) - sum[i]));
  }
}

// Calls f(o, scratch_a, scratch_b) for every outer index o, threads over o. The scratch (two
// rows of `inner` per thread) is allocated before the parallel region: an allocation failure
// is then an OutOfMemory for the caller, not an exception leaving the region (std::terminate).
template <typename F>
void each_outer(int64_t outer, int64_t D, int64_t inner, F f) {
  const int threads = threads_for(outer * D * inner);
  const int64_t stride = util::scratch_stride(2 * inner, sizeof(double));
  const int64_t bytes = util::checked_mul(util::checked_mul(stride, threads, "softmax: scratch"),
                                          int64_t(sizeof(double)), "softmax: scratch");
  util::AlignedBuffer scratch(static_cast<std::size_t>(bytes), "softmax's scratch");
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    double* a = scratch.as<double>() + util::thread_index() * stride;
#pragma omp for schedule(static)
    for (int64_t o = 0; o < outer; ++o) f(o, a, a + inner);
  }
}

}  // namespace

SoftmaxShape softmax_shape(const std::vector<int64_t>& shape, int64_t dim, const std::string& op) {
  const int64_t nd = static_cast<int64_t>(shape.size()), span = std::max<int64_t>(nd, 1);
  if (dim < -span || dim >= span) {
    throw InvalidArgument(op + ": Dimension out of range (expected to be in range of [" +
                          std::to_string(-span) + ", " + std::to_string(span - 1) +
                          "], but got " + std::to_string(dim) + ")");
  }
  SoftmaxShape r;
  if (nd == 0) return r;
  const int64_t d = dim < 0 ? dim + nd : dim;
  for (int64_t i = 0; i < nd; ++i) {
    int64_t& part = i < d ? r.outer : (i == d ? r.D : r.inner);
    part = util::checked_mul(part, shape[i], op + ": input size");
  }
  return r;
}

void softmax_fwd(DType dtype, int64_t outer, int64_t D, int64_t inner, const void* x, void* y,
                 bool log) {
  if (outer * D * inner == 0) return;
  util::with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    const T* xs = static_cast<const T*>(x);
    T* ys = static_cast<T*>(y);
    each_outer(outer, D, inner, [&](int64_t o, double* a, double* b) {
      forward_block(D, inner, xs + o * D * inner, ys + o * D * inner, log, a, b);
    });
  });
}

void softmax_bwd(DType dtype, int64_t outer, int64_t D, int64_t inner, const void* y,
                 const void* dy, void* dx, bool log) {
  if (outer * D * inner == 0) return;
  util::with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    const T* ys = static_cast<const T*>(y);
    const T* gs = static_cast<const T*>(dy);
    T* out = static_cast<T*>(dx);
    each_outer(outer, D, inner, [&](int64_t o, double* a, double*) {
      const int64_t off = o * D * inner;
      backward_block(D, inner, ys + off, gs + off, out + off, log, a);
    });
  });
}

}  // namespace fastconv
