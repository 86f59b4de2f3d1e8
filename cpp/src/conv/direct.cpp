// conv/direct.cpp — direct convolution: forward, backward-data, backward-weights.
//
//   forward           y[n][k][o]   = b[k] + sum_{c in group(k), r} w[k][c][r] * x[n][c][o*s + r*d]
//   backward-data     dx[n][c][i] += w[k][c][r] * dy[n][k][o]          for every i = o*s + r*d
//   backward-weights  dw[k][c][r]  = sum_{n, o} dy[n][k][o] * x[n][c][o*s + r*d]
// (x and dx padded; o, r, i are 3-D positions). Every direction works on whole rows along W with
// the ISA's row microkernels (kernels/generic/direct_ukernel.hpp), vectorised along the row.
// The (c, kd, kh) "taps" of a row are offsets shared by every row; weights are packed per
// block of KB output channels as [tap][kw][KB]. Work is split so that each task owns its
// outputs: forward by output rows (n, g, channel block, od, oh) — or by whole planes for
// depthwise layers, whose kernel keeps its taps in registers (narrow planes: W channels at once
// in the channel-blocked layout); backward-data by input planes
// (n, c), except depthwise layers, whose data gradient is depthwise forwards of dy with
// reversed taps, one per stride phase; backward-weights by weight (k, c) pairs, each summed
// over the batch in a fixed order.
// Best where GEMM tiles would be mostly padding: depthwise, few channels per group.
#include <algorithm>
#include <array>
#include <numeric>
#include <vector>

#include "activation.hpp"
#include "algorithm.hpp"
#include "blocked_layout.hpp"
#include "direct_blocked.hpp"
#include "util/buffer.hpp"
#include "util/checked.hpp"
#include "util/dtype.hpp"
#include "util/parallel.hpp"

namespace fastconv::conv {

namespace {

using util::ceil_div;

// Taps of a row: (c, kd, kh) for the Cg channels of a group.
int64_t taps(const ConvProblem& p) { return p.C_per_group() * p.kernel[0] * p.kernel[1]; }

// Output channels per block for the direct kernels: KB, or 1 when a group has fewer.
template <typename T>
int block_channels(const ConvProblem& p, const kernels::DirectRowUkernel<T>& uk) {
  return p.K_per_group() < uk.kb ? 1 : uk.kb;
}

// Elements of packed weights: groups x blocks x taps x KW x kb.
int64_t packed_weight_size(const ConvProblem& p, int kb) {
  return p.groups * ceil_div(p.K_per_group(), kb) * taps(p) * p.kernel[2] * kb;
}

// w: K x Cg x KD x KH x KW -> wp[g][block][tap][kw][kb], zero beyond the group's channels.
template <typename T>
void pack_weights(const ConvProblem& p, const T* w, int kb, T* wp) {
  const int64_t Kg = p.K_per_group(), ntaps = taps(p), KW = p.kernel[2];
  const int64_t blocks = ceil_div(Kg, kb);
  for (int64_t g = 0; g < p.groups; ++g)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      T* dst = wp + (g * blocks + blk) * ntaps * KW * kb;
      for (int64_t t = 0; t < ntaps; ++t)
        for (int64_t s = 0; s < KW; ++s)
          for (int k = 0; k < kb; ++k) {
            const int64_t kk = blk * kb + k;
            dst[(t * KW + s) * kb + k] = kk < Kg ? w[((g * Kg + kk) * ntaps + t) * KW + s] : T(0);
          }
    }
}

// Depthwise (one input and one output channel per group) with a 1 x KH x KW kernel of at most
// 64 taps (one register accumulator per output sums them all): whole planes per kernel call.
bool depthwise_planes(const ConvProblem& p) {
  return p.C_per_group() == 1 && p.K_per_group() == 1 && p.kernel[0] == 1 &&
         p.kernel[1] * p.kernel[2] <= 64;
}

// Whether the plane kernel (uk.depthwise_plane) reads p's planes in strips, without a padded
// copy.
template <typename T>
bool plane_strips(const ConvProblem& p, const kernels::DirectRowUkernel<T>& uk) {
  return uk.plane_strips &&
         kernels::depthwise_plane_strips(p.kernel[1], p.kernel[2], p.stride[1], p.stride[2],
                                         p.dilation[1], p.dilation[2], p.out[2], uk.w);
}

// Padded extents (H, W) of a depthwise problem's planes: the problem's own padding (when the
// algorithm pads the input itself) or none (the unpadded view of a padded input).
std::array<int64_t, 2> depthwise_padded_plane(const ConvProblem& p) {
  return {p.in[1] + p.pad_lo[1] + p.pad_hi[1], p.in[2] + p.pad_lo[2] + p.pad_hi[2]};
}

// The output plane's extents and the kernel's window along H and W, as a depthwise kernel's
// arguments (DepthwisePlaneArgs, DepthwiseBlockedArgs) name them.
template <typename Args>
void set_plane_window(const ConvProblem& p, Args& args) {
  args.oh = p.out[1];
  args.ow = p.out[2];
  args.kh = p.kernel[1];
  args.kw = p.kernel[2];
  args.sh = p.stride[1];
  args.sw = p.stride[2];
  args.dh = p.dilation[1];
  args.dw = p.dilation[2];
}

// x N x C x in, w C x 1 x 1 x KH x KW -> y N x C x out; tasks (n, c, od). Zero padding is
// applied by the kernel: folded into its loads (plane_strips), or plane by plane into the
// thread's scratch (in cache); never by a padded copy of the whole input.
template <typename T>
void forward_depthwise(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& uk = a.kernels.get<T>().direct_row;
  const auto* x = static_cast<const T*>(a.x);
  const auto* w = static_cast<const T*>(a.packed_w);  // as given: C x KH x KW
  const auto* b = static_cast<const T*>(a.b);
  auto* y = static_cast<T*>(a.out);
  const int64_t H = p.in[1], W = p.in[2], taps = p.kernel[1] * p.kernel[2];
  const auto [Hp, Wp] = depthwise_padded_plane(p);
  const int64_t plane_stride = util::scratch_stride(Hp * Wp, sizeof(T));
  const int64_t out_plane = p.out[1] * p.out[2];
  const bool scratch_planes = (Hp != H || Wp != W) && !plane_strips(p, uk);
  if (scratch_planes) {  // the scratch planes' borders: zero once for every plane
    T* scratch = static_cast<T*>(a.workspace);
    std::fill(scratch, scratch + a.threads * plane_stride, T(0));
  }
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1)
  for (int64_t t = 0; t < p.N * p.C * p.out[0]; ++t) {
    const int64_t od = t % p.out[0], nc = t / p.out[0], c = nc % p.C;
    const int64_t id = od * p.stride[0] - p.pad_lo[0];  // the kernel has one tap along D
    T* yp = y + (nc * p.out[0] + od) * out_plane;
    const T bias = b ? b[c] : T(0);
    if (id < 0 || id >= p.in[0]) {  // a plane of the padding
      std::fill(yp, yp + out_plane, bias);
      activate(a.activation, yp, out_plane);
      continue;
    }
    kernels::DepthwisePlaneArgs<T> args;
    args.x = x + (nc * p.in[0] + id) * H * W;
    args.ldx = W;
    args.in_h = H;
    args.in_w = W;
    args.top = p.pad_lo[1];
    args.left = p.pad_lo[2];
    args.hp = Hp;
    args.wp = Wp;
    args.scratch = scratch_planes
                       ? static_cast<T*>(a.workspace) + util::thread_index() * plane_stride
                       : nullptr;
    args.w = w + c * taps;
    args.bias = bias;
    args.y = yp;
    set_plane_window(p, args);
    uk.depthwise_plane(args);
    activate(a.activation, args.y, out_plane);
  }
}

