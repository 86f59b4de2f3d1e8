// conv/activation.hpp — the activations a forward convolution fuses into its output
// (fastconv::Activation) as clamps: relu = [0, +inf], relu6 = [0, 6]. The GEMM microkernels
// clamp their register tiles before storing (kernels::TileStore); other drivers clamp the rows
// they have just written, while those are still in cache. NaN stays NaN, as in torch.relu.
#pragma once

#include <cstdint>
#include <limits>

#include "fastconv/conv.hpp"
#include "kernels/kernel_table.hpp"

namespace fastconv::conv {

// How a GEMM tile is stored for a forward output with `bias` (may be null) and `act`.
template <typename T>
kernels::TileStore<T> output_store(const T* bias, Activation act) {
  kernels::TileStore<T> st;
  st.bias = bias;
  st.clamp = act != Activation::none;
  st.lo = T(0);
  st.hi = act == Activation::relu6 ? T(6) : std::numeric_limits<T>::infinity();
  return st;
}

// y[i] = act(y[i]) for i < n.
template <typename T>
void activate(Activation act, T* y, int64_t n) {
  if (act == Activation::none) return;
  const T hi = act == Activation::relu6 ? T(6) : std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    const T v = y[i];
    y[i] = v < T(0) ? T(0) : (v > hi ? hi : v);  // NaN fails both tests and stays
  }
}

}  // namespace fastconv::conv
