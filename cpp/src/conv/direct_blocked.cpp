// conv/direct_blocked.cpp — direct convolution of dense layers on channel-blocked layouts:
// the forward and (at stride 1) the data gradient; the weight gradient is in
// direct_blocked_wgrad.cpp.
//
//   x  N x C x in                     -> xb [g][cb][Dp][Hp][Wp][W]   one image at a time, zero
//                                        padding applied while converting (blocked_layout.hpp)
//   w  K x Cg x KD x KH x KW          -> wb [g][kb][cb][tap][ci][ko]  packed once (plan)
//   tile kernel: NB output blocks x UR outputs along W, the reduction in registers (flushed to
//                the tile every 256 terms)
//   y  N x K x out                    <- bias, activation, lanes transposed back a row piece
//                                        (<= kRowPiece outputs) at a time, streamed when large
// with W the ISA's vector lanes, cb / kb blocks of W input / output channels of a group (zero
// beyond Cg / Kg) and tap = (kd, kh, kw). The layout change is one pass over the input per call
// (the im2col that GEMM needs copies it once per kernel tap). Layers with fewer than W/2 input
// channels per group (a network's first layer) take the narrow layout instead: cb holds the
// group's Cg channels, ci < Cg, and the tile kernel sums (tap, ci) terms one at a time, at any
// stride (W-channel blocks would multiply the work by W / Cg). Tasks are bands of output rows
// (g, block of NB output blocks, rows of (od, oh)) of one image, or where the batch has an image
// for every thread, whole images, each converted by its thread into its own copy; a task owns
// its outputs, so results do not depend on the thread count. Along a row piece, tiles of UR
// outputs start every UR, the last one narrower; on the standard layout the reduction runs in
// chunks, each over the whole band (its weights read from L1 by every tile). The data
// gradient is the forward convolution of the output gradient padded by (kernel - 1) * dilation
// with flipped, channel-swapped weights, computed only where the caller keeps it.
#include "direct_blocked.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "activation.hpp"
#include "blocked_layout.hpp"
#include "blocked_tiling.hpp"
#include "pad.hpp"
#include "util/checked.hpp"
#include "util/dtype.hpp"
#include "util/parallel.hpp"