// Depthwise layers with narrow planes run W channels at once in the channel-blocked layout
// (a plane's rows as vectors of W channels: no lanes idle past the row's end): when a row holds
// fewer than 2W outputs. Measured, 1 thread: 960 x 7x7 0.078 -> 0.066 ms, 32 x 14x14 0.027 ->
// 0.015 ms; on 56 x 56 planes the row kernels stay faster (0.23 against 0.30 ms). Except:
// - 3x3 kernels at stride 1 or 2 without dilation on rows of at least 3W/2 outputs, which the
//   plane kernel sweeps in strips of row vectors (depthwise_plane_3x3): 192 x 28x28, 0.12 ->
//   0.08 ms (16 x 16 outputs, a strip half idle, stay blocked: 0.014 against 0.017 ms);
// - rows of at least W outputs at stride 2 with 3 contiguous taps, which the plane kernel loads
//   once and splits into even and odd lanes: 144 x 56x56 -> 28x28 0.155 -> 0.120 ms (with 5
//   taps, 240 x 56x56, it would be 0.33 -> 0.68 ms; 14 outputs, 192 x 28x28, 0.057 -> 0.086).
template <typename T>
bool depthwise_blocked(const ConvProblem& p, const kernels::KernelSet<T>& ks) {
  const int64_t w = ks.direct_row.w;
  const bool split_rows =
      p.stride[2] == 2 && p.kernel[2] == 3 && p.dilation[2] == 1 && p.out[2] >= w;
  const bool strips = plane_strips(p, ks.direct_row) && 2 * p.out[2] >= 3 * w;
  return depthwise_planes(p) && p.out[2] < 2 * w && !split_rows && !strips;
}

bool depthwise_blocked(const ConvProblem& p, DType dtype, const kernels::KernelTable& kt) {
  return dtype == DType::f32 ? depthwise_blocked(p, kt.f32) : depthwise_blocked(p, kt.f64);
}

// Whether the input planes are interleaved whole rather than row by row: when that takes at
// most 3/4 of the W x W transposes (rows much narrower than W, 7 wide, leave most of a row's
// transpose idle); the whole planes are then copied into the padding, a pass that costs more
// than it saves on wide rows.
bool depthwise_interleave_planes(const ConvProblem& p, int w) {
  const int64_t H = p.in[1], Win = p.in[2];
  return 4 * ceil_div(H * Win, w) <= 3 * H * ceil_div(Win, w);
}

// One padded plane and one output plane of W channels per thread (and one input plane when
// depthwise_interleave_planes).
template <typename T>
int64_t depthwise_blocked_stride(const ConvProblem& p, int w) {
  const auto [Hp, Wp] = depthwise_padded_plane(p);
  const int64_t planes = depthwise_interleave_planes(p, w) ? p.in[1] * p.in[2] : 0;
  return util::scratch_stride((Hp * Wp + p.out[1] * p.out[2] + planes) * w, sizeof(T));
}

