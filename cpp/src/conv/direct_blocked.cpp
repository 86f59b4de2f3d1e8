// conv/direct_blocked.cpp — direct convolution of dense layers on channel-blocked layouts.
//
//   x  N x C x in (padded)            -> xb [g][cb][Dp][Hp][Wp][W]   one image at a time
//   w  K x Cg x KD x KH x KW          -> wb [g][kb][cb][tap][ci][ko]  packed once (plan)
//   tile kernel: NB output blocks x UR outputs along W, the whole reduction in registers
//   y  N x K x out                    <- each tile scattered back with bias and activation
// with W the ISA's vector lanes, cb / kb blocks of W input / output channels of a group (zero
// beyond Cg / Kg) and tap = (kd, kh, kw). The layout change is one pass over the input per call
// (the im2col that GEMM needs copies it once per kernel tap); outputs go straight to NCHW from
// the registers' tile. Tasks are output rows (g, block of NB output blocks, od, oh) of one image;
// each owns its outputs, so results do not depend on the thread count. Along a row, tiles of UR
// outputs start every UR; the last one ends at the row's end, overlapping the one before.
#include "direct_blocked.hpp"

#include <algorithm>

#include "activation.hpp"
#include "util/checked.hpp"
#include "util/parallel.hpp"

namespace fastconv::conv::blocked {

namespace {

using util::ceil_div;
using util::round_up;

// How a problem is cut into tiles for the blocked kernels `uk`.
struct Tiling {
  int w = 0;        // lanes
  int nb = 1;       // output blocks per tile
  int ur = 1;       // outputs per tile along W
  int64_t ncb = 0;  // input channel blocks per group
  int64_t nkb = 0;  // output channel blocks per group, rounded up to a multiple of nb
  int64_t ntaps = 0;

  template <typename T>
  Tiling(const ConvProblem& p, const kernels::BlockedConvUkernel<T>& uk) : w(uk.w) {
    ncb = ceil_div(p.C_per_group(), w);
    const int64_t blocks = ceil_div(p.K_per_group(), w);
    const int64_t OW = p.out[2];
    // The (NB, UR) with the most accumulators in use, NB = 2 first (then 4, 1) on ties.
    int best = 0;
    for (int n : {2, 4, 1}) {
      if (n > 1 && n > blocks) continue;
      const int u = widest_ur(n, uk.max_acc, OW);
      if (u > 0 && n * u > best) best = n * u, nb = n, ur = u;
    }
    nkb = round_up(blocks, nb);
    ntaps = p.kernel_spatial();
  }

  // The largest UR in {1..7, 14} with nb x UR <= max_acc and UR <= OW (0: none).
  static int widest_ur(int nb, int max_acc, int64_t OW) {
    for (int u : {14, 7, 6, 5, 4, 3, 2, 1})
      if (nb * u <= max_acc && u <= OW) return u;
    return 0;
  }

  int64_t tap_block() const { return int64_t(w) * w; }
  int64_t weight_block() const { return ncb * ntaps * tap_block(); }  // one output block's
};

// Elements of one image's blocked input: groups x ncb x padded planes x W.
int64_t blocked_image_size(const ConvProblem& p, const Tiling& t) {
  return p.groups * t.ncb * p.in_spatial() * t.w;
}

template <typename T>
void pack(const ConvArgs& a, void* packed) {
  const ConvProblem& p = a.problem;
  const Tiling t(p, a.kernels.get<T>().blocked);
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), W = t.w;
  const auto* w = static_cast<const T*>(a.w);
  auto* wb = static_cast<T*>(packed);
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1)
  for (int64_t gk = 0; gk < p.groups * t.nkb; ++gk) {
    const int64_t g = gk / t.nkb, kb = gk % t.nkb;
    T* dst = wb + gk * t.weight_block();
    for (int64_t cb = 0; cb < t.ncb; ++cb)
      for (int64_t tap = 0; tap < t.ntaps; ++tap)
        for (int64_t ci = 0; ci < W; ++ci)
          for (int64_t ko = 0; ko < W; ++ko) {
            const int64_t k = kb * W + ko, c = cb * W + ci;
            *dst++ = k < Kg && c < Cg ? w[((g * Kg + k) * Cg + c) * t.ntaps + tap] : T(0);
          }
  }
}

// Image n of x (N x C x padded in) -> xb [g][cb][Dp][Hp][Wp][W], zero beyond Cg.
template <typename T>
void to_blocked(const ConvProblem& p, const Tiling& t, const T* x, int64_t n, T* xb,
                int threads) {
  const int64_t Cg = p.C_per_group(), W = t.w, Wp = p.in[2], rows = p.in[0] * p.in[1];
  const int64_t plane = p.in_spatial();
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t task = 0; task < p.groups * t.ncb * rows; ++task) {
    const int64_t row = task % rows, gcb = task / rows, g = gcb / t.ncb, cb = gcb % t.ncb;
    T* dst = xb + (gcb * rows + row) * Wp * W;
    for (int64_t ci = 0; ci < W; ++ci) {
      const int64_t c = cb * W + ci;
      if (c >= Cg) {
        for (int64_t i = 0; i < Wp; ++i) dst[i * W + ci] = T(0);
        continue;
      }
      const T* src = x + (n * p.C + g * Cg + c) * plane + row * Wp;
      for (int64_t i = 0; i < Wp; ++i) dst[i * W + ci] = src[i];
    }
  }
}