namespace fastconv::conv::blocked {

namespace {

using util::ceil_div;
using util::round_up;

// Whether p has so few input channels per group (fewer than half a vector of w lanes: a
// network's first layer) that its input takes the narrow layout, C_per_group() channels a block.
bool narrow_input(const ConvProblem& p, int w) { return 2 * p.C_per_group() < w; }

// The forward kernels' tiling of p: the narrow layout where narrow_input() holds.
template <typename T>
Tiling forward_tiling(const ConvProblem& p, const kernels::BlockedConvUkernel<T>& uk) {
  const int cw = narrow_input(p, uk.w) ? static_cast<int>(p.C_per_group()) : uk.w;
  return Tiling(p, uk, p.out[2], cw);
}

// wb [g][kb][cb][tap][ci][ko] = w[g * group + k * k_step + c * c_step + (tap, or ntaps - 1 -
// tap when Flip)] for the output / input channels k, c of group g of p (zero beyond
// K_per_group / C_per_group).
// Returns whether every weight is finite (an exponent test on the bits of each value copied).
// Where each output channel's weights of a block lie one after another (the forward's: no
// flip, c_step = ntaps, at most 4096 / W taps), the W output channels' runs go into lanes W x W
// at a time (`interleave`, the layout's transposing copy) and then, a vector per (tap, ci), into
// tap order; otherwise element by element.
template <bool Flip, typename T>
bool pack_blocks(const ConvProblem& p, const Tiling& t, const T* w, int64_t group, int64_t k_step,
                 int64_t c_step, T* wb, int threads,
                 void (*interleave)(const T* const*, int64_t, T*)) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr Bits kExponent = sizeof(T) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), W = t.w, CW = t.cw, nt = t.ntaps;
  // Input channels of a block moved into lanes at once: their runs within kLanes elements.
  constexpr int64_t kLanes = 4096;
  const bool runs = !Flip && c_step == nt && CW == W && interleave && nt * W <= kLanes;
  const int64_t run_channels = std::clamp<int64_t>(kLanes / (nt * W), 1, CW);
  Bits special = 0;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1) reduction(| : special)
  for (int64_t gk = 0; gk < p.groups * t.nkb; ++gk) {
    const int64_t g = gk / t.nkb, kb = gk % t.nkb;
    const int64_t kn = std::max<int64_t>(0, std::min<int64_t>(W, Kg - kb * W));  // channels here
    T* block = wb + gk * t.weight_block();
    // Each (cb) slice, ntaps x W x W, is written in order from the kn source rows of its
    // output channels (their cn x ntaps weights each, in cache after the first pass).
    constexpr int kMaxLanes = 64;
    const T* rows[kMaxLanes];
    for (int64_t cb = 0; cb < t.ncb; ++cb) {
      T* dst = block + cb * nt * t.tap_block();
      const int64_t cn = std::min<int64_t>(CW, Cg - cb * CW);
      if (kn < W || cn < CW) std::fill(dst, dst + nt * t.tap_block(), T(0));
      for (int64_t ko = 0; ko < kn; ++ko)
        rows[ko] = w + g * group + (kb * W + ko) * k_step + cb * CW * c_step;
      if (runs) {
        alignas(64) T lanes[kLanes];  // [ci - c0][tap][ko]
        const T* from[kMaxLanes];
        for (int64_t c0 = 0; c0 < cn; c0 += run_channels) {
          const int64_t cc = std::min(run_channels, cn - c0);
          for (int64_t ko = 0; ko < W; ++ko) from[ko] = ko < kn ? rows[ko] + c0 * nt : nullptr;
          interleave(from, cc * nt, lanes);
          if (any_non_finite(lanes, cc * nt * W)) special = 1;
          for (int64_t ci = 0; ci < cc; ++ci)
            for (int64_t tap = 0; tap < nt; ++tap)
              std::memcpy(dst + (tap * CW + c0 + ci) * W, lanes + (ci * nt + tap) * W,
                          static_cast<size_t>(W) * sizeof(T));
        }
        continue;
      }
      for (int64_t tap = 0; tap < nt; ++tap) {
        const int64_t from = Flip ? nt - 1 - tap : tap;
        for (int64_t ci = 0; ci < cn; ++ci) {
          T* d = dst + (tap * CW + ci) * W;
          for (int64_t ko = 0; ko < kn; ++ko) {
            const T v = rows[ko][ci * c_step + from];
            d[ko] = v;
            Bits u;
            std::memcpy(&u, &v, sizeof u);
            special |= static_cast<Bits>((u & kExponent) == kExponent);
          }
        }
      }
    }
  }
  return special == 0;
}

template <typename T>
void pack(const ConvArgs& a, void* packed) {
  const ConvProblem& p = a.problem;
  const Tiling t = forward_tiling(p, a.kernels.get<T>().blocked);
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group();
  const auto* w = static_cast<const T*>(a.w);
  pack_blocks<false>(p, t, w, Kg * Cg * t.ntaps, Cg * t.ntaps, t.ntaps, static_cast<T*>(packed),
                     a.threads, a.kernels.get<T>().blocked.interleave);
}

// Outputs along a row computed into a thread's buffer before going back to NCHW rows (one
// transposition per piece, not per tile).
constexpr int64_t kRowPiece = 256;

// The weights a chunk of the reduction reads (see convolve), so that they stay in L1 (48 KB on
// the machine of bench/RESULTS.md) while the chunk runs over a band of rows. By `direct`,
// alternating processes (5 rounds), against a row at a time with the whole reduction per tile,
// 1 thread: ResNet-50's 3x3 / 2 at batch 8 11.60 -> 10.90 ms, AlexNet's 5x5 4.97 -> 4.67, 1x1
// 256 -> 512 on 28^2 1.36 -> 1.32, the data gradient of 512 x 7^2 3.15 -> 2.99; 2 threads: that
// data gradient 1.71 -> 1.61, of 256 x 14^2 0.91 -> 0.85; the other 18 cases within 3 %.
constexpr int64_t kChunkWeightBytes = int64_t(32) << 10;

// Images converted and convolved at once: one per thread where the batch gives every thread one
// and their blocked copies stay within kParallelImagesBytes (each thread then converts its own
// image while another computes, with no barrier between images); else one, whose rows the
// threads share.
constexpr int64_t kParallelImagesBytes = int64_t(8) << 20;