// x N x C x in, packed w [cb][tap][W] -> y N x C x out; tasks (n, block of W channels, od).
template <typename T>
void forward_depthwise_blocked(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& ks = a.kernels.get<T>();
  const int W = ks.direct_row.w;
  const auto* x = static_cast<const T*>(a.x);
  const auto* wp = static_cast<const T*>(a.packed_w);
  const auto* b = static_cast<const T*>(a.b);
  auto* y = static_cast<T*>(a.out);
  const int64_t H = p.in[1], Win = p.in[2], taps = p.kernel[1] * p.kernel[2];
  const auto [Hp, Wp] = depthwise_padded_plane(p);
  const int64_t OH = p.out[1], OW = p.out[2], out_plane = OH * OW, cblocks = ceil_div(p.C, W);
  const int64_t stride = depthwise_blocked_stride<T>(p, W);
  const bool whole_planes = depthwise_interleave_planes(p, W);
  const kernels::TileStore<T> st = output_store<T>(nullptr, a.activation);
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1)
  for (int64_t t = 0; t < p.N * cblocks * p.out[0]; ++t) {
    const int64_t od = t % p.out[0], cb = t / p.out[0] % cblocks, n = t / (p.out[0] * cblocks);
    const int64_t c0 = cb * W;
    const int count = static_cast<int>(std::min<int64_t>(W, p.C - c0));
    const int64_t id = od * p.stride[0] - p.pad_lo[0];  // the kernel has one tap along D
    T bias[64] = {};
    for (int c = 0; c < count; ++c) bias[c] = b ? b[c0 + c] : T(0);
    const auto plane = [&](int64_t c) { return ((n * p.C + c0 + c) * p.out[0] + od) * out_plane; };
    if (id < 0 || id >= p.in[0]) {  // a plane of the padding
      for (int c = 0; c < count; ++c) {
        std::fill(y + plane(c), y + plane(c) + out_plane, bias[c]);
        activate(a.activation, y + plane(c), out_plane);
      }
      continue;
    }
    T* xb = static_cast<T*>(a.workspace) + util::thread_index() * stride;
    T* yb = xb + Hp * Wp * W;
    T* xi = yb + out_plane * W;  // the interleaved input planes, when whole_planes
    const T* rows[64];  // channel c's plane, then row
    for (int c = 0; c < W; ++c)
      rows[c] = c < count ? x + ((n * p.C + c0 + c) * p.in[0] + id) * H * Win : nullptr;
    if (whole_planes) ks.blocked.interleave(rows, H * Win, xi);
    for (int64_t h = 0; h < Hp; ++h) {
      T* dst = xb + h * Wp * W;
      const int64_t ih = h - p.pad_lo[1];
      if (ih < 0 || ih >= H) {
        std::fill(dst, dst + Wp * W, T(0));
        continue;
      }
      std::fill(dst, dst + p.pad_lo[2] * W, T(0));
      if (whole_planes) {
        std::copy(xi + ih * Win * W, xi + (ih + 1) * Win * W, dst + p.pad_lo[2] * W);
      } else {
        const T* row[64];
        for (int c = 0; c < W; ++c) row[c] = rows[c] ? rows[c] + ih * Win : nullptr;
        ks.blocked.interleave(row, Win, dst + p.pad_lo[2] * W);
      }
      std::fill(dst + (p.pad_lo[2] + Win) * W, dst + Wp * W, T(0));
    }
    kernels::DepthwiseBlockedArgs<T> args;
    args.x = xb;
    args.ldx = Wp * W;
    args.w = wp + cb * taps * W;
    args.bias = bias;
    args.y = yb;
    set_plane_window(p, args);
    args.clamp = st.clamp;
    args.lo = st.lo;
    args.hi = st.hi;
    ks.direct_row.depthwise_blocked(args);
    T* out_planes[64];  // whole planes again
    for (int c = 0; c < count; ++c) out_planes[c] = y + plane(c);
    ks.blocked.deinterleave(yb, W, out_plane, out_planes, count);
  }
}

// Whole depthwise planes (forward_depthwise) and the channel-blocked kernels (while converting
// to their layout) pad their input themselves.
bool pads_forward_input(const ConvProblem& p, DType dtype, const kernels::KernelTable& kernels) {
  return depthwise_planes(p) || blocked::applies(p, dtype, kernels);
}

// Forward weights as the forward reads them: as given for whole depthwise planes, else packed.
std::size_t packed_weights_bytes(const ConvProblem& p, DType dtype,
                                 const kernels::KernelTable& kernels) {
  if (blocked::applies(p, dtype, kernels)) return blocked::packed_weights_bytes(p, dtype, kernels);
  const bool f32 = dtype == DType::f32;
  const std::size_t elem = util::dtype_size(dtype);
  if (depthwise_blocked(p, dtype, kernels)) {
    const int w = f32 ? kernels.f32.direct_row.w : kernels.f64.direct_row.w;
    return static_cast<std::size_t>(ceil_div(p.C, w) * w * p.kernel_spatial()) * elem;
  }
  if (depthwise_planes(p)) return static_cast<std::size_t>(p.K * p.kernel_spatial()) * elem;
  const int kb = f32 ? block_channels(p, kernels.f32.direct_row)
                     : block_channels(p, kernels.f64.direct_row);
  return static_cast<std::size_t>(packed_weight_size(p, kb)) * elem;
}

template <typename T>
void pack_forward_weights(const ConvArgs& a, void* packed) {
  const ConvProblem& p = a.problem;
  if (blocked::applies(p, a.dtype, a.kernels)) {
    blocked::pack_weights(a, packed);
    return;
  }
  const auto* w = static_cast<const T*>(a.w);
  if (depthwise_blocked(p, a.kernels.get<T>())) {  // [cb][tap][W], zero beyond C
    const auto& ks = a.kernels.get<T>();
    const int W = ks.direct_row.w;  // the blocked layout's lanes
    const int64_t taps = p.kernel_spatial();
    auto* dst = static_cast<T*>(packed);
    const T* rows[64];
    for (int64_t cb = 0; cb < ceil_div(p.C, W); ++cb) {  // W channels' taps into lanes
      for (int c = 0; c < W; ++c) rows[c] = cb * W + c < p.C ? w + (cb * W + c) * taps : nullptr;
      ks.blocked.interleave(rows, taps, dst + cb * taps * W);
    }
    return;
  }
  if (depthwise_planes(p)) {
    std::copy(w, w + p.K * p.kernel_spatial(), static_cast<T*>(packed));
    return;
  }
  pack_weights(p, w, block_channels(p, a.kernels.get<T>().direct_row), static_cast<T*>(packed));
}

