// kernels/generic/direct_ukernel.hpp — direct convolution on whole rows, forward and both
// backward directions, written once over a vector wrapper V and instantiated per ISA.
//
// Forward is vectorised along the output row (o), register-blocked over KB output channels
// that share every input load, and over NV vectors of the row for instruction-level
// parallelism: KB*NV independent accumulators. Backward-data combines kb gradient rows in
// registers and adds them into one input-gradient row; backward-weights accumulates row dot
// products. The input is already padded, so there are no bounds checks; a stride > 1 gathers
// or scatters lane by lane. Suits depthwise and small-channel convolutions that GEMM serves
// badly. Arguments: see the *Args structs in kernel_table.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../kernel_table.hpp"
#include "unroll.hpp"

namespace fastconv::kernels {

// Load `n` <= W lanes x[0], x[s], x[2s], ...; lanes beyond n are zero. Reads only those lanes
// (strides 1 and 2 with vector or masked loads, others lane by lane).
template <typename V>
inline typename V::R load_lanes(const typename V::T* x, int64_t s, int n) {
  if (s == 1) return n == V::W ? V::loadu(x) : V::load_partial(x, n);
  if (s == 2) return n == V::W ? V::load_even(x) : V::load_even_partial(x, n);
  alignas(64) typename V::T t[V::W] = {};
  for (int i = 0; i < n; ++i) t[i] = x[i * s];
  return V::loadu(t);
}

// Store (or add into y, when `add`) NV vectors whose last one has `n_last` valid lanes.
template <typename V, int NV>
inline void store_lanes(typename V::T* y, const typename V::R* acc, int n_last, bool add) {
  using T = typename V::T;
  constexpr int W = V::W;
  alignas(64) T t[NV * W];
  for (int v = 0; v < NV; ++v) V::storeu(t + v * W, acc[v]);
  const int n = (NV - 1) * W + n_last;
  if (n == NV * W) {
    for (int v = 0; v < NV; ++v) {
      const auto r = add ? V::add(V::loadu(y + v * W), acc[v]) : acc[v];
      V::storeu(y + v * W, r);
    }
    return;
  }
  for (int i = 0; i < n; ++i) y[i] = add ? y[i] + t[i] : t[i];
}

// Taps summed into one register before the partial sum goes to y. Blocking the reduction
// keeps the rounding error of long reductions (large C x kernel) near that of a blocked GEMM
// instead of growing with the full length.
constexpr int64_t kDirectReductionBlock = 256;

// One block of NV vectors starting at output column o0; `n_last` lanes valid in the last one.
template <typename V, int KB, int NV>
inline void direct_row_block(const DirectRowArgs<typename V::T>& p, int64_t o0, int n_last) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int W = V::W;
  const int64_t taps_per_block =
      p.kw >= kDirectReductionBlock ? 1 : kDirectReductionBlock / p.kw;
  for (int64_t t0 = 0; t0 < p.ntaps; t0 += taps_per_block) {
    const int64_t t1 = p.ntaps - t0 < taps_per_block ? p.ntaps : t0 + taps_per_block;
    R acc[KB][NV];
    for (int k = 0; k < KB; ++k) {
      const T init = t0 == 0 && p.bias && k < p.kb ? p.bias[k] : T(0);
      for (int v = 0; v < NV; ++v) acc[k][v] = V::set1(init);
    }
    const T* w = p.w + t0 * p.kw * KB;
    for (int64_t t = t0; t < t1; ++t) {
      const T* xt = p.x + p.tap_offset[t] + o0 * p.stride;
      for (int64_t s = 0; s < p.kw; ++s, w += KB) {
        const T* xs = xt + s * p.dilation;
        R xv[NV];
        for (int v = 0; v < NV; ++v)
          xv[v] = load_lanes<V>(xs + v * W * p.stride, p.stride, v == NV - 1 ? n_last : W);
        for (int k = 0; k < KB; ++k) {
          const R wk = V::set1(w[k]);
          for (int v = 0; v < NV; ++v) acc[k][v] = V::fmadd(wk, xv[v], acc[k][v]);
        }
      }
    }
    for (int k = 0; k < p.kb; ++k) store_lanes<V, NV>(p.y + k * p.ldy + o0, acc[k], n_last, t0 > 0);
  }
}