// A row of outputs runs for every group of output channels before the next row (so that the
// input passes through the cache once, the weights once per row; on several threads each
// thread reads only its rows of the image, not all of it once per group of channels) when a
// group's weights (all its output channels) are at most kRowsOuterWeightBytes and smaller than
// the blocked image, and the image exceeds kRowsOuterImageBytes; else each group of output
// channels runs over every row. Plans, 4 alternating runs each, 2 threads: ResNet-50's 3x3 / 2
// on 56x56 (590 KB of weights, 1.7 MB of image) 0.94-0.99 -> 0.81-0.85 ms, AlexNet's 11x11 / 4
// (640 KB) 0.49-0.51 -> 0.44-0.48, the stem (635 KB) 0.77-0.79 -> 0.74-0.79; 1 thread within
// noise (1.53-1.67 against 1.52-1.63 ms on the 3x3 / 2). Rows first measured slower on the
// stride phases of the data gradient (images of 400-430 KB, whose second pass is from L2: 3x3 /
// 2 on 56x56, batch 8, 1 thread, 14.7-15.1 -> 20.3 ms) and on 512 x 7x7 (9.4 MB of weights:
// 1.75 / 0.88 -> 2.55 / 1.37 ms).
constexpr int64_t kRowsOuterWeightBytes = int64_t(1) << 20;
constexpr int64_t kRowsOuterImageBytes = int64_t(512) << 10;

int64_t blocked_image_size(const ConvProblem& p, const Tiling& t) {
  return util::round_up(p.groups * t.ncb * p.in_spatial() * t.cw, 16);
}

int images_at_once(const ConvProblem& p, const Tiling& t, int threads, std::size_t elem) {
  const bool each = threads > 1 && p.N >= threads &&
                    threads * blocked_image_size(p, t) * int64_t(elem) <= kParallelImagesBytes;
  return each ? threads : 1;
}

// Workspace layout: tap offsets, images_at_once() blocked images, per-thread row pieces, then
// (backward-data) the packed weights.
template <typename T>
struct Workspace {
  int64_t* taps;
  T* image;
  int64_t image_stride;
  int images;
  T* tiles;
  int64_t tile_stride;
  T* weights;

  // any_batch: room for an image per thread wherever the batch could give each one (a bound
  // for every problem whose blocked image and rows are no larger than p's).
  Workspace(const ConvProblem& p, const Tiling& t, void* base, int threads,
            bool any_batch = false) {
    taps = static_cast<int64_t*>(base);
    image = reinterpret_cast<T*>(taps + util::round_up(t.terms(), 8));
    image_stride = blocked_image_size(p, t);
    images = any_batch && threads > 1 && p.N >= threads ? threads
                                                         : images_at_once(p, t, threads, sizeof(T));
    tiles = image + images * image_stride;
    // Any tiling's band of rows or row piece: NB <= 4 blocks of up to kRowPiece outputs.
    tile_stride = util::scratch_stride(4 * kRowPiece * t.w, sizeof(T));
    weights = tiles + util::round_up(threads * tile_stride, 16);
  }
  static std::size_t bytes(const ConvProblem& p, const Tiling& t, int threads,
                           bool any_batch = false) {
    const Workspace w(p, t, nullptr, threads, any_batch);
    return static_cast<std::size_t>(reinterpret_cast<const char*>(w.weights) -
                                    reinterpret_cast<const char*>(w.taps));
  }
};