// ---- forward:  x N x C x in (padded), packed w (pack_forward_weights) -> y N x K x out.
// Workspace: tap offsets (int64).
template <typename T>
void forward(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  if (blocked::applies(p, a.dtype, a.kernels)) {
    blocked::forward(a);
    return;
  }
  if (depthwise_blocked(p, a.kernels.get<T>())) {
    forward_depthwise_blocked<T>(a);
    return;
  }
  if (depthwise_planes(p)) {
    forward_depthwise<T>(a);
    return;
  }
  const auto& uk = a.kernels.get<T>().direct_row;
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), ntaps = taps(p);
  const int kb = block_channels(p, uk);
  const int64_t blocks = ceil_div(Kg, kb);
  const auto& in = p.in;
  const int64_t HW = in[1] * in[2], DHW = in[0] * HW, P = p.out_spatial();
  const auto* x = static_cast<const T*>(a.x);
  const auto* b = static_cast<const T*>(a.b);
  auto* y = static_cast<T*>(a.out);

  auto* tap_offset = static_cast<int64_t*>(a.workspace);
  const auto* wp = static_cast<const T*>(a.packed_w);
  for (int64_t c = 0, t = 0; c < Cg; ++c)
    for (int64_t kd = 0; kd < p.kernel[0]; ++kd)
      for (int64_t kh = 0; kh < p.kernel[1]; ++kh, ++t)
        tap_offset[t] = c * DHW + kd * p.dilation[0] * HW + kh * p.dilation[1] * in[2];

  const int64_t rows = p.out[0] * p.out[1];
  const int64_t block_size = ntaps * p.kernel[2] * kb;
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1)
  for (int64_t t = 0; t < p.N * p.groups * blocks * rows; ++t) {
    const int64_t r = t % rows, blk = t / rows % blocks, g = t / (rows * blocks) % p.groups;
    const int64_t n = t / (rows * blocks * p.groups);
    const int64_t od = r / p.out[1], oh = r % p.out[1];
    const int64_t k0 = g * Kg + blk * kb;
    kernels::DirectRowArgs<T> args;
    args.x = x + (n * p.C + g * Cg) * DHW + od * p.stride[0] * HW + oh * p.stride[1] * in[2];
    args.tap_offset = tap_offset;
    args.ntaps = ntaps;
    args.kw = p.kernel[2];
    args.stride = p.stride[2];
    args.dilation = p.dilation[2];
    args.w = wp + (g * blocks + blk) * block_size;
    args.bias = b ? b + k0 : nullptr;
    args.y = y + (n * p.K + k0) * P + r * p.out[2];
    args.ldy = P;
    args.kb = static_cast<int>(std::min<int64_t>(kb, Kg - blk * kb));
    args.ow = p.out[2];
    (kb == 1 ? uk.run_single : uk.run)(args);
    for (int k = 0; k < args.kb; ++k) activate(a.activation, args.y + k * P, args.ow);
  }
}

// The data gradient of a strided dense layer, or of a depthwise layer whose planes the
// whole-plane kernels take (depthwise_planes), is a set of forward convolutions of dy (the
// transposed convolution computed as direct ones; Dumoulin & Visin, "A guide to convolution
// arithmetic", 2016, sec. 4). Along an axis of stride s, the kept box [keep_lo, keep_hi) of dx
// splits into s phases, positions j = s*i + r; position j sums w[t] * dy[i - (t*dilation - r)/s]
// over the taps t with t*dilation = r (mod s): every s/g-th tap from the first, g =
// gcd(dilation, s), a kernel of dilation dilation/g. Each phase (r_h, r_w) is thus a stride-1
// forward of dy with those taps reversed (and, dense, the channels swapped), zero-padded so
// that its outputs are the phase's positions: the dense phases run on the channel-blocked
// kernels, where col2im scatters every product (ResNet-50's 3x3 / 2, 1 thread: 3.3 ms by GEMM,
// 2.8 by phases; on small maps and 1x1 kernels GEMM stays faster, registry.cpp). At stride 1
// there is one phase, written straight into dx (depthwise; a dense stride-1 layer has
// blocked::backward_data); otherwise the phases go to a scratch area one after another and
// then together into their positions (scatter_phases). A phase whose padding would be
// negative (a layer padded beyond the kernel's reach) keeps the whole gradient on the row
// kernels. D has stride 1.
struct GradientPhase {
  ConvProblem f;                        // its forward problem; f.out: the phase's positions
  std::array<int64_t, 3> first{}, step{};  // box index of its first position, per axis; s
  std::array<int64_t, 3> t0{}, dt{};       // its first tap and the step between its taps
  bool no_taps = false;                  // positions that no tap reaches: zero
};

