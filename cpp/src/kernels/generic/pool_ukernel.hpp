// kernels/generic/pool_ukernel.hpp — the two passes of separable window pooling (max or sum),
// written once over a vector wrapper V and instantiated per ISA.
//
// A pooling window is a box, and max and sum are associative, so a window reduces in two
// passes: `pool_rows` reduces the input rows a window covers into one row (contiguous,
// vectorised along it), and `pool_window` reduces windows along that row (vectorised along the
// outputs, gathering lanes when the stride is above 1, deinterleaving when it is 2). Max propagates NaN (any NaN in
// a window gives NaN, as in PyTorch); average pooling's scaling by 1/divisor happens in pool_window
// (a multiply: exact for power-of-two divisors, within an ulp of the division otherwise).
// Arguments: see PoolRowsFn / PoolColsFn in kernel_table.hpp.
#pragma once

#include <cstdint>
#include <type_traits>

#include "../kernel_table.hpp"
#include "direct_ukernel.hpp"  // load_lanes

namespace fastconv::kernels {

template <typename V>
struct MaxOp {
  using T = typename V::T;
  static typename V::R apply(typename V::R a, typename V::R b) { return V::max(a, b); }
  static T apply(T a, T b) { return (a > b || a != a) ? a : b; }  // NaN in a or b wins
};

template <typename V>
struct SumOp {
  using T = typename V::T;
  static typename V::R apply(typename V::R a, typename V::R b) { return V::add(a, b); }
  static T apply(T a, T b) { return a + b; }
};

// v[i] = op over r < nrows of x[offset[r] + i], for i < n (nrows >= 1). A last partial vector
// is computed as a full vector ending at n-1 (overlapping, idempotent) when n >= W.
template <typename V, typename Op>
void pool_rows(const typename V::T* x, const int64_t* offset, int64_t nrows, int64_t n,
               typename V::T* v) {
  using R = typename V::R;
  constexpr int W = V::W;
  const auto block = [&](int64_t i) {
    R acc = V::loadu(x + offset[0] + i);
    for (int64_t r = 1; r < nrows; ++r) acc = Op::apply(acc, V::loadu(x + offset[r] + i));
    V::storeu(v + i, acc);
  };
  int64_t i = 0;
  for (; i + W <= n; i += W) block(i);
  if (i == n) return;
  if (n >= W) {
    block(n - W);
    return;
  }
  for (; i < n; ++i) {
    typename V::T acc = x[offset[0] + i];
    for (int64_t r = 1; r < nrows; ++r) acc = Op::apply(acc, x[offset[r] + i]);
    v[i] = acc;
  }
}

// y[0..n) from block(o, lanes), which computes outputs o .. o+lanes-1: vectors of W outputs,
// the last one ending at output n-1 (overlapping the one before) when n >= W, else one partial.
template <typename V, typename Block>
void store_blocks(int64_t n, typename V::T* y, const Block& block) {
  constexpr int W = V::W;
  if (n < W) {
    V::store_partial(y, block(0, static_cast<int>(n)), static_cast<int>(n));
    return;
  }
  int64_t o = 0;
  for (; o + W <= n; o += W) V::storeu(y + o, block(o, W));
  if (o < n) V::storeu(y + n - W, block(n - W, W));
}

// Windows along a row, over one or more rows:
//   y[o] = op over r < nrows, k < kw of x[offset[r] + o*stride + k*dilation] (* scale[o])
// for o < n; pool_window does this for several output rows that differ by a fixed step. With one row (offset {0}) this is the second pass after pool_rows; with the
// window's rows it does both passes at once, storing nothing in between, which wins when
// nrows * kw is small (2x2 pooling). A last partial vector is computed as a full vector ending
// at output n-1 (overlapping the previous one), so every load stays inside the windows read.
// NR rows x KW taps known at compile time (NR = KW = 0: read from the arguments).
template <typename V, typename Op, int NR, int KW>
void pool_window_impl(const typename V::T* x, const int64_t* offset, int64_t nrows, int64_t n,
                      int64_t stride, int64_t dilation, int64_t kw, const typename V::T* scale,
                      typename V::T* y) {
  using T = typename V::T;
  using R = typename V::R;
  const int64_t rows = NR ? NR : nrows, taps = KW ? KW : kw;
  const auto block = [&](int64_t o, int lanes) {
    R acc = load_lanes<V>(x + offset[0] + o * stride, stride, lanes);
    for (int64_t r = 0; r < rows; ++r) {
      const T* base = x + offset[r] + o * stride;
      for (int64_t k = r == 0 ? 1 : 0; k < taps; ++k)
        acc = Op::apply(acc, load_lanes<V>(base + k * dilation, stride, lanes));
    }
    if (scale) acc = V::mul(acc, load_lanes<V>(scale + o, 1, lanes));
    return acc;
  };
  store_blocks<V>(n, y, block);
}

// Stride-2 windows of KW = 2 or 3 taps (dilation 1), the pooling of most CNNs (2x2/2, 3x3/2),
// in one pass: per block of W outputs the rows reduce first over the 2W (+1) inputs the block
// reads, then even and odd lanes separate once: tap 0 is the even lanes, tap 1 the odd ones and
// tap 2 the even ones shifted by one lane. NR rows known at compile time (0: from nrows).
template <typename V, typename Op, int KW, int NR>
void pool_window_s2(const typename V::T* x, const int64_t* offset, int64_t nrows, int64_t n,
                    const typename V::T* scale, typename V::T* y) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int W = V::W;
  static_assert(KW == 2 || KW == 3, "taps");
  const int64_t rows = NR ? NR : nrows;
  const auto block = [&](int64_t o, int lanes) {  // outputs o .. o+lanes-1 read 2*lanes-2+KW inputs
    const int span = 2 * lanes - 2 + KW;
    const auto load = [&](const T* p, int from) {
      return span - from >= W ? V::loadu(p + from) : V::load_partial(p + from, span - from);
    };
    const T* p = x + offset[0] + 2 * o;
    R lo = load(p, 0), hi = load(p, W), next = lo;
    if (KW == 3) next = V::load_partial(p + 2 * W, span - 2 * W);
    for (int64_t r = 1; r < rows; ++r) {
      p = x + offset[r] + 2 * o;
      lo = Op::apply(lo, load(p, 0));
      hi = Op::apply(hi, load(p, W));
      if (KW == 3) next = Op::apply(next, V::load_partial(p + 2 * W, span - 2 * W));
    }
    const R even = V::even(lo, hi);
    R acc = Op::apply(even, V::odd(lo, hi));
    if (KW == 3) acc = Op::apply(acc, V::shift_in(even, next));
    if (scale) acc = V::mul(acc, load_lanes<V>(scale + o, 1, lanes));
    return acc;
  };
  store_blocks<V>(n, y, block);
}