// act(conv(src, wb) + bias) for p (in: the padded extents of the blocked input) at the outputs
// of `window` (t tiled for its width), written to `dest`; nothing else is written. A large
// output goes past the caches unless `cache_output` (ConvArgs::stream_output false).
template <typename T>
void convolve(const ConvProblem& p, const Tiling& t, const kernels::BlockedConvUkernel<T>& uk,
              const Source<T>& src, const T* wb, const T* bias, Activation act,
              const Destination<T>& dest, const Workspace<T>& ws, int threads,
              const Window& window, bool cache_output) {
  const int64_t Kg = p.K_per_group(), W = t.w, CW = t.cw;
  const int64_t Hp = p.in[1], Wp = p.in[2];
  const auto& E = dest.ext;
  const int64_t P = E[0] * E[1] * E[2];
  const int slot = t.narrow() ? 2 : static_cast<int>(p.stride[2] - 1);  // see BlockedConvUkernel
  const auto& tiles = uk.tile[kernels::BlockedConvUkernel<T>::nb_index(t.nb)];
  const int64_t channels = t.narrow() ? CW : 1;  // offsets per tap (Tiling::terms)
  for (int64_t kd = 0, i = 0; kd < p.kernel[0]; ++kd)
    for (int64_t kh = 0; kh < p.kernel[1]; ++kh)
      for (int64_t kw = 0; kw < p.kernel[2]; ++kw)
        for (int64_t ci = 0; ci < channels; ++ci, ++i)
          ws.taps[i] =
              ((kd * p.dilation[0] * Hp + kh * p.dilation[1]) * Wp + kw * p.dilation[2]) * CW + ci;

  // The standard layout's reduction, (block, tap) steps, in chunks of at most
  // kChunkWeightBytes of the tile's weights (at least one block of the kernels' reduction, so
  // that the sums are those of one call); the narrow layout's in one call.
  const int64_t steps = t.narrow() ? 0 : t.ncb * t.ntaps;
  int64_t chunk = 1;
  if (!t.narrow()) {
    const int64_t per_block = std::max<int64_t>(1, kernels::kBlockedReductionBlock / W);
    const int64_t block_bytes = per_block * t.nb * t.tap_block() * int64_t(sizeof(T));
    chunk = std::min(steps, std::max<int64_t>(1, kChunkWeightBytes / block_bytes) * per_block);
  }
  const int64_t chunks = t.narrow() ? 1 : ceil_div(steps, chunk);
  const int64_t kgroups = t.nkb / t.nb, OH_w = window.hi[1] - window.lo[1];
  const int64_t rows = (window.hi[0] - window.lo[0]) * OH_w;
  const int64_t x_block = p.in_spatial() * CW;
  if (rows <= 0 || window.width() <= 0) return;
  // Each output is written once: a large output bypasses the caches.
  const bool stream = !cache_output && p.N * p.K * P * int64_t(sizeof(T)) > kStreamOutputBytes;
  const BlockedLayout layout{p.groups, p.C_per_group(), t.ncb, p.in, CW};
  const auto interleave = t.narrow() ? nullptr : uk.interleave;
  // A row in `pieces` pieces of at most kRowPiece outputs, each at least UR long. On the
  // standard layout, rows of one piece go in bands of at most kRowPiece outputs (and at least 4
  // tasks per thread where the threads share an image), each chunk of the reduction running
  // over a whole band, so that its weights are read from L1 by the band's tiles.
  const int64_t width = window.width(), pieces = ceil_div(width, kRowPiece);
  const int64_t piece = ceil_div(width, pieces);
  int64_t band = 1;
  if (!t.narrow() && pieces == 1) {
    band = std::min(rows, kRowPiece / width);
    if (threads > 1 && ws.images == 1)
      band = std::min(band, p.groups * kgroups * rows / (4 * threads));
    band = std::max<int64_t>(band, 1);
  }
  const int64_t bands = ceil_div(rows, band);
  band = ceil_div(rows, bands);  // bands of equal size
  const int64_t tasks = p.groups * kgroups * bands;
  // The order of the tasks within a group: bands inside groups of output channels (the input
  // passes once per group of output channels, whose weights stay in cache), or those groups
  // inside bands (rows_outer; see kRowsOuterWeightBytes).
  const int64_t weight_bytes = t.nkb * t.weight_block() * int64_t(sizeof(T));
  const int64_t image_bytes = layout.size() * int64_t(sizeof(T));
  const bool rows_outer = weight_bytes <= std::min(kRowsOuterWeightBytes, image_bytes) &&
                          image_bytes > kRowsOuterImageBytes;
  // Output rows of band `task` of image n, from its blocked copy `image`.
  const auto output_band = [&](int64_t n, const T* image, int64_t task) {
    const int64_t bi = rows_outer ? task / kgroups % bands : task % bands;
    const int64_t kg = rows_outer ? task % kgroups : task / bands % kgroups;
    const int64_t g = task / (bands * kgroups);
    const int64_t r0 = bi * band, r1 = std::min(rows, r0 + band);
    T* tile = ws.tiles + util::thread_index() * ws.tile_stride;
    kernels::BlockedConvArgs<T> args;
    args.x_block = x_block;
    args.taps = ws.taps;
    args.ntaps = t.terms();
    args.ncb = t.ncb;
    args.last_cin = static_cast<int>(p.C_per_group() - (t.ncb - 1) * CW);
    args.w = wb + (g * t.nkb + kg * t.nb) * t.weight_block();
    args.w_block = t.weight_block();
    args.x_step = p.stride[2] * CW;
    args.y_block = (r1 - r0) * piece * W;
    const auto x_row = [&](int64_t row) {
      const int64_t od = window.lo[0] + row / OH_w, oh = window.lo[1] + row % OH_w;
      return image + g * t.ncb * x_block + (od * p.stride[0] * Hp + oh * p.stride[1]) * Wp * CW;
    };
    for (int64_t c0 = window.lo[2]; c0 < window.hi[2]; c0 += piece) {
      const int64_t c1 = std::min(window.hi[2], c0 + piece), len = c1 - c0;
      for (int64_t ci = 0; ci < chunks; ++ci) {
        args.step_lo = ci * chunk;
        args.step_hi = std::min(steps, (ci + 1) * chunk);  // narrow: 0 (its own terms, all)
        args.accumulate = ci > 0;
        for (int64_t row = r0; row < r1; ++row) {
          const T* xr = x_row(row);
          T* yr = tile + (row - r0) * piece * W;
          for (int64_t ow0 = c0; ow0 < c1; ow0 += t.ur) {  // the last tile narrower
            const int64_t ur = std::min<int64_t>(t.ur, c1 - ow0);
            args.x = xr + ow0 * p.stride[2] * CW;
            args.y = yr + (ow0 - c0) * W;
            tiles[ur][slot](args);
          }
        }
      }
      for (int b = 0; b < t.nb; ++b) {  // bias, activation, the lanes back to NCHW rows
        const int64_t k0 = (kg * t.nb + b) * W;
        const int count = static_cast<int>(std::min<int64_t>(W, Kg - k0));
        if (count <= 0) break;
        constexpr int kMaxLanes = 64;
        T bk[kMaxLanes] = {};  // the block's bias, once for the band's rows
        if (bias)
          for (int ko = 0; ko < count; ++ko) bk[ko] = bias[g * Kg + k0 + ko];
        for (int64_t row = r0; row < r1; ++row) {
          const int64_t od = window.lo[0] + row / OH_w, oh = window.lo[1] + row % OH_w;
          T* lanes = tile + b * args.y_block + (row - r0) * piece * W;
          if (bias)
            for (int64_t r = 0; r < len; ++r)
              for (int64_t ko = 0; ko < W; ++ko) lanes[r * W + ko] += bk[ko];
          activate(act, lanes, len * W);
          T* rows_out[kMaxLanes];
          for (int ko = 0; ko < count; ++ko)
            rows_out[ko] = dest.y + (n * p.K + g * Kg + k0 + ko) * P +
                           ((od - dest.base[0]) * E[1] + oh - dest.base[1]) * E[2] + c0 -
                           dest.base[2];
          (stream ? uk.deinterleave_stream : uk.deinterleave)(lanes, W, len, rows_out, count);
        }
      }
    }
    if (stream) uk.store_fence();
  };
  if (ws.images > 1) {  // an image per thread
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t n = 0; n < p.N; ++n) {
      T* image = ws.image + util::thread_index() * ws.image_stride;
      to_blocked(layout, src, n, image, 1, interleave);
      for (int64_t task = 0; task < tasks; ++task) output_band(n, image, task);
    }
    return;
  }
  for (int64_t n = 0; n < p.N; ++n) {  // the threads share each image's rows
    to_blocked(layout, src, n, ws.image, threads, interleave);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t task = 0; task < tasks; ++task) output_band(n, ws.image, task);
  }
}