// Phase (r_h, r_w) of p's data gradient over the kept box; ok false where it cannot run.
GradientPhase gradient_phase(const ConvProblem& p, const std::array<int64_t, 3>& keep_lo,
                             const std::array<int64_t, 3>& keep_hi, int64_t rh, int64_t rw,
                             bool& ok) {
  GradientPhase g;
  g.f = p;
  g.f.in = p.out;
  g.f.C = p.K;
  g.f.K = p.C;
  g.f.stride = {1, 1, 1};
  g.f.padding_mode = PaddingMode::zeros;
  const std::array<int64_t, 3> r{0, rh, rw};
  for (int d = 0; d < 3; ++d) {
    const int64_t s = p.stride[d], dil = p.dilation[d], k = p.kernel[d];
    const int64_t lo = keep_lo[d], hi = keep_hi[d];
    const int64_t j0 = lo + ((r[d] - lo) % s + s) % s;  // the first box position j = r (mod s)
    const int64_t n = j0 < hi ? (hi - 1 - j0) / s + 1 : 0;
    int64_t t0 = 0;
    while (t0 < k && (t0 * dil - r[d]) % s != 0) ++t0;
    const int64_t dt = s / std::gcd(dil, s);
    const int64_t taps = t0 < k ? (k - 1 - t0) / dt + 1 : 0;
    g.first[d] = j0 - lo;
    g.step[d] = s;
    g.t0[d] = t0;
    g.dt[d] = dt;
    g.f.out[d] = n;
    if (taps == 0) {
      g.no_taps = true;
      g.f.kernel[d] = 1;
      continue;
    }
    const int64_t i0 = (j0 - r[d]) / s, last = ((t0 + (taps - 1) * dt) * dil - r[d]) / s;
    const int64_t dil2 = dt * dil / s;
    g.f.kernel[d] = taps;
    g.f.dilation[d] = dil2;
    g.f.pad_lo[d] = last - i0;
    g.f.pad_hi[d] = n - p.out[d] - g.f.pad_lo[d] + (taps - 1) * dil2;
    if (n > 0 && (g.f.pad_lo[d] < 0 || g.f.pad_hi[d] < 0)) ok = false;
  }
  return g;
}

// The phase of p's data gradient that bounds every phase's workspace, for any kept box: the
// stride-1 phase over the whole padded gradient (every tap, the largest padding and output).
ConvProblem gradient_bound(const ConvProblem& p) {
  ConvProblem s1 = p;
  s1.stride = {1, 1, 1};
  bool ok = true;
  return gradient_phase(s1, {0, 0, 0}, p.in, 0, 0, ok).f;
}

// Elements of any phase's packed weights: the bound's (the blocked layout's depend on the
// channels and taps only), or a depthwise phase's channels in vectors per tap (a phase may take
// the depthwise blocked layout where the bound's planes do not).
int64_t phase_packed_size(const ConvProblem& p, DType dtype, const kernels::KernelTable& kernels) {
  const int w = dtype == DType::f32 ? kernels.f32.direct_row.w : kernels.f64.direct_row.w;
  const auto bound = static_cast<int64_t>(
      packed_weights_bytes(gradient_bound(p), dtype, kernels) / util::dtype_size(dtype));
  return std::max(bound, ceil_div(p.C, w) * w * p.kernel_spatial());
}

}  // namespace

// A dense layer strided along H or W whose phase forwards (dy's channels in, dx's out) the
// blocked kernels serve (algorithm.hpp).
bool direct_phased_data_gradient(const ConvProblem& p, DType dtype,
                                 const kernels::KernelTable& kernels) {
  if (p.stride[0] != 1 || (p.stride[1] == 1 && p.stride[2] == 1)) return false;
  if (depthwise_planes(p) && p.K == p.C) return false;
  bool ok = true;
  return blocked::applies(gradient_phase(p, {0, 0, 0}, p.in, 0, 0, ok).f, dtype, kernels);
}

namespace {

bool phased_gradient_applies(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const bool depthwise = depthwise_planes(p) && p.K == p.C && p.stride[0] == 1;
  if (!depthwise && !direct_phased_data_gradient(p, a.dtype, a.kernels)) return false;
  bool ok = true;
  for (int64_t rh = 0; rh < p.stride[1]; ++rh)
    for (int64_t rw = 0; rw < p.stride[2]; ++rw)
      gradient_phase(p, a.keep_lo, a.keep_hi, rh, rw, ok);
  for (int d = 0; d < 3; ++d) ok = ok && a.keep_hi[d] > a.keep_lo[d];
  return ok;
}

// The phases' outputs (y[q]: planes x out[1] x out[2] for phase q) into their positions of the
// kept box in dx (planes x box[1] x box[2]): phase q's (i, j) at (first[1] + i step[1],
// first[2] + j step[2]). At stride 2 along W the two phases of a row run interleave into it
// (contiguous stores, which the compiler vectorises: on ResNet-50's 3x3 / 2 gradient the
// scatter's share of the profile went from 6 to 3 %).
template <typename T>
void scatter_phases(const std::vector<GradientPhase>& phases, const std::vector<T*>& y,
                    int64_t planes, const std::array<int64_t, 3>& box, T* dx, int threads) {
  const auto row_of = [&](size_t q, int64_t plane, int64_t i) {
    const ConvProblem& f = phases[q].f;
    return y[q] + (plane * f.out[1] + i) * f.out[2];
  };
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t plane = 0; plane < planes; ++plane) {
    T* dst = dx + plane * box[1] * box[2];
    for (size_t q = 0; q < phases.size(); ++q) {
      const GradientPhase& g = phases[q];
      const int64_t OH = g.f.out[1], OW = g.f.out[2];
      // With the next phase (the same rows, the other column of 2): a and b the phases from
      // columns 0 and 1.
      const bool pair = g.step[2] == 2 && q + 1 < phases.size() &&
                        phases[q + 1].first[1] == g.first[1] && phases[q + 1].f.out[1] == OH &&
                        phases[q + 1].first[2] + g.first[2] == 1;
      if (pair) {
        const size_t qa = g.first[2] == 0 ? q : q + 1, qb = qa == q ? q + 1 : q;
        const int64_t na = phases[qa].f.out[2], nb = phases[qb].f.out[2];
        for (int64_t i = 0; i < OH; ++i) {
          T* out = dst + (g.first[1] + i * g.step[1]) * box[2];
          const T* a = row_of(qa, plane, i);
          const T* b = row_of(qb, plane, i);
          for (int64_t j = 0; j < nb; ++j) {
            out[2 * j] = a[j];
            out[2 * j + 1] = b[j];
          }
          if (na > nb) out[2 * nb] = a[nb];
        }
        ++q;
        continue;
      }
      for (int64_t i = 0; i < OH; ++i) {
        T* out = dst + (g.first[1] + i * g.step[1]) * box[2];
        const T* a = row_of(q, plane, i);
        for (int64_t j = 0; j < OW; ++j) out[g.first[2] + j * g.step[2]] = a[j];
      }
    }
  }
}

