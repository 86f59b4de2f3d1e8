// kernels/generic/blocked_ukernel.hpp — direct convolution on channel-blocked layouts: the
// dense-layer kernel, written once over a vector wrapper V and instantiated per ISA.
//
// Input and weights hold channels in blocks of W = V::W lanes (the "nChw16c" layout of oneDNN's
// direct convolution; Georganas et al., "Anatomy of high-performance deep learning convolutions
// on SIMD architectures", SC 2018). A tile is UR consecutive outputs along W times NB blocks of
// W output channels, UR x NB vector accumulators: per input channel ci of a block and per kernel
// tap, NB weight vectors (W output channels each) are loaded once and every output's input value
// is broadcast against them (UR x NB FMAs for NB loads and UR broadcasts). The input is read in
// place, already padded: no im2col copy. The reduction (input blocks x taps x W) runs in
// registers, in blocks of kBlockedReductionBlock terms added to the tile; a call sums all of it
// or a range of whole blocks (BlockedConvArgs::step_lo / step_hi), each (block, tap) step's
// input lines prefetched while the step before runs. UR and NB are compile-time; the stride
// along W is 1 or 2 (compile-time, so the broadcast addresses are immediate offsets). Layers
// with few input channels per group (a network's first layer: 3) use a narrow input layout
// instead, CW < W channels per block, with any stride (S = 0: both at run time): padding 3
// channels to a block of 16 would multiply the work by 5.
// Arguments: BlockedConvArgs in kernel_table.hpp.
#pragma once

#include <cstdint>
#include <utility>

#include "../kernel_table.hpp"
#include "pack_ukernel.hpp"
#include "unroll.hpp"

