// kernels/generic/pack_ukernel.hpp — packing of GEMM B blocks from runs of columns (im2col),
// written once over a vector wrapper V and instantiated per ISA.
//
// A run is a stretch of packed columns whose sources step by a constant: 1 (a stride-1 output
// row) is copied with vector loads, 2 (stride-2 convolutions) with even-lane loads, any other
// step element by element. Masked loads and stores handle the ends of runs, so nothing outside
// a run is read or written. Arguments: PackRunsFn / ColumnRunsView in kernel_table.hpp.
#pragma once

#include <cstdint>

#include "../kernel_table.hpp"

namespace fastconv::kernels {

template <typename V>
void pack_runs(const typename V::T* x, const int64_t* row, int64_t kc, int nr,
               const ColumnRunsView& runs, typename V::T* dst) {
  using T = typename V::T;
  constexpr int W = V::W;
  for (int64_t kk = 0; kk < kc; ++kk) {
    const T* xr = x + row[kk];
    T* d = dst + kk * nr;
    for (int64_t r = 0; r < runs.count; ++r) {
      const T* s = xr + runs.src[r];
      T* o = d + runs.dst[r];
      const int64_t n = runs.len[r], step = runs.step[r];
      if (step == 1) {
        for (int64_t i = 0; i < n; i += W) {
          const int lanes = n - i < W ? static_cast<int>(n - i) : W;
          V::store_partial(o + i, V::load_partial(s + i, lanes), lanes);
        }
      } else if (step == 2) {
        for (int64_t i = 0; i < n; i += W) {
          const int lanes = n - i < W ? static_cast<int>(n - i) : W;
          const auto v = lanes == W ? V::load_even(s + 2 * i) : V::load_even_partial(s + 2 * i, lanes);
          V::store_partial(o + i, v, lanes);
        }
      } else {
        for (int64_t i = 0; i < n; ++i) o[i] = s[i * step];
      }
    }
  }
}

}  // namespace fastconv::kernels