// The phases' forwards into a.out (the kept box, or the whole gradient when the box is all of
// it). False, writing nothing, when a weight is not finite: the zeros dy is padded with would
// turn 0 x NaN / 0 x Inf into NaN where the definition has no term. Workspace
// (phased_gradient_workspace): the phase's taps, their packing, the forward's workspace and,
// at stride > 1, the phases' outputs.
template <typename T>
bool phased_backward_data(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const int64_t taps = p.kernel_spatial(), KH = p.kernel[1], KW = p.kernel[2];
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group();
  const auto* w = static_cast<const T*>(a.w);
  if (any_non_finite(w, p.K * Cg * taps)) return false;
  const std::array<int64_t, 3> box{a.keep_hi[0] - a.keep_lo[0], a.keep_hi[1] - a.keep_lo[1],
                                   a.keep_hi[2] - a.keep_lo[2]};
  const bool direct_out = p.stride[1] == 1 && p.stride[2] == 1;
  T* sub = static_cast<T*>(a.workspace);
  T* packed = sub + util::round_up(p.K * Cg * taps, 16);
  T* phase_out = packed + util::round_up(phase_packed_size(p, a.dtype, a.kernels), 16);
  void* forward_ws = phase_out + (direct_out ? 0 : util::round_up(p.N * p.C * p.in_spatial(), 16));
  T* dx = static_cast<T*>(a.out);
  // At stride > 1 the phases' outputs go to phase_out one after another (they partition the
  // kept box, so they fit), and into dx's positions together at the end.
  std::vector<GradientPhase> phases;
  std::vector<T*> phase_y;
  int64_t offset = 0;
  for (int64_t rh = 0; rh < p.stride[1]; ++rh)
    for (int64_t rw = 0; rw < p.stride[2]; ++rw) {
      bool ok = true;
      const GradientPhase g = gradient_phase(p, a.keep_lo, a.keep_hi, rh, rw, ok);
      const ConvProblem& f = g.f;
      if (f.out_spatial() == 0) continue;
      T* y = direct_out ? dx : phase_out + offset;
      offset += p.N * p.C * f.out_spatial();
      phases.push_back(g);
      phase_y.push_back(y);
      if (g.no_taps) {
        std::fill(y, y + p.N * p.C * f.out_spatial(), T(0));
      } else {  // the phase's taps, reversed, channels swapped: w[g*Kg + k][c][t_d][t_h][t_w]
                // at sub[g*Cg + c][k][n_d - 1 - u_d][n_h - 1 - u_h][n_w - 1 - u_w]
        const int64_t nd = f.kernel[0], nh = f.kernel[1], nw = f.kernel[2];
        const int64_t ft = nd * nh * nw;
        // Each phase tap's place in sub and in w, worked out once: the copy itself is then a
        // load and a store per element (index arithmetic per element took 8 % of ResNet-50's
        // 3x3 / 2 gradient).
        std::vector<int64_t> to_tap(static_cast<size_t>(ft)), from_tap(static_cast<size_t>(ft));
        for (int64_t ud = 0, u = 0; ud < nd; ++ud)
          for (int64_t uh = 0; uh < nh; ++uh)
            for (int64_t uw = 0; uw < nw; ++uw, ++u) {
              to_tap[u] = ((nd - 1 - ud) * nh + nh - 1 - uh) * nw + nw - 1 - uw;
              from_tap[u] = ((g.t0[0] + ud * g.dt[0]) * KH + g.t0[1] + uh * g.dt[1]) * KW +
                            g.t0[2] + uw * g.dt[2];
            }
        for (int64_t gr = 0; gr < p.groups; ++gr)
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t k = 0; k < Kg; ++k) {
              T* to = sub + ((gr * Cg + c) * Kg + k) * ft;
              const T* from = w + ((gr * Kg + k) * Cg + c) * taps;
              for (int64_t u = 0; u < ft; ++u) to[to_tap[u]] = from[from_tap[u]];
            }
        ConvArgs fa{f, a.dtype, a.dy, sub, nullptr, nullptr, y, forward_ws, a.threads, a.kernels};
        pack_forward_weights<T>(fa, packed);
        fa.packed_w = packed;
        forward<T>(fa);
      }
    }
  if (!direct_out) scatter_phases(phases, phase_y, p.N * p.C * box[0], box, dx, a.threads);
  return true;
}

// Bytes of phased_backward_data's workspace for any kept box of p: the forward's own for the
// bound (its blocked variant included, with an image per thread wherever the batch allows one)
// and at stride > 1 the phases' outputs (together the kept box: at most the whole gradient).
std::size_t phased_gradient_workspace(const ConvProblem& p, DType dtype, int threads,
                                      const kernels::KernelTable& kernels);