template <typename V, int KB>
void direct_row_ukernel(const DirectRowArgs<typename V::T>& p) {
  constexpr int W = V::W;
  int64_t o = 0;
  for (; o + 2 * W <= p.ow; o += 2 * W) direct_row_block<V, KB, 2>(p, o, W);
  for (; o < p.ow; o += W) {
    const int64_t left = p.ow - o;
    direct_row_block<V, KB, 1>(p, o, left < W ? static_cast<int>(left) : W);
  }
}

}  // namespace fastconv::kernels

namespace fastconv::kernels {

// ---- backward data: gx[o*stride + s*dilation] += sum_k w[s*KB + k] * gy[k*ldgy + o]
// Vectorised along o; the kb gradient rows are combined in registers before the single
// read-modify-write of gx. A stride > 1 scatters lane by lane.
template <typename V>
void direct_row_bwd_data(const DirectRowBwdDataArgs<typename V::T>& p) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int W = V::W;
  for (int64_t s = 0; s < p.kw; ++s) {
    T* gx = p.gx + s * p.dilation;
    const T* ws = p.w + s * p.KB;
    for (int64_t o = 0; o < p.ow; o += W) {
      const int n = p.ow - o < W ? static_cast<int>(p.ow - o) : W;
      R acc = V::zero();
      for (int k = 0; k < p.kb; ++k)
        acc = V::fmadd(V::set1(ws[k]), load_lanes<V>(p.gy + k * p.ldgy + o, 1, n), acc);
      if (p.stride == 1 && n == W) {
        V::storeu(gx + o, V::add(V::loadu(gx + o), acc));
      } else {
        alignas(64) T t[W];
        V::storeu(t, acc);
        for (int i = 0; i < n; ++i) gx[(o + i) * p.stride] += t[i];
      }
    }
  }
}

// ---- backward weights: sums[s] += sum_o gy[o] * x[o*stride + s*dilation]
// One vector accumulator per s over the row, reduced lane by lane in a fixed order (the result
// does not depend on threads).
template <typename V>
void direct_row_bwd_weights(const DirectRowBwdWeightsArgs<typename V::T>& p) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int W = V::W;
  for (int64_t s = 0; s < p.kw; ++s) {
    const T* xs = p.x + s * p.dilation;
    R acc = V::zero();
    for (int64_t o = 0; o < p.ow; o += W) {
      const int n = p.ow - o < W ? static_cast<int>(p.ow - o) : W;
      acc = V::fmadd(load_lanes<V>(p.gy + o, 1, n), load_lanes<V>(xs + o * p.stride, p.stride, n),
                     acc);
    }
    alignas(64) T t[W];
    V::storeu(t, acc);
    T sum = T(0);
    for (int i = 0; i < W; ++i) sum += t[i];
    p.sums[s] += sum;
  }
}

}  // namespace fastconv::kernels