template <typename T>
void run(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& uk = a.kernels.get<T>().blocked;
  const Tiling t(p, uk);
  const int64_t Kg = p.K_per_group(), W = t.w;
  const int64_t Hp = p.in[1], Wp = p.in[2], OH = p.out[1], OW = p.out[2], P = p.out_spatial();
  const auto* x = static_cast<const T*>(a.x);
  const auto* wb = static_cast<const T*>(a.packed_w);
  const auto* bias = static_cast<const T*>(a.b);
  auto* y = static_cast<T*>(a.out);
  const kernels::BlockedConvFn<T> tile_fn =
      uk.tile[kernels::BlockedConvUkernel<T>::nb_index(t.nb)][t.ur][p.stride[2] - 1];

  auto* taps = static_cast<int64_t*>(a.workspace);
  T* xb = reinterpret_cast<T*>(taps + round_up(t.ntaps, 8));
  T* tiles = xb + round_up(blocked_image_size(p, t), 16);
  const int64_t tile_stride = util::scratch_stride(t.nb * t.ur * W, sizeof(T));
  for (int64_t kd = 0, i = 0; kd < p.kernel[0]; ++kd)
    for (int64_t kh = 0; kh < p.kernel[1]; ++kh)
      for (int64_t kw = 0; kw < p.kernel[2]; ++kw, ++i)
        taps[i] = ((kd * p.dilation[0] * Hp + kh * p.dilation[1]) * Wp + kw * p.dilation[2]) * W;

  const int64_t kgroups = t.nkb / t.nb, rows = p.out[0] * OH;
  const int64_t x_block = p.in_spatial() * W;
  for (int64_t n = 0; n < p.N; ++n) {
    to_blocked(p, t, x, n, xb, a.threads);
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1)
    for (int64_t task = 0; task < p.groups * kgroups * rows; ++task) {
      const int64_t row = task % rows, kg = task / rows % kgroups, g = task / (rows * kgroups);
      const int64_t od = row / OH, oh = row % OH;
      T* tile = tiles + util::thread_index() * tile_stride;
      kernels::BlockedConvArgs<T> args;
      args.x_block = x_block;
      args.taps = taps;
      args.ntaps = t.ntaps;
      args.ncb = t.ncb;
      args.w = wb + (g * t.nkb + kg * t.nb) * t.weight_block();
      args.w_block = t.weight_block();
      args.y = tile;
      const T* x_row = xb + g * t.ncb * x_block +
                       (od * p.stride[0] * Hp + oh * p.stride[1]) * Wp * W;
      for (int64_t ow0 = 0; ow0 < OW; ow0 += t.ur) {
        const int64_t o = std::min(ow0, OW - t.ur);  // the last tile ends at the row's end
        args.x = x_row + o * p.stride[2] * W;
        tile_fn(args);
        for (int b = 0; b < t.nb; ++b)
          for (int64_t ko = 0; ko < W; ++ko) {
            const int64_t k = (kg * t.nb + b) * W + ko;
            if (k >= Kg) break;
            const T bk = bias ? bias[g * Kg + k] : T(0);
            T* out = y + (n * p.K + g * Kg + k) * P + row * OW + o;
            const T* v = tile + b * t.ur * W + ko;
            for (int r = 0; r < t.ur; ++r) out[r] = v[r * W] + bk;
            activate(a.activation, out, t.ur);
          }
      }
    }
  }
}

template <typename T>
const kernels::BlockedConvUkernel<T>& kernels_of(const kernels::KernelTable& k) {
  return k.get<T>().blocked;
}

}  // namespace

bool applies(const ConvProblem& p, DType dtype, const kernels::KernelTable& kernels) {
  const int w = dtype == DType::f32 ? kernels.f32.blocked.w : kernels.f64.blocked.w;
  return w > 0 && (p.stride[2] == 1 || p.stride[2] == 2) && 2 * p.C_per_group() >= w &&
         2 * p.K_per_group() >= w;
}

std::size_t packed_weights_bytes(const ConvProblem& p, DType dtype,
                                 const kernels::KernelTable& kernels) {
  if (dtype == DType::f32) {
    const Tiling t(p, kernels_of<float>(kernels));
    return static_cast<std::size_t>(p.groups * t.nkb * t.weight_block()) * sizeof(float);
  }
  const Tiling t(p, kernels_of<double>(kernels));
  return static_cast<std::size_t>(p.groups * t.nkb * t.weight_block()) * sizeof(double);
}

std::size_t workspace_bytes(const ConvProblem& p, DType dtype, int threads,
                            const kernels::KernelTable& kernels) {
  const auto bytes = [&](auto zero) {
    using T = decltype(zero);
    const Tiling t(p, kernels_of<T>(kernels));
    const int64_t tile_stride = util::scratch_stride(t.nb * t.ur * t.w, sizeof(T));
    return static_cast<std::size_t>(round_up(t.ntaps, 8)) * sizeof(int64_t) +
           static_cast<std::size_t>(round_up(blocked_image_size(p, t), 16) +
                                    threads * tile_stride) * sizeof(T);
  };
  return dtype == DType::f32 ? bytes(0.0f) : bytes(0.0);
}

void pack_weights(const ConvArgs& a, void* packed) {
  by_dtype_pack<pack<float>, pack<double>>(a, packed);
}

void forward(const ConvArgs& a) { by_dtype<run<float>, run<double>>(a); }

}  // namespace fastconv::conv::blocked