namespace fastconv::kernels {

// S: the stride along W on the standard layout (W channels per input block), or 0 for the
// narrow layout, whose terms (tap, channel) each have their own offset in a.taps and a.x_step
// elements between consecutive outputs.
template <typename V, int UR, int NB, int S>
void blocked_conv_tile(const BlockedConvArgs<typename V::T>& a) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int W = V::W;
  R acc[UR][NB];
  const auto clear = [&] {
    FASTCONV_UNROLL
    for (int r = 0; r < UR; ++r)
      FASTCONV_UNROLL
      for (int b = 0; b < NB; ++b) acc[r][b] = V::zero();
  };
  const auto flush = [&](bool first) {  // tile (+)= acc
    FASTCONV_UNROLL
    for (int b = 0; b < NB; ++b)
      FASTCONV_UNROLL
      for (int r = 0; r < UR; ++r) {
        T* y = a.y + b * a.y_block + r * W;
        V::storeu(y, first ? acc[r][b] : V::add(V::loadu(y), acc[r][b]));
      }
  };
  // acc += the terms of one input channel: x at xt (+ r * xs for output r), weights at wt.
  const auto channel = [&](const T* xt, int64_t xs, const T* wt) {
    R wv[NB];
    for (int b = 0; b < NB; ++b) wv[b] = V::loadu(wt + b * a.w_block);
    for (int r = 0; r < UR; ++r) {
      const R xv = V::set1(xt[r * xs]);
      for (int b = 0; b < NB; ++b) acc[r][b] = V::fmadd(xv, wv[b], acc[r][b]);
    }
  };
  if constexpr (S == 0) {  // narrow: a flat run of terms, flushed every block of them
    for (int64_t t0 = 0; t0 < a.ntaps; t0 += kBlockedReductionBlock) {
      const int64_t t1 = a.ntaps - t0 < kBlockedReductionBlock ? a.ntaps : t0 + kBlockedReductionBlock;
      clear();
      for (int64_t t = t0; t < t1; ++t) channel(a.x + a.taps[t], a.x_step, a.w + t * W);
      flush(t0 == 0 && !a.accumulate);
    }
  } else {
    constexpr int64_t steps_per_block =
        kBlockedReductionBlock / W > 0 ? kBlockedReductionBlock / W : 1;
    constexpr int64_t w_tap = int64_t(W) * W;
    // The (block, tap) steps in runs of steps_per_block, each summed in registers and then
    // added to the tile: no flush inside a run, so the accumulators stay in registers.
    const int64_t steps = a.ncb * a.ntaps, end = a.step_hi > 0 ? a.step_hi : steps;
    const int64_t whole = a.last_cin > 0 ? steps - a.ntaps : steps;  // steps of whole blocks
    // Step (cb, t)'s input: output r's values at + r S W.
    const auto input_of = [&](int64_t cb, int64_t t) { return a.x + cb * a.x_block + a.taps[t]; };
    // The input lines the UR outputs of step (cb, t) broadcast from, fetched a step ahead: the
    // next step's block or tap lies elsewhere (another plane of the blocked image, the next input
    // block of Winograd's V), where the hardware prefetchers do not look, so that the step's first
    // loads would otherwise wait on L2 or memory with the FMAs behind them. One prefetch per
    // output, or per line where outputs share lines.
    const auto prefetch_step = [&](int64_t cb, int64_t t) {
      constexpr int64_t kLine = 64, out_bytes = int64_t(S) * W * sizeof(T);
      const char* x = reinterpret_cast<const char*>(input_of(cb, t));
      if constexpr (out_bytes >= kLine) {
        FASTCONV_UNROLL
        for (int r = 0; r < UR; ++r) __builtin_prefetch(x + r * out_bytes);
      } else {
        for (int64_t b = 0; b < UR * out_bytes; b += kLine) __builtin_prefetch(x + b);
      }
    };
    bool first = !a.accumulate;
    for (int64_t s0 = a.step_lo; s0 < end; s0 += steps_per_block) {
      const int64_t s1 = end - s0 < steps_per_block ? end : s0 + steps_per_block;
      clear();
      int64_t cb = s0 / a.ntaps, t = s0 - cb * a.ntaps;
      for (int64_t s = s0; s < s1; ++s) {
        const T* xt = input_of(cb, t);
        const T* wt = a.w + (cb * a.ntaps + t) * w_tap;
        if (s + 1 < end) {
          const bool next_block = t + 1 == a.ntaps;
          prefetch_step(next_block ? cb + 1 : cb, next_block ? 0 : t + 1);
        }
        if (s < whole) {  // a whole block: the loop of constant count
          for (int ci = 0; ci < W; ++ci) channel(xt + ci, S * W, wt + ci * W);
        } else {
          for (int ci = 0; ci < a.last_cin; ++ci) channel(xt + ci, S * W, wt + ci * W);
        }
        if (++t == a.ntaps) t = 0, ++cb;
      }
      flush(first);
      first = false;
    }
    if (first) {  // no terms: the tile is zero
      clear();
      flush(true);
    }
  }
}

// Weight gradient tile: UR output channels (broadcast from the blocked output gradient) x NB
// input channel blocks (vectors of the blocked input) of one tap, summed over rows x ow
// positions; see BlockedWgradArgs.
template <typename V, int UR, int NB, int S>
void blocked_wgrad_tile(const BlockedWgradArgs<typename V::T>& a) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int W = V::W;
  R acc[UR][NB];
  FASTCONV_UNROLL
  for (int r = 0; r < UR; ++r)
    FASTCONV_UNROLL
    for (int b = 0; b < NB; ++b) acc[r][b] = V::zero();
  for (int64_t row = 0; row < a.rows; ++row) {
    const T* xr = a.x + row * a.x_row;
    const T* dr = a.dy + row * a.dy_row;
    for (int64_t o = 0; o < a.ow; ++o) {
      R xv[NB];
      for (int b = 0; b < NB; ++b) xv[b] = V::loadu(xr + b * a.x_block + o * S * W);
      for (int r = 0; r < UR; ++r) {
        const R dv = V::set1(dr[o * W + r]);
        for (int b = 0; b < NB; ++b) acc[r][b] = V::fmadd(dv, xv[b], acc[r][b]);
      }
    }
  }
  FASTCONV_UNROLL
  for (int r = 0; r < UR; ++r)
    FASTCONV_UNROLL
    for (int b = 0; b < NB; ++b) {
      T* y = a.acc + (r * NB + b) * W;
      V::storeu(y, a.first ? acc[r][b] : V::add(V::loadu(y), acc[r][b]));
    }
}