namespace fastconv::kernels {

// ---- depthwise forward, one whole plane per call:
//   y[oh*OW + ow] = bias + sum_{kh, kw} w[kh*KW + kw] * x[(oh*sh + kh*dh)*ldx + ow*sw + kw*dw]
// The kernel's taps stay broadcast in registers for the whole plane; two output vectors are in
// flight for instruction-level parallelism; a row's last vector ends at its last output
// (overlapping the one before) when the row holds a whole vector, else it is masked. KH, KW
// and the stride S along the row are compile-time where given (0: from the arguments).
template <typename V, int KH, int KW, int S>
void depthwise_plane_impl(const DepthwisePlaneArgs<typename V::T>& p) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int W = V::W;
  constexpr bool kFixed = KH > 0 && KW > 0;
  const int64_t kh_n = kFixed ? KH : p.kh, kw_n = kFixed ? KW : p.kw;
  const int64_t sw = S ? S : p.sw;
  R wv[kFixed ? KH * KW : 1];
  if constexpr (kFixed)
    for (int t = 0; t < KH * KW; ++t) wv[t] = V::set1(p.w[t]);
  const auto weight = [&](int64_t t) {
    if constexpr (kFixed) {
      return wv[t];
    } else {
      return V::set1(p.w[t]);
    }
  };
  const auto load = [&](const T* q, int lanes) {
    if constexpr (S == 1) {
      return lanes == W ? V::loadu(q) : V::load_partial(q, lanes);
    } else if constexpr (S == 2) {
      return lanes == W ? V::load_even(q) : V::load_even_partial(q, lanes);
    } else {
      return load_lanes<V>(q, sw, lanes);
    }
  };
  const R bias = V::set1(p.bias);
  // Stride 2 with three contiguous taps along the row: the 2W + 1 inputs of W outputs are
  // loaded once and split into even lanes (tap 0), odd lanes (tap 1) and the even lanes
  // shifted by one (tap 2), as the pooling kernels do.
  const bool split = S == 2 && KW == 3 && p.dw == 1;
  // Outputs o .. o+lanes-1 of the row whose input starts at xr.
  const auto vec = [&](const T* xr, int64_t o, int lanes) {
    R acc = bias;
    for (int64_t kh = 0; kh < kh_n; ++kh) {
      const T* q = xr + kh * p.dh * p.ldx + o * sw;
      if (split && lanes == W) {
        const R lo = V::loadu(q), hi = V::loadu(q + W), even = V::even(lo, hi);
        acc = V::fmadd(weight(kh * 3), even, acc);
        acc = V::fmadd(weight(kh * 3 + 1), V::odd(lo, hi), acc);
        acc = V::fmadd(weight(kh * 3 + 2), V::shift_in(even, V::load_partial(q + 2 * W, 1)), acc);
        continue;
      }
      for (int64_t kw = 0; kw < kw_n; ++kw)
        acc = V::fmadd(weight(kh * kw_n + kw), load(q + kw * p.dw, lanes), acc);
    }
    return acc;
  };
  for (int64_t oh = 0; oh < p.oh; ++oh) {
    const T* xr = p.x + oh * p.sh * p.ldx;
    T* yr = p.y + oh * p.ow;
    if (p.ow < W) {
      alignas(64) T t[W];
      V::storeu(t, vec(xr, 0, static_cast<int>(p.ow)));
      for (int64_t i = 0; i < p.ow; ++i) yr[i] = t[i];
      continue;
    }
    int64_t o = 0;
    for (; !split && o + 2 * W <= p.ow; o += 2 * W) {
      R a0 = bias, a1 = bias;
      for (int64_t kh = 0; kh < kh_n; ++kh) {
        const T* q = xr + kh * p.dh * p.ldx + o * sw;
        for (int64_t kw = 0; kw < kw_n; ++kw) {
          const R wk = weight(kh * kw_n + kw);
          a0 = V::fmadd(wk, load(q + kw * p.dw, W), a0);
          a1 = V::fmadd(wk, load(q + W * sw + kw * p.dw, W), a1);
        }
      }
      V::storeu(yr + o, a0);
      V::storeu(yr + o + W, a1);
    }
    for (; o + W <= p.ow; o += W) V::storeu(yr + o, vec(xr, o, W));
    if (o < p.ow) V::storeu(yr + p.ow - W, vec(xr, p.ow - W, W));  // overlaps the one before
  }
}