template <typename T>
void run(const ConvArgs& a) {
  // The input as given with its zero padding (applied while converting to the blocked layout),
  // or already padded (the unpadded view of another padding mode's copy).
  const ConvProblem q = unpadded_view(a.problem);
  const auto& uk = a.kernels.get<T>().blocked;
  const Tiling t = forward_tiling(q, uk);
  const Source<T> src{static_cast<const T*>(a.x), a.problem.in, a.problem.pad_lo};
  convolve(q, t, uk, src, static_cast<const T*>(a.packed_w), static_cast<const T*>(a.b),
           a.activation, Destination<T>{static_cast<T*>(a.out), {0, 0, 0}, q.out},
           Workspace<T>(q, t, a.workspace, a.threads), a.threads, Window{{0, 0, 0}, q.out},
           !a.stream_output);
}

// False, writing nothing, when a weight is not finite: the zeros the output gradient is padded
// with would turn 0 x NaN / 0 x Inf into NaN where the definition has no term.
template <typename T>
bool run_backward_data(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const ConvProblem q = data_gradient_problem(p);
  const auto& uk = a.kernels.get<T>().blocked;
  const Window window{a.keep_lo, a.keep_hi};
  const Tiling t(q, uk, window.width());
  const Workspace<T> ws(q, t, a.workspace, a.threads);
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group();
  const auto* w = static_cast<const T*>(a.w);
  const auto& k = p.kernel;
  // q's (output channel c, input channel kk, tap) = p's weight (kk, c, tap flipped in space):
  // the flat tap index reversed.
  if (!pack_blocks<true>(q, t, w, Kg * Cg * t.ntaps, t.ntaps, Cg * t.ntaps, ws.weights, a.threads,
                         uk.interleave))
    return false;
  std::array<int64_t, 3> lo;
  for (int d = 0; d < 3; ++d) lo[d] = (k[d] - 1) * p.dilation[d];
  const Source<T> src{static_cast<const T*>(a.dy), p.out, lo};
  // Into the padded input's gradient, or (out_is_kept_box) straight into the kept box.
  Destination<T> dest{static_cast<T*>(a.out), {0, 0, 0}, q.out};
  if (a.out_is_kept_box) {
    dest.base = a.keep_lo;
    for (int d = 0; d < 3; ++d) dest.ext[d] = a.keep_hi[d] - a.keep_lo[d];
  }
  convolve(q, t, uk, src, ws.weights, static_cast<const T*>(nullptr), Activation::none, dest, ws,
           a.threads, window, false);
  return true;
}