// Channels into lanes (the blocked layout): dst[i*W + c] = rows[c][i] (0 where rows[c] is
// null) for i < n, c < W (pack_rows with every lane).
template <typename V>
void interleave_rows(const typename V::T* const* rows, int64_t n, typename V::T* dst) {
  pack_rows<V>(rows, V::W, n, dst, V::W);
}

// Lanes back into channels: rows[c][i] = src[i*lds + c] for i < n and the c < count rows
// (lds = W for the blocked layout; any stride >= W transposes a block of a row-major matrix).
// With Stream, whole vector-aligned vectors go out by non-temporal stores (V::store_fence
// before they are read).
template <typename V, bool Stream = false>
void deinterleave_rows(const typename V::T* src, int64_t lds, int64_t n, typename V::T* const* rows,
                       int count) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int W = V::W;
  for (int64_t i = 0; i < n; i += W) {
    const int lanes = n - i < W ? static_cast<int>(n - i) : W;
    R r[W];
    for (int j = 0; j < W; ++j) r[j] = j < lanes ? V::loadu(src + (i + j) * lds) : V::zero();
    transpose_square<V>(r);
    for (int c = 0; c < count; ++c) {
      T* d = rows[c] + i;
      if (Stream && lanes == W && reinterpret_cast<std::uintptr_t>(d) % (W * sizeof(T)) == 0) {
        V::stream(d, r[c]);
      } else {
        V::store_partial(d, r[c], lanes);
      }
    }
  }
}

template <typename V, int MaxAcc, int NB, int UR>
void set_blocked_tile(BlockedConvUkernel<typename V::T>& k) {
  if constexpr (NB * UR <= MaxAcc) {
    auto& slot = k.tile[BlockedConvUkernel<typename V::T>::nb_index(NB)][UR];
    slot[0] = &blocked_conv_tile<V, UR, NB, 1>;
    slot[1] = &blocked_conv_tile<V, UR, NB, 2>;
    slot[2] = &blocked_conv_tile<V, UR, NB, 0>;
  }
}

template <typename V, int MaxAcc, int NB, int... U>
void set_blocked_tiles(BlockedConvUkernel<typename V::T>& k, std::integer_sequence<int, U...>) {
  (set_blocked_tile<V, MaxAcc, NB, U + 1>(k), ...);
}

// The tile kernels of one ISA: NB in {1, 2, 4}, UR in 1..14 within MaxAcc accumulators, stride
// 1 or 2 or the narrow layout; null where an (NB, UR) pair would not fit the registers.
template <typename V, int MaxAcc>
BlockedConvUkernel<typename V::T> blocked_conv_kernels() {
  BlockedConvUkernel<typename V::T> k;
  k.w = V::W;
  k.max_acc = MaxAcc;
  constexpr auto urs = std::make_integer_sequence<int, BlockedConvUkernel<typename V::T>::kMaxUr>{};
  set_blocked_tiles<V, MaxAcc, 1>(k, urs);
  set_blocked_tiles<V, MaxAcc, 2>(k, urs);
  set_blocked_tiles<V, MaxAcc, 4>(k, urs);
  // Weight gradient: UR = W/2 output channels (half a block) x NB <= 3 input blocks (24
  // accumulators of avx512's 32 registers, 12 of avx2's 16).
  constexpr int UR = V::W / 2 > 0 ? V::W / 2 : 1;
  k.wgrad_ur = UR;
  k.interleave = &interleave_rows<V>;
  k.deinterleave = &deinterleave_rows<V>;
  k.deinterleave_stream = &deinterleave_rows<V, true>;
  k.store_fence = &V::store_fence;
  k.wgrad[1][0] = &blocked_wgrad_tile<V, UR, 1, 1>;
  k.wgrad[1][1] = &blocked_wgrad_tile<V, UR, 1, 2>;
  k.wgrad[2][0] = &blocked_wgrad_tile<V, UR, 2, 1>;
  k.wgrad[2][1] = &blocked_wgrad_tile<V, UR, 2, 2>;
  k.wgrad[3][0] = &blocked_wgrad_tile<V, UR, 3, 1>;
  k.wgrad[3][1] = &blocked_wgrad_tile<V, UR, 3, 2>;
  return k;
}

}  // namespace fastconv::kernels