// 3x3 depthwise without dilation at stride S = 1 or 2 along both axes, rows of at least W
// outputs, read from the unpadded plane: the zero padding is folded into the loads (rows
// outside the input read as zero vectors, columns masked), so the plane is not copied. The
// plane is swept down in strips of NV output vectors (the last one of a row ends at its last
// output, overlapping the one before); every input row is loaded once per strip, its three
// taps along the row (at stride 2: two vectors split into even and odd lanes, as the pooling
// kernels do) feeding every output row it reaches, whose accumulators roll down the strip:
// 3 loads per output vector at stride 1 instead of 9. The sums run in the order of the other
// plane kernels (bias, then the taps row by row), so the result is the same bit for bit.
template <typename V, int S, int NV>
void depthwise_plane_3x3(const DepthwisePlaneArgs<typename V::T>& p) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int W = V::W;
  static_assert(S == 1 || S == 2, "stride 1 or 2");
  R w[9];
  for (int t = 0; t < 9; ++t) w[t] = V::set1(p.w[t]);
  const R bias = V::set1(p.bias);
  const T* const x = p.x;
  const int64_t ldx = p.ldx, in_h = p.in_h, in_w = p.in_w, top = p.top, ow = p.ow;
  for (int64_t s = 0; s < ow; s += NV * W) {
    // The strip's output vectors o[v], the input column of their lane 0 c[v], and the loads of
    // an input row that feed them: at stride 1 columns c + k .. c + k + W - 1 (the three taps
    // along the row, k = 0..2), at stride 2 c + k W .. (k = 0, 1: the two vectors split into
    // even and odd lanes) and the one column c + 2 W (k = 2); lanes[v][k] holds the lanes of
    // load k inside the row, so the padding's zeros come from masked loads with no branch.
    int64_t o[NV], c[NV];
    typename V::Lanes lanes[NV][3];
    for (int v = 0; v < NV; ++v) {
      o[v] = std::min<int64_t>(s + v * W, ow - W);
      c[v] = o[v] * S - p.left;
      for (int k = 0; k < 3; ++k) {
        const int64_t first = c[v] + (S == 1 ? k : k * W), width = S == 2 && k == 2 ? 1 : W;
        const int64_t lo = std::max<int64_t>(0, -first);
        const int64_t hi = std::min<int64_t>(width, in_w - first);
        lanes[v][k] = lo < hi ? V::lanes_between(static_cast<int>(lo), static_cast<int>(hi))
                              : typename V::Lanes(0);
      }
    }
    // Input row r of the padded plane (null: a row of the padding).
    const auto input_row = [&](int64_t r) {
      return r >= top && r - top < in_h ? x + (r - top) * ldx : nullptr;
    };
    // The inputs of output vector v for taps (kh, 0..2) from an input row: t[0..2].
    const auto taps = [&](const T* row, int v, R* t) {
      if (!row) {
        t[0] = t[1] = t[2] = V::zero();
        return;
      }
      const T* q = row + c[v];
      if constexpr (S == 1) {
        FASTCONV_UNROLL
        for (int k = 0; k < 3; ++k) t[k] = V::load_lanes(q + k, lanes[v][k]);
      } else {  // columns c .. c + 2W - 1 and c + 2W (tap 2 of the last lane)
        const R lo = V::load_lanes(q, lanes[v][0]), hi = V::load_lanes(q + W, lanes[v][1]);
        t[0] = V::even(lo, hi);
        t[1] = V::odd(lo, hi);
        t[2] = V::shift_in(t[0], V::load_lanes(q + 2 * W, lanes[v][2]));
      }
    };
    // acc += taps of kernel row kh (or = bias + them, when `start`).
    const auto add_row = [&](const R* t, int kh, R& acc, bool start) {
      acc = V::fmadd(w[kh * 3], t[0], start ? bias : acc);
      acc = V::fmadd(w[kh * 3 + 1], t[1], acc);
      acc = V::fmadd(w[kh * 3 + 2], t[2], acc);
    };
    const auto store = [&](int64_t oh, const R* row) {
      FASTCONV_UNROLL
      for (int v = 0; v < NV; ++v) V::storeu(p.y + oh * ow + o[v], row[v]);
    };
    // acc[i]: one output row's NV vectors; the rows rotate through i (compile-time indices,
    // so that the accumulators stay in registers).
    R acc[3][NV];
    for (auto& row : acc)
      for (R& a : row) a = bias;  // (rows before the first are summed and never stored)
    const std::integral_constant<int, 0> i0;
    const std::integral_constant<int, 1> i1;
    const std::integral_constant<int, 2> i2;
    if constexpr (S == 1) {
      // Padded row r completes output row r - 2 (in acc[done]), continues row r - 1
      // (acc[mid]) and starts row r (acc[fresh]).
      const auto step = [&](int64_t r, auto done, auto mid, auto fresh) {
        const T* row = input_row(r);
        FASTCONV_UNROLL
        for (int v = 0; v < NV; ++v) {
          R t[3];
          taps(row, v, t);
          add_row(t, 2, acc[done][v], false);
          add_row(t, 1, acc[mid][v], false);
          add_row(t, 0, acc[fresh][v], true);
        }
        if (r >= 2) store(r - 2, acc[done]);
      };
      const int64_t steps = p.oh + 2;
      int64_t r = 0;
      for (; r + 3 <= steps; r += 3) {
        step(r, i0, i1, i2);
        step(r + 1, i1, i2, i0);
        step(r + 2, i2, i0, i1);
      }
      if (r < steps) step(r, i0, i1, i2);
      if (r + 1 < steps) step(r + 1, i1, i2, i0);
    } else {
      // Padded row 2j completes output row j - 1 (in acc[done]) and starts row j
      // (acc[fresh]); row 2j + 1 continues row j.
      const auto step = [&](int64_t j, auto done, auto fresh) {
        const T* row = input_row(2 * j);
        FASTCONV_UNROLL
        for (int v = 0; v < NV; ++v) {
          R t[3];
          taps(row, v, t);
          if (j > 0) add_row(t, 2, acc[done][v], false);
          if (j < p.oh) add_row(t, 0, acc[fresh][v], true);
        }
        if (j > 0) store(j - 1, acc[done]);
        if (j == p.oh) return;
        row = input_row(2 * j + 1);
        FASTCONV_UNROLL
        for (int v = 0; v < NV; ++v) {
          R t[3];
          taps(row, v, t);
          add_row(t, 1, acc[fresh][v], false);
        }
      };
      int64_t j = 0;
      for (; j + 2 <= p.oh + 1; j += 2) {
        step(j, i0, i1);
        step(j + 1, i1, i0);
      }
      if (j <= p.oh) step(j, i0, i1);
    }
  }
}