template <typename T>
const kernels::BlockedConvUkernel<T>& kernels_of(const kernels::KernelTable& k) {
  return k.get<T>().blocked;
}

}  // namespace

bool applies_dense(const ConvProblem& p, DType dtype, const kernels::KernelTable& kernels) {
  const int w = lanes(dtype, kernels);
  return w > 0 && (p.stride[2] == 1 || p.stride[2] == 2) && 2 * p.C_per_group() >= w &&
         2 * p.K_per_group() >= w;
}

bool applies_narrow(const ConvProblem& p, DType dtype, const kernels::KernelTable& kernels) {
  const int w = lanes(dtype, kernels);
  return w > 0 && narrow_input(p, w) && 2 * p.K_per_group() >= w;
}

bool applies(const ConvProblem& p, DType dtype, const kernels::KernelTable& kernels) {
  return applies_dense(p, dtype, kernels) || applies_narrow(p, dtype, kernels);
}

std::size_t packed_weights_bytes(const ConvProblem& p, DType dtype,
                                 const kernels::KernelTable& kernels) {
  const Tiling t = dtype == DType::f32 ? forward_tiling(p, kernels_of<float>(kernels))
                                        : forward_tiling(p, kernels_of<double>(kernels));
  return static_cast<std::size_t>(p.groups * t.nkb * t.weight_block()) * util::dtype_size(dtype);
}

std::size_t workspace_bytes(const ConvProblem& problem, DType dtype, int threads,
                            const kernels::KernelTable& kernels, bool any_batch) {
  const ConvProblem p = unpadded_view(problem);
  if (dtype == DType::f32)
    return Workspace<float>::bytes(p, forward_tiling(p, kernels_of<float>(kernels)), threads,
                                   any_batch);
  return Workspace<double>::bytes(p, forward_tiling(p, kernels_of<double>(kernels)), threads,
                                  any_batch);
}

bool applies_backward_data(const ConvProblem& p, DType dtype, const kernels::KernelTable& kernels) {
  return p.stride[0] == 1 && p.stride[1] == 1 && p.stride[2] == 1 &&
         applies_dense(data_gradient_problem(p), dtype, kernels);
}

std::size_t backward_data_workspace_bytes(const ConvProblem& p, DType dtype, int threads,
                                          const kernels::KernelTable& kernels) {
  const ConvProblem q = data_gradient_problem(p);
  // The packed weights of any tiling of q: output blocks rounded up to the largest NB (4).
  const int w = lanes(dtype, kernels);
  const std::size_t elem = util::dtype_size(dtype);
  const int64_t weights = q.groups * round_up(ceil_div(q.K_per_group(), w), 4) *
                          ceil_div(q.C_per_group(), w) * q.kernel_spatial() * w * w;
  return workspace_bytes(q, dtype, threads, kernels) + static_cast<std::size_t>(weights) * elem;
}

bool backward_data(const ConvArgs& a) {
  return a.dtype == DType::f32 ? run_backward_data<float>(a) : run_backward_data<double>(a);
}

void pack_weights(const ConvArgs& a, void* packed) {
  by_dtype_pack<pack<float>, pack<double>>(a, packed);
}

void forward(const ConvArgs& a) { by_dtype<run<float>, run<double>>(a); }

}  // namespace fastconv::conv::blocked
