// kernels/generic/pool_ukernel.hpp — the two passes of separable window pooling (max or sum),
// written once over a vector wrapper V and instantiated per ISA.
//
// A pooling window is a box, and max and sum are associative, so a window reduces in two
// passes: `rows` reduces the input rows a window covers into one row (contiguous, vectorised
// along it), and `cols` reduces windows along that row (vectorised along the outputs, gathering
// lanes when the stride is above 1). Max propagates NaN (any NaN in a window gives NaN, as in
// PyTorch). Arguments: see PoolRowsFn / PoolColsFn in kernel_table.hpp.
#pragma once

#include <cstdint>

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

// v[i] = op over r < nrows of x[offset[r] + i], for i < n (nrows >= 1).
template <typename V, typename Op>
void pool_rows(const typename V::T* x, const int64_t* offset, int64_t nrows, int64_t n,
               typename V::T* v) {
  using R = typename V::R;
  constexpr int W = V::W;
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    R acc = V::loadu(x + offset[0] + i);
    for (int64_t r = 1; r < nrows; ++r) acc = Op::apply(acc, V::loadu(x + offset[r] + i));
    V::storeu(v + i, acc);
  }
  for (; i < n; ++i) {
    typename V::T acc = x[offset[0] + i];
    for (int64_t r = 1; r < nrows; ++r) acc = Op::apply(acc, x[offset[r] + i]);
    v[i] = acc;
  }
}

// y[o] = op over k < kw of v[o*stride + k*dilation], for o < n (kw >= 1).
template <typename V, typename Op>
void pool_cols(const typename V::T* v, int64_t n, int64_t stride, int64_t dilation, int64_t kw,
               typename V::T* y) {
  using R = typename V::R;
  constexpr int W = V::W;
  for (int64_t o = 0; o < n; o += W) {
    const int lanes = n - o < W ? static_cast<int>(n - o) : W;
    const typename V::T* base = v + o * stride;
    R acc = load_lanes<V>(base, stride, lanes);
    for (int64_t k = 1; k < kw; ++k)
      acc = Op::apply(acc, load_lanes<V>(base + k * dilation, stride, lanes));
    if (lanes == W) {
      V::storeu(y + o, acc);
    } else {
      alignas(64) typename V::T t[W];
      V::storeu(t, acc);
      for (int i = 0; i < lanes; ++i) y[o + i] = t[i];
    }
  }
}

}  // namespace fastconv::kernels
