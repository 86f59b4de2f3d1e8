// kernels/generic/winograd_ukernel.hpp — the input, output and weight transforms of Winograd
// F(mh x mw, 3 x 3), written once over a vector wrapper V and instantiated per ISA.
//
// Every vector holds W = V::W channels of one position (the channel-blocked layout), so a
// transform is the same small matrix product in every lane: no shuffles. The 2-D transforms are
// separable (BT d B = BT (BT dT)T), one axis after the other. The matrices
// (winograd_matrices.hpp) are compile-time constants and every product is unrolled: zero
// coefficients are skipped, ±1 become additions, the rest fused multiply-adds with a broadcast
// constant. An axis whose kernel has one tap has m = 1 (alpha = 1, the identity), which gives the
// 1-D F(m, 3) along W or H. Arguments and layouts: WinogradKernels in kernel_table.hpp.
#pragma once

#include <cstdint>
#include <utility>

#include "../kernel_table.hpp"
#include "winograd_matrices.hpp"

namespace fastconv::kernels {

namespace winograd {

// The matrices of one axis: tile m (1: identity), its input span alpha and its filter taps.
template <int M>
struct Axis {
  static constexpr int m = M;
  static constexpr int alpha = M == 1 ? 1 : M + kTaps - 1;
  static constexpr int taps = M == 1 ? 1 : kTaps;
  struct BT {
    static constexpr double at(int i, int p) { return M == 1 ? 1.0 : matrices_for(M).BT[i][p]; }
  };
  struct AT {
    static constexpr double at(int k, int i) { return M == 1 ? 1.0 : matrices_for(M).AT[k][i]; }
  };
  struct G {
    static constexpr double at(int i, int j) { return M == 1 ? 1.0 : matrices_for(M).G[i][j]; }
  };
};

// sum_{p < N} Mat::at(I, p) * x[p] for compile-time coefficients: zeros skipped, ±1 as additions,
// the first nonzero term initialising the sum (no addition to zero).
template <typename V, typename Mat, int I, int P, int N, bool First>
inline typename V::R combine(typename V::R acc, const typename V::R* x) {
  using T = typename V::T;
  if constexpr (P == N) {
    static_assert(!First, "a transform row with no nonzero coefficient");
    return acc;
  } else {
    constexpr double c = Mat::at(I, P);
    if constexpr (c == 0.0) {
      return combine<V, Mat, I, P + 1, N, First>(acc, x);
    } else {
      typename V::R next;
      if constexpr (First) {
        if constexpr (c == 1.0) {
          next = x[P];
        } else {
          next = V::mul(V::set1(T(c)), x[P]);
        }
      } else if constexpr (c == 1.0) {
        next = V::add(acc, x[P]);
      } else if constexpr (c == -1.0) {
        next = V::sub(acc, x[P]);
      } else {
        next = V::fmadd(V::set1(T(c)), x[P], acc);
      }
      return combine<V, Mat, I, P + 1, N, false>(next, x);
    }
  }
}

// out[i * out_step] = sum_p Mat::at(i, p) * x[p]   for i < Rows, p < N.
template <typename V, typename Mat, int Rows, int N, int... I>
inline void apply_rows(const typename V::R* x, typename V::R* out, int out_step,
                       std::integer_sequence<int, I...>) {
  ((out[I * out_step] = combine<V, Mat, I, 0, N, true>(V::zero(), x)), ...);
}

template <typename V, typename Mat, int Rows, int N>
inline void apply(const typename V::R* x, typename V::R* out, int out_step) {
  apply_rows<V, Mat, Rows, N>(x, out, out_step, std::make_integer_sequence<int, Rows>{});
}

}  // namespace winograd

// Input transform of `count` tiles along a row:
//   v[xi * v_step + t*W + c] = (BTh d_t Bw)[xi]   with d_t[i][j] = x[i*ldx + (t*MW + j)*W + c]
// for xi = i * AW + j < AH x AW, t < count.
template <typename V, int MH, int MW>
void winograd_input(const typename V::T* x, int64_t ldx, int64_t count, typename V::T* v,
                    int64_t v_step) {
  using R = typename V::R;
  using H = winograd::Axis<MH>;
  using Wd = winograd::Axis<MW>;
  constexpr int W = V::W, AH = H::alpha, AW = Wd::alpha;
  for (int64_t t = 0; t < count; ++t, x += MW * W, v += W) {
    R dT[AW * AH];  // columns: dT[j][i] = d[i][j]
    for (int i = 0; i < AH; ++i)
      for (int j = 0; j < AW; ++j) dT[j * AH + i] = V::loadu(x + i * ldx + j * W);
    R tmp[AH * AW];  // tmp[i][j] = (BTh d)[i][j]
    for (int j = 0; j < AW; ++j)
      winograd::apply<V, typename H::BT, AH, AH>(dT + j * AH, tmp + j, AW);
    R out[AH * AW];
    for (int i = 0; i < AH; ++i)
      winograd::apply<V, typename Wd::BT, AW, AW>(tmp + i * AW, out + i * AW, 1);
    for (int k = 0; k < AH * AW; ++k) V::storeu(v + k * v_step, out[k]);
  }
}

// Output transform of `count` tiles along a row:
//   y[i*ldy + (t*MW + j)*W + c] = store((ATh m_t Aw)[i][j])   with m_t[xi] = m[xi*m_step + t*W + c]
// for i < MH, j < MW, t < count; store adds bias[c] (when not null) and clamps (st.clamp).
template <typename V, int MH, int MW>
void winograd_output(const typename V::T* m, int64_t m_step, int64_t count,
                     const TileStore<typename V::T>& st, typename V::T* y, int64_t ldy) {
  using R = typename V::R;
  using H = winograd::Axis<MH>;
  using Wd = winograd::Axis<MW>;
  constexpr int W = V::W, AH = H::alpha, AW = Wd::alpha;
  const R bias = st.bias ? V::loadu(st.bias) : V::zero();
  const R lo = V::set1(st.lo), hi = V::set1(st.hi);
  for (int64_t t = 0; t < count; ++t, m += W, y += MW * W) {
    R in[AH * AW];
    for (int k = 0; k < AH * AW; ++k) in[k] = V::loadu(m + k * m_step);
    R tT[MW * AH];  // tT[j][i] = (m Aw)[i][j]
    for (int i = 0; i < AH; ++i)
      winograd::apply<V, typename Wd::AT, MW, AW>(in + i * AW, tT + i, AH);
    R out[MW * MH];  // out[j][i]
    for (int j = 0; j < MW; ++j)
      winograd::apply<V, typename H::AT, MH, AH>(tT + j * AH, out + j * MH, 1);
    for (int i = 0; i < MH; ++i)
      for (int j = 0; j < MW; ++j) {
        R r = st.bias ? V::add(out[j * MH + i], bias) : out[j * MH + i];
        if (st.clamp) r = V::min(V::max(r, lo), hi);
        V::storeu(y + i * ldy + j * W, r);
      }
  }
}

// Weight transform of W filters at once:
//   u[xi * u_step + c] = (Gh g Gw^T)[xi]   with g[i][j] = w[(i*KW + j)*W + c]
// for xi < AH x AW; KH, KW = 3, or 1 along an axis with m = 1. stream: u (vector-aligned) is
// written around the caches (transformed weights larger than they are).
template <typename V, int MH, int MW>
void winograd_weight(const typename V::T* w, typename V::T* u, int64_t u_step, bool stream) {
  using R = typename V::R;
  using H = winograd::Axis<MH>;
  using Wd = winograd::Axis<MW>;
  constexpr int W = V::W, AH = H::alpha, AW = Wd::alpha, KH = H::taps, KW = Wd::taps;
  R gT[KW * KH];  // gT[j][i] = g[i][j]
  for (int i = 0; i < KH; ++i)
    for (int j = 0; j < KW; ++j) gT[j * KH + i] = V::loadu(w + (i * KW + j) * W);
  R tmp[AH * KW];  // tmp[i][j] = (Gh g)[i][j]
  for (int j = 0; j < KW; ++j) winograd::apply<V, typename H::G, AH, KH>(gT + j * KH, tmp + j, KW);
  R out[AH * AW];
  for (int i = 0; i < AH; ++i)
    winograd::apply<V, typename Wd::G, AW, KW>(tmp + i * KW, out + i * AW, 1);
  if (stream) {
    for (int k = 0; k < AH * AW; ++k) V::stream(u + k * u_step, out[k]);
  } else {
    for (int k = 0; k < AH * AW; ++k) V::storeu(u + k * u_step, out[k]);
  }
}

template <typename V, int M>
void set_winograd_variant(WinogradKernels<typename V::T>& k) {
  constexpr int v = winograd::variant_index(M);
  k.input[v][0] = &winograd_input<V, M, M>;
  k.input[v][1] = &winograd_input<V, 1, M>;
  k.input[v][2] = &winograd_input<V, M, 1>;
  k.output[v][0] = &winograd_output<V, M, M>;
  k.output[v][1] = &winograd_output<V, 1, M>;
  k.output[v][2] = &winograd_output<V, M, 1>;
  k.weight[v][0] = &winograd_weight<V, M, M>;
  k.weight[v][1] = &winograd_weight<V, 1, M>;
  k.weight[v][2] = &winograd_weight<V, M, 1>;
}

// The transforms of one ISA: F(2,3), F(4,3), F(6,3), each 2-D, along W and along H.
template <typename V>
WinogradKernels<typename V::T> winograd_kernels() {
  WinogradKernels<typename V::T> k;
  k.w = V::W;
  k.store_fence = &V::store_fence;
  set_winograd_variant<V, 2>(k);
  set_winograd_variant<V, 4>(k);
  set_winograd_variant<V, 6>(k);
  return k;
}

}  // namespace fastconv::kernels