// Small planes at stride 1, where rows shorter than two vectors would leave most lanes idle:
// the outputs are computed on the padded input's grid, q = oh*ldx + ow for ow < ldx, where
// every tap is one constant offset (x[q + kh*dh*ldx + kw*dw]), so the plane is one contiguous
// run of vectors with independent accumulators; the ldx - OW columns past each row's end are
// computed and dropped. kDepthwiseFlatMax: the longest run handled (elements).
constexpr int64_t kDepthwiseFlatMax = 1024;

template <typename V, int KH, int KW>
void depthwise_plane_flat(const DepthwisePlaneArgs<typename V::T>& p) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int W = V::W;
  const int64_t kh_n = KH ? KH : p.kh, kw_n = KW ? KW : p.kw;
  const int64_t n = (p.oh - 1) * p.ldx + p.ow;  // grid positions up to the last output
  alignas(64) T buf[kDepthwiseFlatMax + W];
  const R bias = V::set1(p.bias);
  for (int64_t q = 0; q < n; q += W) {
    const int lanes = n - q < W ? static_cast<int>(n - q) : W;
    R a = bias;
    for (int64_t kh = 0; kh < kh_n; ++kh)
      for (int64_t kw = 0; kw < kw_n; ++kw) {
        const R wk = V::set1(p.w[kh * kw_n + kw]);
        a = V::fmadd(wk, load_lanes<V>(p.x + q + kh * p.dh * p.ldx + kw * p.dw, 1, lanes), a);
      }
    V::storeu(buf + q, a);
  }
  for (int64_t oh = 0; oh < p.oh; ++oh)
    for (int64_t o = 0; o < p.ow; o += W) {
      const int lanes = p.ow - o < W ? static_cast<int>(p.ow - o) : W;
      V::store_partial(p.y + oh * p.ow + o, V::loadu(buf + oh * p.ldx + o), lanes);
    }
}

// The input plane of p into the interior of the padded plane buf (whose border is zero
// already), row by row with masked vector loads and stores: no library call per short row.
template <typename V>
void copy_into_padded(const DepthwisePlaneArgs<typename V::T>& p, typename V::T* buf) {
  using T = typename V::T;
  constexpr int W = V::W;
  for (int64_t h = 0; h < p.in_h; ++h) {
    T* row = buf + (p.top + h) * p.wp + p.left;
    const T* src = p.x + h * p.ldx;
    for (int64_t i = 0; i < p.in_w; i += W) {
      const int lanes = static_cast<int>(std::min<int64_t>(W, p.in_w - i));
      V::store_partial(row + i, V::load_partial(src + i, lanes), lanes);
    }
  }
}

// Strips: whether the planes depthwise_plane_strips names go to depthwise_plane_3x3
// (direct_row_kernels sets the table's DirectRowUkernel::plane_strips from the same argument).
template <typename V, bool Strips>
void depthwise_plane(const DepthwisePlaneArgs<typename V::T>& args) {
  constexpr int W = V::W;
  if constexpr (Strips) {  // (not instantiated for the other tables)
    if (depthwise_plane_strips(args.kh, args.kw, args.sh, args.sw, args.dh, args.dw, args.ow, W)) {
      const bool four = args.ow > 2 * W;  // strips of four vectors, else two
      if (args.sh == 1)
        (four ? depthwise_plane_3x3<V, 1, 4> : depthwise_plane_3x3<V, 1, 2>)(args);
      else
        (four ? depthwise_plane_3x3<V, 2, 4> : depthwise_plane_3x3<V, 2, 2>)(args);
      return;
    }
  }
  DepthwisePlaneArgs<typename V::T> p = args;  // the plane the kernels read: x, or xp padded
  if (p.hp != p.in_h || p.wp != p.in_w) {
    copy_into_padded<V>(args, args.scratch);
    p.x = args.scratch;
    p.ldx = args.wp;
  }
  const bool flat = p.sh == 1 && p.sw == 1 && p.ow < 2 * V::W &&
                    (p.oh - 1) * p.ldx + p.ow <= kDepthwiseFlatMax;
  const bool k3 = p.kh == 3 && p.kw == 3;  // the common 3x3 kernel, fully unrolled
  if (flat) {
    k3 ? depthwise_plane_flat<V, 3, 3>(p) : depthwise_plane_flat<V, 0, 0>(p);
  } else if (k3 && p.sw == 1) {
    depthwise_plane_impl<V, 3, 3, 1>(p);
  } else if (k3 && p.sw == 2) {
    depthwise_plane_impl<V, 3, 3, 2>(p);
  } else {
    depthwise_plane_impl<V, 0, 0, 0>(p);
  }
}