// `rows` output rows at once: row i reads x + i*row_step and writes y + i*ldy (same offsets).
template <typename V, typename Op>
void pool_window(const typename V::T* x, int64_t rows, int64_t row_step, const int64_t* offset,
                 int64_t nrows, int64_t n, int64_t stride, int64_t dilation, int64_t kw,
                 const typename V::T* scale, typename V::T* y, int64_t ldy) {
  const auto each_row = [&](auto kernel) {
    for (int64_t i = 0; i < rows; ++i) kernel(x + i * row_step, y + i * ldy);
  };
  if (stride == 2 && dilation == 1 && (kw == 2 || kw == 3)) {
    const auto s2 = [&](auto kw_c, auto nr_c) {
      each_row([&](const typename V::T* xi, typename V::T* yi) {
        pool_window_s2<V, Op, decltype(kw_c)::value, decltype(nr_c)::value>(xi, offset, nrows, n,
                                                                            scale, yi);
      });
    };
    using K2 = std::integral_constant<int, 2>;
    using K3 = std::integral_constant<int, 3>;
    using K0 = std::integral_constant<int, 0>;
    if (kw == 2) nrows == 2 ? s2(K2{}, K2{}) : s2(K2{}, K0{});
    else nrows == 3 ? s2(K3{}, K3{}) : s2(K3{}, K0{});
  } else if (nrows == 2 && kw == 2) {  // 2x2 windows at another stride, fully unrolled
    each_row([&](const typename V::T* xi, typename V::T* yi) {
      pool_window_impl<V, Op, 2, 2>(xi, offset, nrows, n, stride, dilation, kw, scale, yi);
    });
  } else {
    each_row([&](const typename V::T* xi, typename V::T* yi) {
      pool_window_impl<V, Op, 0, 0>(xi, offset, nrows, n, stride, dilation, kw, scale, yi);
    });
  }
}

}  // namespace fastconv::kernels