// The blocked and the phased data gradients write whole boxes of the input gradient
// (writes_kept_box); with non-finite weights (which both decline: 0 x NaN in their padding)
// backward_data computes the box aside with the row kernels and copies it.
bool writes_kept_box(const ConvArgs& a) {
  return blocked::applies_backward_data(a.problem, a.dtype, a.kernels) ||
         phased_gradient_applies(a);
}

template <typename T>
void backward_data_rows(const ConvArgs& a);

// ---- backward-data:  w K x Cg x kernel, dy N x K x out -> dx N x C x in (padded, zeroed; or
// just the kept box, out_is_kept_box).
template <typename T>
void backward_data(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  if (blocked::applies_backward_data(p, a.dtype, a.kernels)) {
    if (blocked::backward_data(a)) return;  // else a weight is not finite: the row kernels
  } else if (phased_gradient_applies(a) &&
             (a.out_is_kept_box ||
              (a.keep_lo == std::array<int64_t, 3>{0, 0, 0} && a.keep_hi == p.in))) {
    if (phased_backward_data<T>(a)) return;
  }
  if (a.out_is_kept_box) {  // the row kernels write the padded gradient: aside, then the box
    const int64_t plane = p.in_spatial(), planes = p.N * p.C;
    util::AlignedBuffer padded(static_cast<std::size_t>(planes * plane) * sizeof(T),
                               "the padded input gradient");
    T* g = padded.as<T>();
    std::fill(g, g + planes * plane, T(0));
    ConvArgs aside = a;
    aside.out = g;
    aside.out_is_kept_box = false;
    backward_data_rows<T>(aside);
    const auto &lo = a.keep_lo, &hi = a.keep_hi;
    T* out = static_cast<T*>(a.out);
    for (int64_t pl = 0; pl < planes; ++pl)
      for (int64_t d = lo[0]; d < hi[0]; ++d)
        for (int64_t h = lo[1]; h < hi[1]; ++h) {
          const T* src = g + pl * plane + (d * p.in[1] + h) * p.in[2];
          out = std::copy(src + lo[2], src + hi[2], out);
        }
    return;
  }
  backward_data_rows<T>(a);
}

// The row kernels' data gradient. One task per input plane (n, c): it adds every (channel
// block, output row, kd, kh) contribution into its own plane. Workspace: packed weights.
template <typename T>
void backward_data_rows(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& uk = a.kernels.get<T>().direct_row;
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), ntaps = taps(p);
  const int kb = block_channels(p, uk);
  const int64_t blocks = ceil_div(Kg, kb);
  const auto& in = p.in;
  const int64_t HW = in[1] * in[2], DHW = in[0] * HW, P = p.out_spatial();
  const int64_t KD = p.kernel[0], KH = p.kernel[1], KW = p.kernel[2];
  const auto* dy = static_cast<const T*>(a.dy);
  auto* dx = static_cast<T*>(a.out);
  auto* wp = static_cast<T*>(a.workspace);
  pack_weights(p, static_cast<const T*>(a.w), kb, wp);

  const int64_t block_size = ntaps * KW * kb;
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1)
  for (int64_t t = 0; t < p.N * p.C; ++t) {
    const int64_t n = t / p.C, c = t % p.C, g = c / Cg, cl = c % Cg;
    T* plane = dx + t * DHW;
    kernels::DirectRowBwdDataArgs<T> args;
    args.ldgy = P;
    args.KB = kb;
    args.kw = KW;
    args.stride = p.stride[2];
    args.dilation = p.dilation[2];
    args.ow = p.out[2];
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t k0 = g * Kg + blk * kb;
      args.kb = static_cast<int>(std::min<int64_t>(kb, Kg - blk * kb));
      const T* wc = wp + (g * blocks + blk) * block_size + cl * KD * KH * KW * kb;
      for (int64_t od = 0; od < p.out[0]; ++od)
        for (int64_t oh = 0; oh < p.out[1]; ++oh) {
          args.gy = dy + (n * p.K + k0) * P + (od * p.out[1] + oh) * p.out[2];
          for (int64_t kd = 0; kd < KD; ++kd)
            for (int64_t kh = 0; kh < KH; ++kh) {
              args.gx = plane + (od * p.stride[0] + kd * p.dilation[0]) * HW +
                        (oh * p.stride[1] + kh * p.dilation[1]) * in[2];
              args.w = wc + (kd * KH + kh) * KW * kb;
              uk.bwd_data(args);
            }
        }
    }
  }
}