// DepthwiseBlockedArgs (kernel_table.hpp): every output a vector of W channels; UR outputs
// along the row at a time share each weight vector (the taps stay in registers up to 25).
template <typename V>
void depthwise_blocked(const DepthwiseBlockedArgs<typename V::T>& a) {
  using R = typename V::R;
  constexpr int W = V::W;
  constexpr int UR = 4;
  constexpr int kMaxTaps = 25;
  const int64_t taps = a.kh * a.kw;
  R wv[kMaxTaps];
  const bool cached = taps <= kMaxTaps;
  if (cached)
    for (int64_t t = 0; t < taps; ++t) wv[t] = V::loadu(a.w + t * W);
  const R bias = a.bias ? V::loadu(a.bias) : V::zero();
  const R lo = V::set1(a.lo), hi = V::set1(a.hi);
  for (int64_t oh = 0; oh < a.oh; ++oh) {
    const auto* xr = a.x + oh * a.sh * a.ldx;
    auto* yr = a.y + oh * a.ow * W;
    int64_t ow = 0;
    for (; ow + UR <= a.ow; ow += UR) {
      R acc[UR];
      for (int u = 0; u < UR; ++u) acc[u] = bias;
      for (int64_t i = 0; i < a.kh; ++i)
        for (int64_t j = 0; j < a.kw; ++j) {
          const R wt = cached ? wv[i * a.kw + j] : V::loadu(a.w + (i * a.kw + j) * W);
          const auto* q = xr + i * a.dh * a.ldx + (ow * a.sw + j * a.dw) * W;
          for (int u = 0; u < UR; ++u) acc[u] = V::fmadd(wt, V::loadu(q + u * a.sw * W), acc[u]);
        }
      for (int u = 0; u < UR; ++u)
        V::storeu(yr + (ow + u) * W, a.clamp ? V::min(V::max(acc[u], lo), hi) : acc[u]);
    }
    for (; ow < a.ow; ++ow) {
      R acc = bias;
      for (int64_t i = 0; i < a.kh; ++i)
        for (int64_t j = 0; j < a.kw; ++j) {
          const R wt = cached ? wv[i * a.kw + j] : V::loadu(a.w + (i * a.kw + j) * W);
          acc = V::fmadd(wt, V::loadu(xr + i * a.dh * a.ldx + (ow * a.sw + j * a.dw) * W), acc);
        }
      V::storeu(yr + ow * W, a.clamp ? V::min(V::max(acc, lo), hi) : acc);
    }
  }
}

// The direct row kernels of one ISA (its table entry, every field set). Strips: whether
// depthwise_plane takes the planes depthwise_plane_strips names in strips, and so whether the
// drivers skip their padded copy (plane_strips): one template argument says both.
template <typename V, bool Strips>
DirectRowUkernel<typename V::T> direct_row_kernels() {
  DirectRowUkernel<typename V::T> k;
  k.kb = 4;
  k.run = &direct_row_ukernel<V, 4>;
  k.run_single = &direct_row_ukernel<V, 1>;
  k.bwd_data = &direct_row_bwd_data<V>;
  k.bwd_weights = &direct_row_bwd_weights<V>;
  k.depthwise_plane = &depthwise_plane<V, Strips>;
  k.depthwise_blocked = &depthwise_blocked<V>;
  k.w = V::W;
  k.plane_strips = Strips;
  return k;
}

}  // namespace fastconv::kernels