// ---- backward-weights:  x N x C x in (padded), dy N x K x out -> dw K x Cg x kernel.
// One task per (k, c) pair of a group, or, with fewer pairs than threads (template matching's
// single one), per part of a pair's kernel rows (kd, kh); each row of sums (KW taps) takes the
// batch's rows in order either way, so the bits do not depend on the split. No workspace.
template <typename T>
void backward_weights(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  if (blocked::applies_dense(p, a.dtype, a.kernels)) {
    blocked::backward_weights(a);
    return;
  }
  const auto& uk = a.kernels.get<T>().direct_row;
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group();
  const auto& in = p.in;
  const int64_t HW = in[1] * in[2], DHW = in[0] * HW, P = p.out_spatial();
  const int64_t KD = p.kernel[0], KH = p.kernel[1], KW = p.kernel[2];
  const auto* x = static_cast<const T*>(a.x);
  const auto* dy = static_cast<const T*>(a.dy);
  auto* dw = static_cast<T*>(a.out);

  const int64_t pairs = p.K * Cg, rows = KD * KH;
  const int64_t parts =
      pairs < a.threads ? std::min<int64_t>(rows, ceil_div(a.threads, pairs)) : 1;
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1)
  for (int64_t task = 0; task < pairs * parts; ++task) {
    const int64_t t = task / parts, part = task % parts;
    const int64_t k = t / Cg, cl = t % Cg, g = k / Kg, c = g * Cg + cl;
    const int64_t r0 = rows * part / parts, r1 = rows * (part + 1) / parts;  // kernel rows
    T* sums = dw + t * rows * KW;  // dw[k][cl][...]
    std::fill(sums + r0 * KW, sums + r1 * KW, T(0));
    kernels::DirectRowBwdWeightsArgs<T> args;
    args.kw = KW;
    args.stride = p.stride[2];
    args.dilation = p.dilation[2];
    args.ow = p.out[2];
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t od = 0; od < p.out[0]; ++od)
        for (int64_t oh = 0; oh < p.out[1]; ++oh) {
          args.gy = dy + (n * p.K + k) * P + (od * p.out[1] + oh) * p.out[2];
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t kd = r / KH, kh = r % KH;
            args.x = x + (n * p.C + c) * DHW + (od * p.stride[0] + kd * p.dilation[0]) * HW +
                     (oh * p.stride[1] + kh * p.dilation[1]) * in[2];
            args.sums = sums + r * KW;
            uk.bwd_weights(args);
          }
        }
  }
}

std::size_t workspace_bytes(const ConvProblem& p, DType dtype, ConvDirection direction,
                            int threads, const kernels::KernelTable& kernels) {
  switch (direction) {
    case ConvDirection::forward: {
      if (blocked::applies(p, dtype, kernels))
        return blocked::workspace_bytes(p, dtype, threads, kernels);
      if (!depthwise_planes(p)) return taps(p) * sizeof(int64_t);
      const auto [Hp, Wp] = depthwise_padded_plane(p);
      const std::size_t elem = util::dtype_size(dtype);
      if (depthwise_blocked(p, dtype, kernels)) {
        const bool f32 = dtype == DType::f32;
        const int w = f32 ? kernels.f32.direct_row.w : kernels.f64.direct_row.w;
        return static_cast<std::size_t>(threads * (f32 ? depthwise_blocked_stride<float>(p, w)
                                                       : depthwise_blocked_stride<double>(p, w))) *
               elem;
      }
      if (dtype == DType::f32 ? plane_strips(p, kernels.f32.direct_row)
                              : plane_strips(p, kernels.f64.direct_row))
        return 0;  // no padded copy of the planes
      return static_cast<std::size_t>(
                 threads * util::scratch_stride(Hp * Wp, static_cast<int64_t>(elem))) *
             elem;
    }
    case ConvDirection::backward_data: {  // the row kernels' packed weights, or the blocked /
      const bool f32 = dtype == DType::f32;  // depthwise path's workspace
      const int kb = f32 ? block_channels(p, kernels.f32.direct_row)
                         : block_channels(p, kernels.f64.direct_row);
      const std::size_t rows =
          static_cast<std::size_t>(packed_weight_size(p, kb)) * util::dtype_size(dtype);
      if (blocked::applies_backward_data(p, dtype, kernels))
        return std::max(rows, blocked::backward_data_workspace_bytes(p, dtype, threads, kernels));
      if ((depthwise_planes(p) && p.K == p.C) || direct_phased_data_gradient(p, dtype, kernels))
        return std::max(rows, phased_gradient_workspace(p, dtype, threads, kernels));
      return rows;
    }
    case ConvDirection::backward_weights:
      if (blocked::applies_dense(p, dtype, kernels))
        return blocked::backward_weights_workspace_bytes(p, dtype, threads, kernels);
      return 0;
  }
  return 0;
}

std::size_t phased_gradient_workspace(const ConvProblem& p, DType dtype, int threads,
                                      const kernels::KernelTable& kernels) {
  const ConvProblem f = gradient_bound(p);
  const std::size_t elem = util::dtype_size(dtype);
  const int w = dtype == DType::f32 ? kernels.f32.direct_row.w : kernels.f64.direct_row.w;
  const int64_t blocked_planes =
      threads * (dtype == DType::f32 ? depthwise_blocked_stride<float>(f, w)
                                     : depthwise_blocked_stride<double>(f, w));
  const std::size_t forward =
      blocked::applies(f, dtype, kernels)
          ? blocked::workspace_bytes(f, dtype, threads, kernels, true)
          : std::max(workspace_bytes(f, dtype, ConvDirection::forward, threads, kernels),
                     static_cast<std::size_t>(blocked_planes) * elem);
  const bool strided = p.stride[1] > 1 || p.stride[2] > 1;
  return static_cast<std::size_t>(util::round_up(p.K * p.C_per_group() * p.kernel_spatial(), 16) +
                                  util::round_up(phase_packed_size(p, dtype, kernels), 16) +
                                  (strided ? util::round_up(p.N * p.C * p.in_spatial(), 16) : 0)) *
             elem + forward;
}

}  // namespace

const ConvAlgorithm& direct_algorithm() {
  static const ConvAlgorithm algo{
      "direct",
      "dense layers: channel-blocked register tiles reading the input in place; depthwise / few "
      "channels: sliding windows vectorised along output rows",
      {&by_dtype<forward<float>, forward<double>>,
       &by_dtype<backward_data<float>, backward_data<double>>,
       &by_dtype<backward_weights<float>, backward_weights<double>>},
      nullptr,
      &workspace_bytes,
      &packed_weights_bytes,
      &by_dtype_pack<pack_forward_weights<float>, pack_forward_weights<double>>,
      &pads_forward_input,
      &writes_kept_box};
  return algo;
}

}  // namespace fastconv::conv
