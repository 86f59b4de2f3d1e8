// conv/fft.cpp — convolution by FFT, overlap-save (fft_plan.hpp): forward, backward-data and
// backward-weights, stride 1, any kernel size, dilation and groups, 1-D to 3-D.
//
// One correlation routine (correlate) does the work, per group and per chunk of tiles, with
// the lanes of a vector group assigned one of two ways (Tiling::by_channel):
// - by tile (W pairs of tiles of one channel: one in the real lanes, the other in the
//   imaginary lanes), per chunk of vector groups v:
//     V [f][c][v][2W] = FFT(x tiles)                    input transforms, in place in a tile
//                                                       buffer [f][W] (re) + [f][W] (im)
//     M [f][k][v][2W] = sum_c U[f][k][c] V[f][c][v]     complex products (fft_ukernel.hpp),
//                                                       U broadcast
//     y tiles         <- IFFT(M) + bias, clamped        output transforms, first o of f per axis
// - by channel (one pair of tiles of W channels), per chunk of tile pairs p:
//     Z [f][p][c]     = FFT(x tiles)                    the same transforms, spectra as rows
//     M [f][p][k]     = sum_cp P[f][p][cp] conj(X[f][cp][k]) + Q[f][p][cp] X[-f][cp][k]
//                                                       X the vectors of W output channels
//     y tiles         <- IFFT(M) + bias, clamped
//   a complex matrix product per frequency that a single pair of tiles fills, so that few
//   large tiles (little overlap) suit a small image: on the 13 x 13 and 31 x 31 bench layers
//   (28 x 28, batch 1) the products take half and a third of the multiply-adds of 16 x 16
//   and 36 x 36 tiles by tile.
// Weights, by tile: U = conj(FFT(w_gkc)) / prod(f), conjugated (a correlation), scaled by the
// inverse's 1 / n, stored once per pair of mirrored frequencies (a real kernel's spectrum is
// conjugate-symmetric); two kernels share one FFT and are split apart (fft_split); a few
// kernels, template matching's one, are transformed alone with their rows, then positions, in
// the lanes. By channel: X = FFT(w_gkc + i w_gk(c+1)) of each pair of input channels cp as the
// transform leaves it, at every frequency; the products take the two kernels apart instead,
// with the pair's data spectra combined to match, P = (Z_c + i Z_c+1) / 2F and
// Q = (Z_c - i Z_c+1) / 2F (so that the sum is Z_c U_c + Z_c+1 U_c+1), at k and -k in one pass
// over X: no split, whose scattered reads and stores over the spectra took 12 % of the 13 x 13
// layer's stateless call. Spectra stay in the FFT's digit-reversed order throughout. Threads
// split the transforms by (block of channels, vector group) and the products by frequency:
// results do not depend on the thread count. With one input channel per group the products
// are pointwise and each vector group goes through all three steps in its thread's buffers
// (fewer groups than threads: the threads split each group's passes, Share). A stateless call
// by channel in one chunk transforms the weights in its tasks (transforms_in_tasks): a task per
// output vector transforms its kernels a chunk of input channel pairs at a time and adds their
// products to M while the spectra are in its cache, in U's order, so that its bits equal a
// plan's.
//   backward-data:    the forward correlation of dy (read from ke - 1 before its start) with
//                     the weights flipped in space and their channel roles swapped;
//   backward-weights: for each group and image, the correlation whose images are the input
//                     channels, whose reduction runs over the pieces of dy and whose kernels are
//                     those pieces: dw[k][c][j] = sum_n sum_o x[n][c][o + j] dy[n][k][o], the
//                     pieces' inputs and dy's pieces gathered into dense arrays first; images
//                     summed in order. With one output channel per group on 2-D planes, dy
//                     may be a single piece correlated by the whole-plane path (template
//                     matching's gradient: 512 x 512 with 31 x 31 lags, 17.5 -> 3.7 ms).
// Numerics: the rounding error grows like log(prod f) relative to the largest terms, not to
// each output (DESIGN.md's budget for fft: 2e-6 normalised in float32); a NaN or infinity in a
// tile reaches every output of it (spreads_non_finite), and a non-finite weight every output
// of its channel. Limits: 5-smooth FFT extents up to 2^16 per axis (fft_plan.hpp).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "activation.hpp"
#include "algorithm.hpp"
#include "blocked_layout.hpp"
#include "fft.hpp"
#include "fft_plan.hpp"
#include "util/buffer.hpp"
#include "util/cache.hpp"
#include "util/checked.hpp"
#include "util/dtype.hpp"
#include "util/memo.hpp"
#include "util/parallel.hpp"

namespace fastconv::conv::fft {

namespace {

using util::ceil_div;

// Spectra, tile buffers and gathers of a chunk are kept within this (at least one vector group).
constexpr int64_t kChunkBytes = int64_t(8) << 20;
constexpr int64_t kMaxLanes = 64;  // of any vector wrapper
// Kernels of a weight-transform block (by tile) that are transformed one at a time instead of
// together in the block's lanes (WeightTransform::one_at_a_time). Stateless calls, avx512,
// alternating runs against the block transform: template matching's 31 x 31 kernel on
// 512 x 512 (a 128 x 128 box) 1.56 -> 1.19 ms on 1 thread, 1.16 -> 0.88 on 2; one 9 x 9 x 9
// kernel on 32 x 64 x 64 0.79 -> 0.63; K 31 x 31 kernels on 256 x 256, 1 thread: K = 1 0.43 ->
// 0.34, 4 0.74 -> 0.67, 6 0.97 -> 0.89, 8 1.15 -> 1.11 (10: 1.34 either way).
constexpr int64_t kFewKernels = 8;
// A transform along a strided axis runs all its stages on blocks of vectors of at most this
// many bytes (in L1) instead of each stage on all of them (a pass over the buffer in L2): the
// weights' 45 x 45 transforms of the 31 x 31 bench layer took 5 % less of the call. An axis
// too long for 4 vectors in a block is not blocked: template matching's, blocked at fewer (or
// at 4 past the bytes), slowed (11 x 11 template: 0.90-0.99 -> 1.08-1.16 ms).
constexpr int64_t kAxisBlockBytes = int64_t(24) << 10;

// The share `part` of `parts` of n independent items: [n part / parts, n (part + 1) / parts).
// Threads of one parallel region split a buffer's passes this way when there are fewer buffers
// than threads; every value goes through the same operations for any split.
struct Share {
  int part = 0, parts = 1;
  int64_t begin(int64_t n) const { return n * part / parts; }
  int64_t end(int64_t n) const { return n * (part + 1) / parts; }
  // Between passes when the parts are threads of one parallel region.
  void sync() const {
    if (parts > 1) {
#pragma omp barrier
    }
  }
};

// The FFT plans of the three axes (length 1: no transform).
template <typename T>
struct Axes {
  std::array<Axis<T>, 3> a;
  explicit Axes(const Ext& f) : a{Axis<T>(f[0]), Axis<T>(f[1]), Axis<T>(f[2])} {}

  // In place on a buffer [f0][f1][f2][W] (re and im apart), along every axis of length > 1,
  // pruned (Markel, "FFT pruning", 1971): forward, the input is zero outside the box `live`
  // (rows that are all zero are not transformed along the last axis, planes not along the
  // middle one, and each axis's first stage takes the positions past the box as zeros without
  // reading them: the buffer need not hold them); inverse, only the box `live` of the output
  // is wanted (the axes run in the opposite order and the later ones only where that box needs
  // them). Split (Share): the transforms of each axis, the parts synchronised after each.
  void forward(const kernels::FftKernels<T>& k, T* re, T* im, const Ext& live,
               Share share = {}) const {
    if (a[2].n > 1) along(k, 2, re, im, live, false, share);
    if (a[1].n > 1) along(k, 1, re, im, live, false, share);
    if (a[0].n > 1) along(k, 0, re, im, live, false, share);
  }
  void inverse(const kernels::FftKernels<T>& k, T* re, T* im, const Ext& live,
               Share share = {}) const {
    if (a[0].n > 1) along(k, 0, re, im, live, true, share);
    if (a[1].n > 1) along(k, 1, re, im, live, true, share);
    if (a[2].n > 1) along(k, 2, re, im, live, true, share);
  }

 private:
  // The transforms along axis d: one per position of the live box on the axes before d (each
  // a call over the vectors of the axes after it); a share takes its part of those vectors,
  // or along the last axis its part of the positions.
  void along(const kernels::FftKernels<T>& k, int d, T* re, T* im, const Ext& live, bool inverse,
             Share share) const {
    int64_t inner = 1, outer = 1;
    for (int e = d + 1; e < 3; ++e) inner *= a[e].n;
    for (int e = 0; e < d; ++e) outer *= live[e];
    const int64_t span = a[d].n * inner * k.w;  // elements per position before d
    const auto rows = [&](int64_t o) {  // position o of the live box's first d axes
      return d == 2 ? (o / live[1] * a[1].n + o % live[1]) * span : o * span;
    };
    auto view = a[d].view();
    if (!inverse) view.live = live[d];
    if (inner == 1) {
      for (int64_t o = share.begin(outer); o < share.end(outer); ++o)
        k.axis(re + rows(o), im + rows(o), k.w, 1, view, inverse);
    } else {
      const int64_t v0 = share.begin(inner), v1 = share.end(inner);
      int64_t block = kAxisBlockBytes / (a[d].n * 2 * k.w * static_cast<int64_t>(sizeof(T)));
      if (block < 4) block = v1 - v0;  // too long an axis: unblocked (kAxisBlockBytes)
      for (int64_t o = 0; o < outer && v1 > v0; ++o)
        for (int64_t b = v0; b < v1; b += block)
          k.axis(re + rows(o) + b * k.w, im + rows(o) + b * k.w, inner * k.w,
                 std::min(block, v1 - b), view, inverse);
    }
    share.sync();
  }
};

// A box's axes and half-spectrum table (fft_plan.hpp), built once and shared by the calls on
// that box, stateless or planned, instead of twice per call (tables of every frequency, in
// freshly mapped pages, and the twiddles' sines and cosines). Alternating runs against
// building them per call, avx512, stateless / plan: 48000 samples with 255 taps 0.207 ->
// 0.105 / 0.136 -> 0.083 ms on 1 thread, 0.190 -> 0.076 / 0.116 -> 0.056 on 2; template
// matching's 31 x 31 on 512 x 512 1.09 -> 0.94 / 1.09 -> 0.89 and 0.81 -> 0.69 / 0.71 -> 0.64;
// the 13 x 13 bench layer (64 channels) unchanged. The set keeps up to kBoxPlanBytes of tables
// and is emptied when a new box would exceed it, or by fastconv::release_memory; a box larger
// than that alone is built for its call.
template <typename T>
struct BoxPlan {
  Axes<T> axes;
  HalfSpectrum half;
  explicit BoxPlan(const Ext& f) : axes(f), half(f, axes.a) {}
  // The tables' bytes, about: slot and mirror (8 each) and conj (1) per frequency, at (8 per
  // slot, about half as many).
  static int64_t bytes(const Ext& f) { return f[0] * f[1] * f[2] * 21; }
};

constexpr int64_t kBoxPlanBytes = int64_t(32) << 20;

template <typename T>
std::shared_ptr<const BoxPlan<T>> box_plan(const Ext& f) {
  const int64_t bytes = BoxPlan<T>::bytes(f);
  const auto make = [&] { return std::make_shared<const BoxPlan<T>>(f); };
  if (bytes > kBoxPlanBytes) return make();
  static util::Memo<Ext, std::shared_ptr<const BoxPlan<T>>> plans(kBoxPlanBytes, true);
  return plans.get(f, bytes, make);
}

// Weights as the correlation reads them: kernel (g, k, c) at w + g*g_stride + k*k_stride +
// c*c_stride, taps row-major, tap t at box position t * dil (or (taps - 1 - t) * dil: flip).
template <typename T>
struct WeightSource {
  const T* w;
  int64_t g_stride, k_stride, c_stride;
  Ext taps, dil;
  bool flip;
};

int64_t channel_block(const Tiling& t, int64_t elem);

// Slots of a half spectrum (HalfSpectrum): the positions equal to their mirror are, per axis,
// k = 0 and (even n) k = n / 2.
int64_t slots(const Tiling& t) {
  int64_t self = 1;
  for (int d = 0; d < 3; ++d) self *= t.f[d] % 2 == 0 ? 2 : 1;
  return (t.freqs() + self) / 2;
}

// By channel, the weight spectra's elements per frequency: pairs of input channels x output
// channels padded to whole vectors x re, im, and one pair of vectors more, so that the rows of
// consecutive frequencies (often a multiple of 4 KiB apart without it) do not fall on the same
// cache sets as a block's transform writes them one per frequency (the 13 x 13 layer with 16
// output channels on 2 threads, which packs them per call: 0.62 -> 0.57 ms).
int64_t channel_spectra_stride(const Geometry& g, const Tiling& t) {
  return ceil_div(g.Cg, 2) * t.padded(g.Kg) * 2 + 2 * t.lanes;
}

// Elements of the weight spectra: by tile, slots x re, im x pairs; by channel, every
// frequency's channel_spectra_stride.
int64_t spectra_elements(const Geometry& g, const Tiling& t) {
  if (t.by_channel) return g.groups * t.freqs() * channel_spectra_stride(g, t);
  return g.groups * slots(t) * g.Kg * g.Cg * 2;
}

// Input channels per chunk of a task's weight spectra when they are transformed in the tasks
// (by channel): an even number (two per vector group), the chunk within 1 MiB (half a core's
// L2) if it can be. Longer chunks make fewer passes of the products over M, but their spectra
// leave L2 and come back from memory: on the 13 x 13 and 31 x 31 bench layers (271 and 1013
// slots), chunks of all 64 channels (2.2 MiB) and of all 32 (4.1 MiB) made the stateless call
// slower than chunks of 22 and 8 channels when it followed a PyTorch call, as in the bench (1
// thread: 3.2-3.6 against 3.0-3.3 ms, 3.7-3.9 against 3.2-3.3), and no faster alone; chunks
// within 512 KiB were slower again (more passes over M: 31 x 31 alone 2.8-3.1 against 2.6-2.9).
int64_t in_task_channels(const Tiling& t, int64_t elem) {
  constexpr int64_t kBudget = int64_t(1) << 20;
  const int64_t per_channel = t.freqs() * t.lanes * elem;
  return std::max<int64_t>(2, kBudget / per_channel / 2 * 2);
}

// Whether a call without packed weights transforms them in its tasks (a forward or data
// gradient by channel in one chunk, with an output vector for every thread): each task's
// spectra stay in its cache instead of going through memory whole. (Chunks would repeat
// the transforms.)
bool transforms_in_tasks(const Geometry& g, const Tiling& t, int threads) {
  return t.by_channel && !t.whole && t.chunk >= t.units() &&
         util::ceil_div(g.Kg, t.lanes) >= threads;
}

// The units a correlation on `threads` threads takes at once: all of them, or chunks of a
// multiple of the thread count when the workspace allows.
int64_t chunk_of(const Tiling& t, int threads) {
  if (t.chunk >= t.units()) return t.units();
  return t.chunk >= threads ? t.chunk / threads * threads : t.chunk;
}

// Per-thread scratch of a tiling. By tile: channel_block tile buffers (re, im), at least 2
// (the weight transform's buffer and its taps), and 2W rows for edge tiles. By channel: one
// tile buffer and the edge rows, or the weight transform's three buffers; then, with the
// weights transformed in the tasks (in_tasks), a chunk of their spectra (in_task_channels) at
// in_task_offset.
int64_t in_task_offset(const Tiling& t) {
  const int64_t transforms = t.buffer_size() + 2 * t.lanes * t.f[2];  // or 3 F W: weights
  return util::round_up(std::max(transforms, 3 * t.freqs() * t.lanes), 16);
}
template <typename T>
int64_t thread_scratch(const Tiling& t, bool in_tasks = false) {
  if (t.by_channel) {
    const int64_t chunk = in_tasks ? t.freqs() * in_task_channels(t, sizeof(T)) * t.lanes : 0;
    return util::scratch_stride(in_task_offset(t) + chunk, sizeof(T));
  }
  const int64_t buffers = std::max<int64_t>(2, channel_block(t, sizeof(T)));
  return util::scratch_stride(buffers * t.buffer_size() + 2 * t.lanes * t.f[2], sizeof(T));
}

// Elements of the weight spectra of either path (whole planes store every frequency).
int64_t weights_size(const Geometry& g, const Tiling& t) {
  return t.whole ? g.groups * 2 * t.freqs() : spectra_elements(g, t);
}

// The weights' spectra in the layout the products read:
//   by tile:    U = conj(FFT(w_gkc)) / prod(f) for every (g, k, c), one slot per pair of
//               mirrored frequencies (HalfSpectrum), [g][slot][re, im][k][c] (broadcast along
//               c). Two kernels per lane: z = w_a + i w_b gives W_a(k) = (Z(k) + conj Z(-k)) / 2
//               and W_b(k) = (Z(k) - conj Z(-k)) / 2i (split).
//   by channel: X = FFT(w_gkc + i w_gk(c+1)) unsplit and unscaled, input channels in pairs cp,
//               at every frequency, [g][f][cp][k / W][re, im][W] (frequencies
//               channel_spectra_stride apart; vectors of W output channels; lanes past Kg and
//               the imaginary part of a last odd channel hold zeros): the
//               products take the pair's two kernels apart as they go (FftPairProductFn), with
//               the data's spectra combined to match.
// A vector group (block) transforms 2W kernels: by tile the pairs (k, c) 2Wb .. 2Wb + 2W - 1 in
// row-major order; by channel W output channels of input channels c and c + 1 (real and
// imaginary lanes), blocks of one output vector consecutive. The kernels go into lanes whole
// (transposed in registers by pack_rows), then row by row to their places in the box.
template <typename T>
class WeightTransform {
 public:
  // Where a block's spectra go: by tile, U's layout from base (stride: 2 Kg Cg per slot); by
  // channel, frequency f of input channel pair cp and output vector kb at base + f * stride +
  // cp * cp_stride + kb * 2W (imaginary parts W further).
  struct Out {
    T* base;
    int64_t stride, cp_stride;
    bool stream;  // by tile: non-temporal stores (whole aligned vectors only)
  };

  WeightTransform(const Geometry& g, const Tiling& t, const kernels::KernelSet<T>& ks,
                  const WeightSource<T>& ws)
      : g_(g), t_(t), ks_(ks), ws_(ws), box_(box_plan<T>(t.f)), axes_(box_->axes),
        half_(box_->half) {
    W_ = ks.fft.w;
    KB_ = ceil_div(g.Kg, W_), CP_ = ceil_div(g.Cg, 2);
    nrows_ = ws.taps[0] * ws.taps[1], ntaps_ = nrows_ * ws.taps[2];
    row_.resize(static_cast<size_t>(nrows_));
    for (int64_t t0 = 0, r = 0; t0 < ws.taps[0]; ++t0)
      for (int64_t t1 = 0; t1 < ws.taps[1]; ++t1, ++r) {
        const int64_t j0 = (ws.flip ? ws.taps[0] - 1 - t0 : t0) * ws.dil[0];
        const int64_t j1 = (ws.flip ? ws.taps[1] - 1 - t1 : t1) * ws.dil[1];
        row_[r] = j0 * t.f[1] + j1;
      }
    first_ = ws.flip ? (ws.taps[2] - 1) * ws.dil[2] : 0;
    step_ = (ws.flip ? -1 : 1) * ws.dil[2];
    for (int d = 0; d < 3; ++d) {
      live_[d] = (ws.taps[d] - 1) * ws.dil[d] + 1;
      dilated_ = dilated_ || live_[d] > ws.taps[d];
    }
  }

  const HalfSpectrum& half() const { return half_; }
  int64_t blocks() const {
    return t_.by_channel ? CP_ * KB_ : ceil_div(g_.Kg * g_.Cg, 2 * W_);
  }
  // By channel: block b's output vector and input channel pair.
  int64_t block_kb(int64_t b) const { return b / CP_; }
  int64_t block_cp(int64_t b) const { return b % CP_; }
  // The block of output vector kb and input channels 2 cp, 2 cp + 1 (by channel).
  int64_t block_of(int64_t kb, int64_t cp) const { return kb * CP_ + cp; }

  // Block b of group gi into out, in buf (3 F W elements: the tile buffer and the kernels in
  // lanes, ntaps <= F).
  void run(int64_t gi, int64_t b, T* buf, const Out& out) const {
    const auto& k = ks_.fft;
    const int64_t W = W_, F = t_.freqs(), pairs = g_.Kg * g_.Cg;
    if (one_at_a_time(b)) {
      for (int64_t q = b * 2 * W; q < pairs; ++q) run_one(gi, q, buf, out);
      return;
    }
    T* re = buf;
    T* im = re + F * W;
    spectrum(gi, b, re, im, im + F * W);
    if (t_.by_channel) {
      T* dst = out.base + block_cp(b) * out.cp_stride + block_kb(b) * 2 * W;
      // Vector by vector (a memcpy call per vector took 1.5x the time of the call's packing).
      for (int64_t f = 0; f < F; ++f, dst += out.stride) {
        for (int64_t i = 0; i < W; ++i) dst[i] = re[f * W + i];
        for (int64_t i = 0; i < W; ++i) dst[W + i] = im[f * W + i];
      }
      return;
    }
    const T scale = T(0.5) / static_cast<T>(F);
    const int64_t q0 = b * 2 * W, lanes = std::min(2 * W, pairs - q0);
    const int na = static_cast<int>(std::min(W, lanes)), nb = static_cast<int>(lanes - na);
    k.split(re, im, half_.at.data(), half_.mirror.data(), half_.slots, scale, out.base + q0,
            out.stride, W, pairs, na, nb, out.stream);
    if (out.stream) k.store_fence();
  }

  // The FFT of block b's kernels (lane l < W of re and im: the kernels run() names), unscaled,
  // into re, im [F][W] each; taps: ntaps W elements of scratch. Only the box the taps span is
  // written before the transform, which does not read past it (zeroing the whole buffer first
  // took 6 % of the 13 x 13 bench layer's stateless call).
  void spectrum(int64_t gi, int64_t b, T* re, T* im, T* taps) const {
    const int64_t W = W_, pairs = g_.Kg * g_.Cg;
    if (dilated_)
      for (int64_t j0 = 0; j0 < live_[0]; ++j0)
        for (int64_t j1 = 0; j1 < live_[1]; ++j1) {
          const int64_t at = (j0 * t_.f[1] + j1) * t_.f[2] * W;
          std::fill(re + at, re + at + live_[2] * W, T(0));
          std::fill(im + at, im + at + live_[2] * W, T(0));
        }
    const T* w[2 * kMaxLanes];  // the kernel of each lane (null: none); lane l % W of re or im
    for (int64_t l = 0; l < 2 * W; ++l) {
      int64_t kk, c;
      if (t_.by_channel) {
        kk = block_kb(b) * W + l % W, c = block_cp(b) * 2 + l / W;
      } else {
        const int64_t q = std::min(b * 2 * W + l, pairs);
        kk = q < pairs ? q / g_.Cg : g_.Kg, c = q % g_.Cg;
      }
      w[l] = kk < g_.Kg && c < g_.Cg
                 ? ws_.w + gi * ws_.g_stride + kk * ws_.k_stride + c * ws_.c_stride
                 : nullptr;
    }
    for (int h = 0; h < 2; ++h) {
      ks_.gemm.pack_rows(w + h * W, static_cast<int>(W), ntaps_, taps, W);
      T* dst = h == 0 ? re : im;
      for (int64_t r = 0; r < nrows_; ++r) {
        const T* src = taps + r * ws_.taps[2] * W;
        const int64_t at = (row_[r] * t_.f[2] + first_) * W;  // the row's first tap
        if (step_ == 1) {  // the row's taps are adjacent in the box
          std::memcpy(dst + at, src, ws_.taps[2] * W * sizeof(T));
          continue;
        }
        for (int64_t j = 0; j < ws_.taps[2]; ++j)
          for (int64_t i = 0; i < W; ++i) dst[at + j * step_ * W + i] = src[j * W + i];
      }
    }
    axes_.forward(ks_.fft, re, im, live_);
  }

 private:
  // Whether block b's kernels are transformed one at a time (run_one) rather than together in
  // its 2W lanes: by tile, at most kFewKernels of them (template matching's one kernel would
  // leave 31 of 32 lanes idle, and the block's buffers, 2 MiB for a 128 x 128 box, go
  // through the cache for it) and at most W, so that run() would leave their imaginary lanes
  // empty, on a box with an axis before the last.
  bool one_at_a_time(int64_t b) const {
    const int64_t rows = t_.f[0] * t_.f[1];
    return !t_.by_channel && g_.Kg * g_.Cg - b * 2 * W_ <= std::min(kFewKernels, W_) &&
           rows > 1 &&
           2 * rows * util::round_up(t_.f[2], W_) + 2 * t_.f[2] * W_ <= 3 * t_.freqs() * W_;
  }

  // The spectrum of kernel q (by tile) alone, into U as run() puts it:
  //   rows     its rows' transforms along the last axis, W rows at a time in the lanes
  //            ([f2][W], re and im apart), back to their places in z ([f0][f1][f2p], re and
  //            im apart, a single lane, zero elsewhere; f2p = f2 rounded up to whole vectors)
  //            by the layout's transposing copy;
  //   columns  z read as [f0][f1][f2p / W][W]: the other axes with the last one's positions
  //            in the lanes;
  //   split    U's slot values from z at k and -k.
  // Every value goes through the operations of run()'s lane holding q with nothing in its
  // imaginary lane (the same spectra, the same bits), on 2 f0 f1 f2p + 2 f2 W elements
  // instead of 2FW.
  void run_one(int64_t gi, int64_t q, T* buf, const Out& out) const {
    const auto& k = ks_.fft;
    const auto& a = axes_.a;
    const int64_t W = W_, f0 = t_.f[0], f1 = t_.f[1], f2 = t_.f[2];
    const int64_t f2p = util::round_up(f2, W), Z = f0 * f1 * f2p;
    const auto& taps = ws_.taps;
    const T* w = ws_.w + gi * ws_.g_stride + q / g_.Cg * ws_.k_stride + q % g_.Cg * ws_.c_stride;
    T* zr = buf;
    T* zi = zr + Z;
    T* lr = zi + Z;  // W rows in lanes
    T* li = lr + f2 * W;
    std::fill(zr, zr + 2 * Z, T(0));
    T* rows[2 * kMaxLanes];
    for (int64_t r0 = 0; r0 < nrows_; r0 += W) {
      const int n = static_cast<int>(std::min(W, nrows_ - r0));
      std::fill(lr, lr + 2 * f2 * W, T(0));
      for (int l = 0; l < n; ++l) {
        const int64_t r = r0 + l;
        rows[l] = zr + row_[r] * f2p;
        rows[W + l] = zi + row_[r] * f2p;
        for (int64_t t2 = 0; t2 < taps[2]; ++t2)
          lr[(first_ + t2 * step_) * W + l] = w[r * taps[2] + t2];
      }
      if (f2 > 1) k.axis(lr, li, W, 1, a[2].view(), false);
      ks_.blocked.deinterleave(lr, W, f2, rows, n);
      ks_.blocked.deinterleave(li, W, f2, rows + W, n);
    }
    if (f1 > 1)  // the planes with taps, as the forward transform prunes them
      for (int64_t j0 = 0; j0 < live_[0]; ++j0)
        k.axis(zr + j0 * f1 * f2p, zi + j0 * f1 * f2p, f2p, f2p / W, a[1].view(), false);
    if (f0 > 1) k.axis(zr, zi, f1 * f2p, f1 * f2p / W, a[0].view(), false);
    // fft_split's values for a real-lane kernel, conj(W_q) scaled: the same operations. The
    // slots' positions increase, so their digits along the axes advance without divisions.
    const T scale = T(0.5) / static_cast<T>(t_.freqs());
    const int64_t pairs = g_.Kg * g_.Cg;
    T* u = out.base + q;
    int64_t p0 = 0, p1 = 0, p2 = 0, at = 0;
    for (int64_t slot = 0; slot < half_.slots; ++slot, u += out.stride) {
      for (p2 += half_.at[slot] - at, at = half_.at[slot]; p2 >= f2; p2 -= f2)
        if (++p1 == f1) p1 = 0, ++p0;
      const int64_t p = (p0 * f1 + p1) * f2p + p2;
      const int64_t m = (a[0].mirror[p0] * f1 + a[1].mirror[p1]) * f2p + a[2].mirror[p2];
      u[0] = (zr[p] + zr[m]) * scale;
      u[pairs] = (zi[m] - zi[p]) * scale;
    }
  }

  const Geometry& g_;
  const Tiling& t_;
  const kernels::KernelSet<T>& ks_;
  const WeightSource<T>& ws_;
  std::shared_ptr<const BoxPlan<T>> box_;
  const Axes<T>& axes_;
  const HalfSpectrum& half_;
  int64_t W_, KB_, CP_, nrows_, ntaps_;
  // Kernel row r (taps (t0, t1) row-major) lies in box row row_[r] ([f0][f1] flattened), its
  // tap t2 at position first_ + t2 * step_ along the last axis (flipped or not, dilated).
  std::vector<int64_t> row_;
  int64_t first_, step_;
  Ext live_;              // the box the taps span
  bool dilated_ = false;  // whether it holds zeros between taps
};

// Every block of every group into U (layout above).
template <typename T>
void transform_weights(const Geometry& g, const Tiling& t, const kernels::KernelSet<T>& ks,
                       const WeightSource<T>& ws, T* U, T* scratch, int threads) {
  const WeightTransform<T> wt(g, t, ks, ws);
  const int64_t W = ks.fft.w, blocks = wt.blocks();
  const int64_t ld = ceil_div(g.Kg, W) * 2 * W;
  const int64_t group = spectra_elements(g, t) / g.groups;
  const int64_t stride = thread_scratch<T>(t);
  // By tile, spectra past half the last-level cache bypass it (util/cache.hpp; rows of whole
  // vectors, aligned).
  const bool stream = !t.by_channel &&
                      util::stream_intermediate(spectra_elements(g, t) * int64_t(sizeof(T))) &&
                      (g.Kg * g.Cg * sizeof(T)) % (W * sizeof(T)) == 0 &&
                      reinterpret_cast<std::uintptr_t>(U) % (W * sizeof(T)) == 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (int64_t gb = 0; gb < g.groups * blocks; ++gb) {
    const int64_t gi = gb / blocks;
    using Out = typename WeightTransform<T>::Out;
    const Out out = t.by_channel ? Out{U + gi * group, channel_spectra_stride(g, t), ld, false}
                                 : Out{U + gi * group, g.Kg * g.Cg * 2, 0, stream};
    wt.run(gi, gb % blocks, scratch + util::thread_index() * stride, out);
  }
}

// What lane l < 2W of a vector group holds (lanes W and up: the imaginary parts): a tile of
// channel ch (within the group) of image n at grid position `at`, or nothing.
struct Lane {
  bool valid = false;
  int64_t n = 0, ch = 0;
  Ext at{0, 0, 0};
};

// Half h (0: the real part) of tile pair `pair` of the batch, channel ch; none past the last
// tile.
inline Lane tile_lane(const Tiling& t, int64_t pair, int64_t h, int64_t ch) {
  const int64_t ppi = t.pairs_per_image();
  const int64_t n = pair / ppi, r = pair % ppi * 2 + h;
  if (n >= t.images || r >= t.tiles_per_image()) return {};
  return {true, n, ch, {r / (t.grid[1] * t.grid[2]), r / t.grid[2] % t.grid[1], r % t.grid[2]}};
}

// The lanes of vector group v by tile (W tile pairs of channel ch) ...
inline void lanes_by_tile(const Tiling& t, int64_t v, int64_t ch, Lane* lanes) {
  for (int64_t l = 0; l < 2 * t.lanes; ++l)
    lanes[l] = tile_lane(t, v * t.lanes + l % t.lanes, l / t.lanes, ch);
}

// ... and by channel (tile pair `pair` of channels c0 .. c0 + W - 1 that are below `channels`).
inline void lanes_by_channel(const Tiling& t, int64_t pair, int64_t c0, int64_t channels, Lane* lanes) {
  for (int64_t l = 0; l < 2 * t.lanes; ++l) {
    const int64_t ch = c0 + l % t.lanes;
    lanes[l] = ch < channels ? tile_lane(t, pair, l / t.lanes, ch) : Lane{};
  }
}

// Tile buffers a transform task fills before copying their spectra out together: their copies
// to and from the spectra, which hold one vector group of a channel per frequency, then move
// runs of that many vector groups instead of one (the runs are a frequency apart). Up to 8,
// within 1 MiB.
int64_t channel_block(const Tiling& t, int64_t elem) {
  return std::max<int64_t>(1, std::min<int64_t>(8, (int64_t(1) << 20) / (t.buffer_size() * elem)));
}

// The correlation of Geometry g on dense x (N x groups*Cg x in) into y (N x groups*Kg x out),
// with U from transform_weights, or with the weights transformed in the tasks (weights
// non-null: transforms_in_tasks). ws: work_size elements.
template <typename T>
void correlate(const Geometry& g, const Tiling& t, const kernels::KernelSet<T>& ks, const T* x,
               const T* U, const WeightSource<T>* weights, const T* bias, Activation act, T* y,
               T* ws, int threads) {
  const auto& k = ks.fft;
  const auto box = box_plan<T>(t.f);
  const Axes<T>& axes = box->axes;
  const HalfSpectrum& half = box->half;
  const int64_t W = k.w, F = t.freqs(), Cg = g.Cg, Kg = g.Kg, S = half.slots;
  const int64_t B = t.buffer_size();
  const int64_t C = g.groups * Cg, K = g.groups * Kg;
  const int64_t in_plane = g.in[0] * g.in[1] * g.in[2], out_plane = g.out[0] * g.out[1] * g.out[2];
  const int64_t stride = thread_scratch<T>(t, weights != nullptr);
  const auto hi = act == Activation::relu6 ? T(6) : std::numeric_limits<T>::infinity();

  // The spectrum of the lanes' input tiles (of group gi) into the buffer re, im ([F][W]
  // each); edge: 2W rows of f2.
  const auto forward_tiles = [&](int64_t gi, const Lane* lanes, T* re, T* im, T* edge,
                                 Share share = {}) {
    // Each lane's input plane (null: no tile) and the input position of its tile's origin.
    const T* plane[2 * kMaxLanes];
    Ext org[2 * kMaxLanes];
    for (int64_t l = 0; l < 2 * W; ++l) {
      const Lane& p = lanes[l];
      plane[l] = p.valid ? x + (p.n * C + gi * Cg + p.ch) * in_plane : nullptr;
      for (int d = 0; d < 3; ++d) org[l][d] = p.at[d] * t.o[d] - g.lo[d];
    }
    const T* rows[2 * kMaxLanes];
    for (int64_t r = share.begin(t.f[0] * t.f[1]); r < share.end(t.f[0] * t.f[1]); ++r) {
      const int64_t r0 = r / t.f[1], r1 = r % t.f[1];
      for (int64_t l = 0; l < 2 * W; ++l) {
        rows[l] = nullptr;
        const int64_t i0 = org[l][0] + r0, i1 = org[l][1] + r1, i2 = org[l][2];
        if (!plane[l] || i0 < 0 || i0 >= g.in[0] || i1 < 0 || i1 >= g.in[1]) continue;
        const T* row = plane[l] + (i0 * g.in[1] + i1) * g.in[2];
        if (i2 >= 0 && i2 + t.f[2] <= g.in[2]) {
          rows[l] = row + i2;
          continue;
        }
        // The row's part inside the input, zeros around it.
        T* e = edge + l * t.f[2];
        const int64_t j0 = std::min(std::max<int64_t>(0, -i2), t.f[2]);
        const int64_t j1 = std::max(j0, std::min(t.f[2], g.in[2] - i2));
        std::fill(e, e + j0, T(0));
        std::copy(row + i2 + j0, row + i2 + j1, e + j0);
        std::fill(e + j1, e + t.f[2], T(0));
        rows[l] = e;
      }
      const int64_t at = (r0 * t.f[1] + r1) * t.f[2] * W;
      ks.blocked.interleave(rows, t.f[2], re + at);
      ks.blocked.interleave(rows + W, t.f[2], im + at);
    }
    share.sync();
    axes.forward(k, re, im, t.f, share);
  };

  // The lanes' output tiles (output channels of group gi) from their spectrum in re, im:
  // inverse FFT, bias and clamp, lanes back to the rows of y.
  const auto inverse_tiles = [&](int64_t gi, const Lane* lanes, T* re, T* im, T* edge,
                                 Share share = {}) {
    axes.inverse(k, re, im, t.o, share);
    // Each lane's output plane (null: no tile), its tile's output origin, row length and bias.
    T* plane[2 * kMaxLanes];
    Ext org[2 * kMaxLanes];
    int64_t count[2 * kMaxLanes];
    T b[2 * kMaxLanes];
    for (int64_t l = 0; l < 2 * W; ++l) {
      const Lane& p = lanes[l];
      plane[l] = p.valid ? y + (p.n * K + gi * Kg + p.ch) * out_plane : nullptr;
      for (int d = 0; d < 3; ++d) org[l][d] = p.at[d] * t.o[d];
      count[l] = std::min(t.o[2], g.out[2] - org[l][2]);
      b[l] = bias && p.valid ? bias[gi * Kg + p.ch] : T(0);
    }
    T* rows[2 * kMaxLanes];
    T* dst[2 * kMaxLanes];
    for (int64_t r = share.begin(t.o[0] * t.o[1]); r < share.end(t.o[0] * t.o[1]); ++r) {
      const int64_t r0 = r / t.o[1], r1 = r % t.o[1];
      for (int64_t l = 0; l < 2 * W; ++l) {
        rows[l] = edge + l * t.f[2];
        dst[l] = nullptr;
        const int64_t o0 = org[l][0] + r0, o1 = org[l][1] + r1;
        if (!plane[l] || o0 >= g.out[0] || o1 >= g.out[1]) continue;
        dst[l] = plane[l] + (o0 * g.out[1] + o1) * g.out[2] + org[l][2];
        if (count[l] == t.o[2]) rows[l] = dst[l];
      }
      const int64_t at = (r0 * t.f[1] + r1) * t.f[2] * W;
      ks.blocked.deinterleave(re + at, W, t.o[2], rows, static_cast<int>(W));
      ks.blocked.deinterleave(im + at, W, t.o[2], rows + W, static_cast<int>(W));
      for (int64_t l = 0; l < 2 * W; ++l) {
        if (!dst[l]) continue;
        if (rows[l] != dst[l]) std::memcpy(dst[l], rows[l], count[l] * sizeof(T));
        if (bias || act != Activation::none)
          for (int64_t j = 0; j < count[l]; ++j) {
            const T s = dst[l][j] + b[l];
            dst[l][j] = act == Activation::none ? s : s < T(0) ? T(0) : (s > hi ? hi : s);
          }
      }
    }
  };

  if (Cg == 1) {
    // One input channel per group: the products are pointwise, so each task runs its vector
    // group through forward transform, products and inverse transforms in its own buffers,
    // without the spectra's round trip through memory. u: the group's U per frequency,
    // conjugation applied, [k][re, im][f] (in the workspace, which holds Kg chunks of 2W F).
    const int64_t G = t.vector_groups();
    T* u = ws + Cg * t.chunk * 2 * W * F;
    T* scratch = u + Kg * t.chunk * 2 * W * F;
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      for (int64_t kk = 0; kk < Kg; ++kk)
        for (int64_t f = 0; f < F; ++f) {
          const T* src = U + (gi * S + half.slot[f]) * Kg * 2 + kk;
          T* dst = u + kk * 2 * F + f;
          dst[0] = src[0];
          dst[F] = half.conj[f] ? -src[Kg] : src[Kg];
        }
      // Vector group v in the buffers of thread `owner`; with a share, the threads split its
      // passes, each with its own edge rows.
      const auto run_group = [&](int64_t v, int owner, Share share) {
        T* spectrum = scratch + owner * stride;
        T* product = spectrum + B;
        T* edge = scratch + util::thread_index() * stride + 2 * B;
        Lane lanes[2 * kMaxLanes];
        lanes_by_tile(t, v, 0, lanes);
        forward_tiles(gi, lanes, spectrum, spectrum + F * W, edge, share);
        const int64_t f0 = share.begin(F), nf = share.end(F) - f0;
        for (int64_t kk = 0; kk < Kg; ++kk) {
          const T* uk = u + kk * 2 * F;
          k.multiply(nf, uk + f0, uk + F + f0, spectrum + f0 * W, spectrum + (F + f0) * W,
                     product + f0 * W, product + (F + f0) * W);
          share.sync();
          lanes_by_tile(t, v, kk, lanes);
          inverse_tiles(gi, lanes, product, product + F * W, edge, share);
          share.sync();  // the product buffer is reused
        }
      };
      if (G < threads) {  // fewer vector groups than threads: each split between them
#pragma omp parallel num_threads(threads)
        {
          const Share share{util::thread_index(), util::team_size()};
          for (int64_t v = 0; v < G; ++v) run_group(v, 0, share);
        }
      } else {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
        for (int64_t v = 0; v < G; ++v) run_group(v, util::thread_index(), Share{});
      }
    }
    return;
  }

  const int64_t chunk = chunk_of(t, threads), units = t.units();

  if (t.by_channel) {
    // A chunk of nv tile pairs: Z [f][re, im][nv][C2] (the products' broadcast rows: per pair
    // of input channels c, c + 1, P = (Z_c + i Z_c+1) s and Q = (Z_c - i Z_c+1) s with
    // s = 1 / 2F, the inverse's 1 / n and the halves of taking the weights' spectra apart;
    // FftPairProductFn), M [f][nv][KB][re, im][W] (vectors of output channels, as U).
    const int64_t KB = ceil_div(Kg, W), ld = KB * 2 * W, CP = ceil_div(Cg, 2), C2 = 2 * CP;
    const T s = T(0.5) / static_cast<T>(F);
    T* Z = ws;
    T* M = Z + F * 2 * t.chunk * C2;
    T* scratch = M + F * t.chunk * ld;
    // Output vector kb's tiles of pair v0 + v from M: inverse transforms, bias, clamp.
    const auto inverse_pair = [&](int64_t gi, int64_t kb, int64_t v0, int64_t v, int64_t nv,
                                  T* buf) {
      T* re = buf;
      T* im = re + F * W;
      for (int64_t f = 0; f < F; ++f) {
        const T* src = M + (f * nv + v) * ld + kb * 2 * W;
        for (int64_t i = 0; i < W; ++i) re[f * W + i] = src[i];
        for (int64_t i = 0; i < W; ++i) im[f * W + i] = src[W + i];
      }
      Lane lanes[2 * kMaxLanes];
      lanes_by_channel(t, v0 + v, kb * W, Kg, lanes);
      inverse_tiles(gi, lanes, re, im, re + B);
    };
    // M at slot's position k and its mirror -k (output vectors k0 .. k0 + groups - 1) += the
    // products of Z's rows (nv tile pairs, channel pairs cp0 .. cp0 + ncp - 1) with the
    // weights' spectra at k (x) and -k (x2): ldx between channel pairs, imaginary parts ldi
    // after the real ones.
    const auto products_at = [&](int64_t slot, int64_t nv, int64_t cp0, int64_t ncp, const T* x,
                                 const T* x2, int64_t ldx, int64_t ldi, int64_t k0,
                                 int64_t groups, bool accumulate) {
      const int64_t f = half.at[slot], fm = half.mirror[f];
      const T* zr = Z + f * 2 * nv * C2 + 2 * cp0;
      const T* zm = Z + fm * 2 * nv * C2 + 2 * cp0;
      const bool own = fm == f;  // its own mirror: a real frequency of the spectrum
      k.pair_product(nv, ncp, zr, zr + nv * C2, M + f * nv * ld + k0, own ? nullptr : zm,
                     zm + nv * C2, M + fm * nv * ld + k0, C2, x, x2, ldx, ldi, ld, groups,
                     accumulate);
    };
    for (int64_t gi = 0; gi < g.groups; ++gi)
      for (int64_t v0 = 0; v0 < units; v0 += chunk) {
        const int64_t nv = std::min(chunk, units - v0), cblocks = ceil_div(Cg, W);

        // 1. Z from the FFT of the input tiles, W channels (W / 2 pairs: W is even on every
        // ISA) of one tile pair per task.
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
        for (int64_t task = 0; task < cblocks * nv; ++task) {
          const int64_t c0 = task / nv * W, v = task % nv, nc = std::min(W, Cg - c0);
          T* re = scratch + util::thread_index() * stride;
          T* im = re + F * W;
          Lane lanes[2 * kMaxLanes];
          lanes_by_channel(t, v0 + v, c0, Cg, lanes);
          forward_tiles(gi, lanes, re, im, re + B);
          for (int64_t f = 0; f < F; ++f) {
            T* zr = Z + f * 2 * nv * C2 + v * C2 + c0;
            T* zi = zr + nv * C2;
            const T* xr = re + f * W;
            const T* xi = im + f * W;
            for (int64_t i = 0; i < nc; i += 2) {
              const T ar = xr[i], ai = xi[i];  // Z_c
              const T br = i + 1 < nc ? xr[i + 1] : T(0), bi = i + 1 < nc ? xi[i + 1] : T(0);
              zr[i] = (ar - bi) * s, zi[i] = (ai + br) * s;          // P
              zr[i + 1] = (ar + bi) * s, zi[i + 1] = (ai - br) * s;  // Q
            }
          }
        }

        if (weights) {
          // 2, 3. Per output vector: its weights' spectra a chunk of input channel pairs at a
          // time into the task's buffer ([pair][re, im][F][W], as the transform leaves them),
          // their products added to M (in the order of the channels, as with U whole), then
          // the inverse transforms.
          const WeightTransform<T> wt(g, t, ks, *weights);
          // Chunks of equal size, at most in_task_channels / 2 pairs.
          const int64_t chunks = ceil_div(CP, in_task_channels(t, sizeof(T)) / 2);
          const int64_t cc = ceil_div(CP, chunks);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
          for (int64_t kb = 0; kb < KB; ++kb) {
            T* buf = scratch + util::thread_index() * stride;
            T* uc = buf + in_task_offset(t);
            for (int64_t cp0 = 0; cp0 < CP; cp0 += cc) {
              const int64_t n = std::min(cc, CP - cp0);
              for (int64_t j = 0; j < n; ++j)
                wt.spectrum(gi, wt.block_of(kb, cp0 + j), uc + j * 2 * F * W,
                            uc + (j * 2 + 1) * F * W, buf);
              for (int64_t slot = 0; slot < S; ++slot) {
                const int64_t f = half.at[slot], fm = half.mirror[f];
                products_at(slot, nv, cp0, n, uc + f * W, uc + fm * W, 2 * F * W, F * W,
                            kb * 2 * W, 1, cp0 > 0);
              }
            }
            for (int64_t v = 0; v < nv; ++v) inverse_pair(gi, kb, v0, v, nv, buf);
          }
          continue;
        }

        // 2. M[k], M[-k] from Z and U at k and -k, a slot at a time.
        const int64_t fs = channel_spectra_stride(g, t);
        const T* u = U + gi * F * fs;  // the group's spectra
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
        for (int64_t slot = 0; slot < S; ++slot) {
          const int64_t f = half.at[slot], fm = half.mirror[f];
          products_at(slot, nv, 0, CP, u + f * fs, u + fm * fs, ld, W, 0, KB, false);
        }

        // 3. y tiles = IFFT(M) + bias, clamped; W output channels of one tile pair per task.
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
        for (int64_t task = 0; task < KB * nv; ++task)
          inverse_pair(gi, task / nv, v0, task % nv, nv, scratch + util::thread_index() * stride);
      }
    return;
  }

  // By tile: V [f][c][nv][2W] and M [f][k][nv][2W], a chunk of nv vector groups.
  const int64_t CB = channel_block(t, sizeof(T));
  T* V = ws;
  T* M = V + Cg * t.chunk * 2 * W * F;
  T* scratch = M + Kg * t.chunk * 2 * W * F;
  for (int64_t gi = 0; gi < g.groups; ++gi)
    for (int64_t v0 = 0; v0 < units; v0 += chunk) {
      const int64_t nv = std::min(chunk, units - v0), ld = nv * 2 * W;
      const int64_t cblocks = ceil_div(Cg, CB), kblocks = ceil_div(Kg, CB);

      // 1. V = FFT of the input tiles, CB channels of one vector group per task.
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
      for (int64_t task = 0; task < cblocks * nv; ++task) {
        const int64_t c0 = task / nv * CB, v = task % nv, nc = std::min(CB, Cg - c0);
        T* buf = scratch + util::thread_index() * stride;
        T* edge = buf + CB * B;
        Lane lanes[2 * kMaxLanes];
        for (int64_t j = 0; j < nc; ++j) {
          lanes_by_tile(t, v0 + v, c0 + j, lanes);
          forward_tiles(gi, lanes, buf + j * B, buf + j * B + F * W, edge);
        }
        for (int64_t f = 0; f < F; ++f) {
          T* dst = V + (f * Cg + c0) * ld + v * 2 * W;
          for (int64_t j = 0; j < nc; ++j, dst += ld) {
            const T* re = buf + j * B + f * W;
            const T* im = re + F * W;
            for (int64_t i = 0; i < W; ++i) dst[i] = re[i];
            for (int64_t i = 0; i < W; ++i) dst[W + i] = im[i];
          }
        }
      }

      // 2. M[f] = U[f] V[f].
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
      for (int64_t f = 0; f < F; ++f)
        k.product(Kg, Cg, U + (gi * S + half.slot[f]) * Kg * Cg * 2,
                  U + ((gi * S + half.slot[f]) * 2 + 1) * Kg * Cg, Cg,
                  half.conj[f] ? kernels::FftConj::u : kernels::FftConj::none, V + f * Cg * ld, ld,
                  M + f * Kg * ld, ld, nv, false);

      // 3. y tiles = IFFT(M) + bias, clamped; CB output channels of one vector group per task.
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
      for (int64_t task = 0; task < kblocks * nv; ++task) {
        const int64_t k0 = task / nv * CB, v = task % nv, nk = std::min(CB, Kg - k0);
        T* buf = scratch + util::thread_index() * stride;
        T* edge = buf + CB * B;
        for (int64_t f = 0; f < F; ++f) {
          const T* src = M + (f * Kg + k0) * ld + v * 2 * W;
          for (int64_t j = 0; j < nk; ++j, src += ld) {
            T* re = buf + j * B + f * W;
            T* im = re + F * W;
            for (int64_t i = 0; i < W; ++i) re[i] = src[i];
            for (int64_t i = 0; i < W; ++i) im[i] = src[W + i];
          }
        }
        Lane lanes[2 * kMaxLanes];
        for (int64_t j = 0; j < nk; ++j) {
          lanes_by_tile(t, v0 + v, k0 + j, lanes);
          inverse_tiles(gi, lanes, buf + j * B, buf + j * B + F * W, edge);
        }
      }
    }
}

// ---- whole planes (Tiling::whole): one channel pair per group on 2-D planes.

// The 2-D transform of a plane re, im [f0][f1] (f0, f1 multiples of W): along axis 0 with the
// rows' elements in the lanes, a transpose, then along the other axis, so that the spectrum
// ends transposed ([k1][k0], both digit-reversed); the inverse is the exact reverse, back to
// [f0][f1]. Scratch: re, im, the transposed pair and W rows for the transposes.
template <typename T>
struct PlaneFft {
  Axis<T> a0, a1;
  int64_t f0, f1;
  PlaneFft(int64_t n0, int64_t n1) : a0(n0), a1(n1), f0(n0), f1(n1) {}

  static int64_t scratch(const Tiling& t) {
    return 4 * t.freqs() + std::max(t.f[1], t.f[2]) * t.lanes;
  }
  // dst [cols][rows] = src [rows][cols], W rows at a time through the lanes.
  static void transpose(const kernels::KernelSet<T>& ks, const T* src, int64_t rows, int64_t cols,
                        T* dst, T* tmp) {
    const int W = ks.fft.w;
    const T* r[kMaxLanes];
    for (int64_t r0 = 0; r0 < rows; r0 += W) {
      for (int c = 0; c < W; ++c) r[c] = src + (r0 + c) * cols;
      ks.blocked.interleave(r, cols, tmp);  // tmp[j W + c] = src[r0 + c][j]
      for (int64_t j = 0; j < cols; ++j) std::memcpy(dst + j * rows + r0, tmp + j * W, W * sizeof(T));
    }
  }
  void forward(const kernels::KernelSet<T>& ks, T* re, T* im, T* tre, T* tim, T* tmp) const {
    const int64_t W = ks.fft.w;
    ks.fft.axis(re, im, f1, f1 / W, a0.view(), false);
    transpose(ks, re, f0, f1, tre, tmp);
    transpose(ks, im, f0, f1, tim, tmp);
    ks.fft.axis(tre, tim, f0, f0 / W, a1.view(), false);
  }
  void inverse(const kernels::KernelSet<T>& ks, T* tre, T* tim, T* re, T* im, T* tmp) const {
    const int64_t W = ks.fft.w;
    ks.fft.axis(tre, tim, f0, f0 / W, a1.view(), true);
    transpose(ks, tre, f1, f0, re, tmp);
    transpose(ks, tim, f1, f0, im, tmp);
    ks.fft.axis(re, im, f1, f1 / W, a0.view(), true);
  }
};

// U [g][re, im][F] = conj(FFT2(w_g)) / F in the transposed order of PlaneFft.
template <typename T>
void transform_weights_whole(const Geometry& g, const Tiling& t, const kernels::KernelSet<T>& ks,
                             const WeightSource<T>& ws, T* U, T* scratch, int threads) {
  const PlaneFft<T> fft(t.f[1], t.f[2]);
  const int64_t F = t.freqs(), f1 = t.f[2];
  const int64_t stride = util::scratch_stride(PlaneFft<T>::scratch(t), sizeof(T));
  const T scale = T(1) / static_cast<T>(F);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1 && g.groups > 1)
  for (int64_t gi = 0; gi < g.groups; ++gi) {
    T* re = scratch + util::thread_index() * stride;
    T *im = re + F, *tre = im + F, *tim = tre + F, *tmp = tim + F;
    std::fill(re, re + 2 * F, T(0));
    const T* w = ws.w + gi * ws.g_stride;
    for (int64_t t1 = 0, tap = 0; t1 < ws.taps[1]; ++t1)
      for (int64_t t2 = 0; t2 < ws.taps[2]; ++t2, ++tap) {
        const int64_t j1 = (ws.flip ? ws.taps[1] - 1 - t1 : t1) * ws.dil[1];
        const int64_t j2 = (ws.flip ? ws.taps[2] - 1 - t2 : t2) * ws.dil[2];
        re[j1 * f1 + j2] = w[tap];
      }
    fft.forward(ks, re, im, tre, tim, tmp);
    T* u = U + gi * 2 * F;
    for (int64_t i = 0; i < F; ++i) u[i] = tre[i] * scale;
    for (int64_t i = 0; i < F; ++i) u[F + i] = -tim[i] * scale;
  }
}

// The correlation of g (whole_plane_applies) plane by plane: forward transform, elementwise
// products with U, inverse transform, the outputs' box plus bias, clamped. Threads take whole
// planes: splitting one plane's passes and transposes between 2 threads measured twice as
// slow here (512 x 512 planes: 2.4 -> 4.5 ms), so a single plane runs on one thread.
template <typename T>
void correlate_whole(const Geometry& g, const Tiling& t, const kernels::KernelSet<T>& ks,
                     const T* x, const T* U, const T* bias, Activation act, T* y, T* ws,
                     int threads) {
  const PlaneFft<T> fft(t.f[1], t.f[2]);
  const int64_t F = t.freqs(), f0 = t.f[1], f1 = t.f[2], W = ks.fft.w;
  const int64_t stride = util::scratch_stride(PlaneFft<T>::scratch(t), sizeof(T));
  const int64_t in_plane = g.in[1] * g.in[2], out_plane = g.out[1] * g.out[2];
  const auto hi = act == Activation::relu6 ? T(6) : std::numeric_limits<T>::infinity();
  const int64_t tasks = g.N * g.groups;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1 && tasks > 1)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t n = task / g.groups, gi = task % g.groups;
    T* re = ws + util::thread_index() * stride;
    T *im = re + F, *tre = im + F, *tim = tre + F, *tmp = tim + F;
    std::fill(re, re + 2 * F, T(0));
    const T* plane = x + (n * g.groups + gi) * in_plane;  // one channel per group
    // b[p] = x[p - lo]: the correlation's outputs o < out read b[o + j], j < ke, inside f.
    for (int64_t i1 = 0; i1 < g.in[1]; ++i1) {
      const int64_t p1 = i1 + g.lo[1];
      if (p1 < 0 || p1 >= f0) continue;
      const int64_t j0 = std::max<int64_t>(0, -g.lo[2]);
      const int64_t j1 = std::min<int64_t>(g.in[2], f1 - g.lo[2]);
      if (j1 > j0)
        std::memcpy(re + p1 * f1 + j0 + g.lo[2], plane + i1 * g.in[2] + j0, (j1 - j0) * sizeof(T));
    }
    fft.forward(ks, re, im, tre, tim, tmp);
    const T* u = U + gi * 2 * F;
    ks.fft.multiply_each(F / W, u, u + F, tre, tim, tre, tim);
    fft.inverse(ks, tre, tim, re, im, tmp);
    const T b = bias ? bias[gi] : T(0);
    T* dst = y + (n * g.groups + gi) * out_plane;
    for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
      for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
        const T v = re[o1 * f1 + o2] + b;
        dst[o1 * g.out[2] + o2] = act == Activation::none ? v : v < T(0) ? T(0) : (v > hi ? hi : v);
      }
  }
}

Ext dilated(const ConvProblem& p) {
  Ext ke;
  for (int d = 0; d < 3; ++d) ke[d] = (p.kernel[d] - 1) * p.dilation[d] + 1;
  return ke;
}

// The forward geometry: p with its own zero padding (pads_forward_input) or already padded.
Geometry forward_geometry(const ConvProblem& p) {
  Geometry g;
  g.N = p.N, g.groups = p.groups, g.Cg = p.C_per_group(), g.Kg = p.K_per_group();
  g.in = p.in, g.out = p.out, g.ke = dilated(p), g.lo = p.pad_lo;
  return g;
}

// The data gradient's: dy read from ke - 1 before its start, channel roles swapped; out = the
// padded input.
Geometry data_geometry(const ConvProblem& p) {
  Geometry g;
  g.N = p.N, g.groups = p.groups, g.Cg = p.K_per_group(), g.Kg = p.C_per_group();
  g.in = p.out, g.out = p.in, g.ke = dilated(p);
  for (int d = 0; d < 3; ++d) g.lo[d] = g.ke[d] - 1;
  return g;
}

// Pieces of dy per axis for the weight gradient: tiles of the correlation whose kernel is a
// piece (extent `piece`) and whose output is the ke lags.
struct WeightGradPlan {
  Geometry g;  // the correlation of one group and image: images = Cg, reduction = pieces
  Tiling t;
  Ext piece{1, 1, 1}, pieces{1, 1, 1};
  int64_t count() const { return pieces[0] * pieces[1] * pieces[2]; }
};

// The correlation for pieces of dy of extent `piece` (its tiling left to the caller).
WeightGradPlan weight_grad_pieces(const ConvProblem& p, const Ext& piece) {
  WeightGradPlan P;
  const Ext ke = dilated(p);
  P.piece = piece;
  for (int d = 0; d < 3; ++d) P.pieces[d] = ceil_div(p.out[d], piece[d]);
  Geometry& g = P.g;
  g.N = p.C_per_group();
  g.groups = 1;
  g.Cg = P.count();
  g.Kg = p.K_per_group();
  for (int d = 0; d < 3; ++d) {
    g.in[d] = P.piece[d] + ke[d] - 1;
    g.ke[d] = P.piece[d];
    g.out[d] = ke[d];
  }
  return P;
}

WeightGradPlan weight_grad_plan(const ConvProblem& p, int64_t lanes, int64_t elem) {
  const Ext ke = dilated(p);
  Ext piece;
  for (int d = 0; d < 3; ++d) {
    // Pieces of dy so that piece + ke - 1 is a 5-smooth size near 4 (ke - 1) or the whole.
    const int64_t whole = next_smooth(p.out[d] + ke[d] - 1);
    const int64_t target = next_smooth(std::max<int64_t>(4 * (ke[d] - 1), 16));
    const int64_t f = ke[d] == 1 ? 1 : std::min(whole, std::max(target, next_smooth(ke[d])));
    piece[d] = f - ke[d] + 1;
  }
  WeightGradPlan P = weight_grad_pieces(p, piece);
  Ext f;
  for (int d = 0; d < 3; ++d) f[d] = P.g.in[d] == 1 ? 1 : next_smooth(P.g.in[d]);
  P.t = cheaper_lanes(P.g, f, lanes, kChunkBytes, elem, true);
  // One output channel per group on 2-D planes (template matching's gradient; depthwise
  // layers): dy whole as the kernel, one plane transform per input channel (the forward's
  // whole-plane path), where the model prefers it to the pieces, whose correlations fill few
  // lanes with a single output channel (template matching's: one tile of lags per input
  // channel).
  if (P.g.Kg == 1) {
    WeightGradPlan whole = weight_grad_pieces(p, {p.out[0], p.out[1], p.out[2]});
    if (whole_plane_applies(whole.g)) {
      whole.t = whole_plane_tiling(whole.g, lanes);
      if (modelled_whole_ns(whole.g, whole.t, true) < modelled_ns(P.g, P.t, true)) return whole;
    }
  }
  return P;
}

// What tiling_of picks for a layer: whole planes, or extents and lanes.
struct Pick {
  bool whole = false, by_channel = false;
  Ext f{1, 1, 1};
};

Pick pick_for(const Geometry& one, int64_t lanes, int64_t elem) {
  const Tiling t = choose_tiling(one, lanes, kChunkBytes, elem, true);
  if (whole_plane_applies(one) &&
      modelled_whole_ns(one, whole_plane_tiling(one, lanes), true) < modelled_ns(one, t, true))
    return {true, false, {1, 1, 1}};
  return {false, t.by_channel, t.f};
}

// The tiling of a forward (or data-gradient) geometry: chosen for one image and counting the
// weight transforms, so that it depends only on the layer (a plan packs for it once). The
// choice evaluates some hundreds of tilings (tens of microseconds); every call asks for it a
// few times (workspace, packing, the run), so the last layers' choices are kept.
Tiling tiling_of(const Geometry& g, int64_t lanes, int64_t elem) {
  Geometry one = g;
  one.N = 1;
  using Key = std::array<int64_t, 17>;
  const Key key{one.groups, one.Cg, one.Kg, one.in[0], one.in[1], one.in[2], one.out[0],
                one.out[1], one.out[2], one.ke[0], one.ke[1], one.ke[2], one.lo[0], one.lo[1],
                one.lo[2], lanes, elem};
  static util::Memo<Key, Pick> picks(256);  // the last 256 layers' choices
  const Pick pick = picks.get(key, 1, [&] { return pick_for(one, lanes, elem); });
  if (pick.whole) {
    Tiling whole = whole_plane_tiling(one, lanes);
    whole.images = g.N;
    return whole;
  }
  return tiling_for(g, pick.f, pick.by_channel, lanes, kChunkBytes, elem);
}

double modelled(const Geometry& g, const Tiling& t, bool weights_counted) {
  return t.whole ? modelled_whole_ns(g, t, weights_counted) : modelled_ns(g, t, weights_counted);
}

// The workspace of a correlation on `threads` threads (transforming the weights in its tasks
// where transforms_in_tasks says so).
template <typename T>
int64_t work_size(const Geometry& g, const Tiling& t, int threads) {
  if (t.whole) return threads * util::scratch_stride(PlaneFft<T>::scratch(t), sizeof(T));
  return t.spectra_size(g) +
         threads * thread_scratch<T>(t, transforms_in_tasks(g, t, threads));
}

// The weights' transform and the correlation of either path.
template <typename T>
void transform(const Geometry& g, const Tiling& t, const kernels::KernelSet<T>& ks,
               const WeightSource<T>& ws, T* U, T* scratch, int threads) {
  if (t.whole)
    transform_weights_whole(g, t, ks, ws, U, scratch, threads);
  else
    transform_weights(g, t, ks, ws, U, scratch, threads);
}

template <typename T>
void run_correlation(const Geometry& g, const Tiling& t, const kernels::KernelSet<T>& ks,
                     const T* x, const T* U, const WeightSource<T>* weights, const T* bias,
                     Activation act, T* y, T* ws, int threads) {
  if (t.whole)
    correlate_whole(g, t, ks, x, U, bias, act, y, ws, threads);
  else
    correlate(g, t, ks, x, U, weights, bias, act, y, ws, threads);
}

// ---- forward: x N x C x in (zero padding pad_lo/pad_hi applied here), packed U (or the
// weights, transformed in the tasks: transforms_in_tasks) -> y.
template <typename T>
WeightSource<T> forward_weights(const ConvProblem& p, const void* w) {
  const int64_t taps = p.kernel_spatial();
  return {static_cast<const T*>(w), p.K_per_group() * p.C_per_group() * taps,
          p.C_per_group() * taps, taps, p.kernel, p.dilation, false};
}

template <typename T>
void pack(const ConvArgs& a, void* packed) {
  const ConvProblem& p = a.problem;
  const Geometry g = forward_geometry(p);
  const auto& ks = a.kernels.get<T>();
  const Tiling t = tiling_of(g, ks.fft.w, sizeof(T));
  // Scratch of the weight transform only (no spectra of inputs).
  const int64_t per_thread = t.whole ? util::scratch_stride(PlaneFft<T>::scratch(t), sizeof(T))
                                     : thread_scratch<T>(t);
  util::AlignedBuffer scratch(static_cast<std::size_t>(a.threads * per_thread) * sizeof(T),
                              "the FFT weight transform's scratch");
  transform(g, t, ks, forward_weights<T>(p, a.w), static_cast<T*>(packed), scratch.as<T>(),
            a.threads);
}

// Whether the caller asked for the definition's NaN / Inf pattern (ConvArgs::non_finite_input)
// and src[0..n) holds a NaN or Inf: then the flag is set and the algorithm returns.
template <typename T>
bool stop_on_non_finite(const ConvArgs& a, const T* src, int64_t n) {
  if (!a.non_finite_input || !any_non_finite(src, n)) return false;
  *a.non_finite_input = true;
  return true;
}

template <typename T>
void forward(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto* x = static_cast<const T*>(a.x);
  if (stop_on_non_finite(a, x, p.N * p.C * p.in_spatial())) return;
  const Geometry g = forward_geometry(p);
  const auto& ks = a.kernels.get<T>();
  const Tiling t = tiling_of(g, ks.fft.w, sizeof(T));
  const WeightSource<T> w = forward_weights<T>(p, a.w);
  run_correlation(g, t, ks, x, static_cast<const T*>(a.packed_w), a.packed_w ? nullptr : &w,
                  static_cast<const T*>(a.b), a.activation, static_cast<T*>(a.out),
                  static_cast<T*>(a.workspace), a.threads);
}

// ---- backward-data: w, dy -> dx (the padded input's gradient, written whole).
template <typename T>
void backward_data(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto* dy = static_cast<const T*>(a.dy);
  if (stop_on_non_finite(a, dy, p.N * p.K * p.out_spatial())) return;
  const Geometry g = data_geometry(p);
  const auto& ks = a.kernels.get<T>();
  const Tiling t = tiling_of(g, ks.fft.w, sizeof(T));
  T* U = static_cast<T*>(a.workspace);
  T* work = U + util::round_up(weights_size(g, t), 16);
  const int64_t taps = p.kernel_spatial(), Kg = p.K_per_group(), Cg = p.C_per_group();
  // g's kernel (k' = c, c' = k) of group gi is p's (gi Kg + k, c), flipped in space.
  const WeightSource<T> w{static_cast<const T*>(a.w), Kg * Cg * taps, taps, Cg * taps,
                          p.kernel, p.dilation, true};
  if (!all_finite(w.w, p.K * Cg * taps, a.threads)) {
    // A non-finite weight times the padding around dy would be NaN where the definition has
    // no term: the direct algorithm keeps the definition's pattern.
    direct_algorithm().run[static_cast<int>(ConvDirection::backward_data)](a);
    return;
  }
  const bool in_tasks = transforms_in_tasks(g, t, a.threads);
  if (!in_tasks) transform(g, t, ks, w, U, work, a.threads);
  run_correlation(g, t, ks, dy, U, in_tasks ? &w : nullptr, static_cast<const T*>(nullptr),
                  Activation::none, static_cast<T*>(a.out), work, a.threads);
}

// dst (dense, extent box) = src (extent `ext`) from `origin`, zero beyond ext.
template <typename T>
void copy_box(const T* src, const Ext& ext, const Ext& origin, const Ext& box, T* dst) {
  for (int64_t i0 = 0; i0 < box[0]; ++i0)
    for (int64_t i1 = 0; i1 < box[1]; ++i1)
      for (int64_t i2 = 0; i2 < box[2]; ++i2) {
        const int64_t s0 = origin[0] + i0, s1 = origin[1] + i1, s2 = origin[2] + i2;
        *dst++ = s0 < ext[0] && s1 < ext[1] && s2 < ext[2] ? src[(s0 * ext[1] + s1) * ext[2] + s2]
                                                           : T(0);
      }
}

// ---- backward-weights: x (padded), dy -> dw.
template <typename T>
void backward_weights(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& ks = a.kernels.get<T>();
  const WeightGradPlan P = weight_grad_plan(p, ks.fft.w, sizeof(T));
  const Geometry& g = P.g;
  const int64_t Cg = p.C_per_group(), Kg = p.K_per_group(), pieces = P.count();
  const Ext ke = dilated(p);
  const int64_t ke_size = ke[0] * ke[1] * ke[2], in_piece = g.in[0] * g.in[1] * g.in[2];
  const int64_t piece_size = P.piece[0] * P.piece[1] * P.piece[2];
  const auto* x = static_cast<const T*>(a.x);
  const auto* dy = static_cast<const T*>(a.dy);
  auto* dw = static_cast<T*>(a.out);
  // Workspace: x' [Cg][pieces][in_piece], dy' [Kg][pieces][piece], U, y' [Cg][Kg][ke], work.
  T* xs = static_cast<T*>(a.workspace);
  T* dys = xs + util::round_up(Cg * g.Cg * in_piece, 16);
  T* U = dys + util::round_up(Kg * g.Cg * piece_size, 16);
  T* ys = U + util::round_up(weights_size(g, P.t), 16);
  T* work = ys + util::round_up(Cg * Kg * ke_size, 16);
  const int64_t in_plane = p.in_spatial(), out_plane = p.out_spatial();

  // Image by image, each image's result added in order: the sum does not depend on how the
  // batch is cut into calls.
  for (int64_t gi = 0; gi < p.groups; ++gi)
    for (int64_t n = 0; n < p.N; ++n) {
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1)
      for (int64_t r = 0; r < pieces; ++r) {
        const Ext at{r / (P.pieces[1] * P.pieces[2]), r / P.pieces[2] % P.pieces[1], r % P.pieces[2]};
        Ext o;
        for (int d = 0; d < 3; ++d) o[d] = at[d] * P.piece[d];
        for (int64_t c = 0; c < Cg; ++c)  // x'[c][r] = x[n][gi Cg + c] from o, extent in_piece
          copy_box(x + (n * p.C + gi * Cg + c) * in_plane, p.in, o, g.in,
                   xs + (c * pieces + r) * in_piece);
        for (int64_t k = 0; k < Kg; ++k)  // dy'[k][r] = dy[n][gi Kg + k] from o, extent piece
          copy_box(dy + (n * p.K + gi * Kg + k) * out_plane, p.out, o, P.piece,
                   dys + (k * pieces + r) * piece_size);
      }
      const WeightSource<T> w{dys, 0, pieces * piece_size, piece_size, P.piece, {1, 1, 1}, false};
      transform(g, P.t, ks, w, U, work, a.threads);
      run_correlation(g, P.t, ks, xs, U, static_cast<const WeightSource<T>*>(nullptr),
                      static_cast<const T*>(nullptr), Activation::none, ys, work, a.threads);
      // dw[gi Kg + k][c][tap] (+)= y'[c][k][tap * dilation]
      for (int64_t k = 0; k < Kg; ++k)
        for (int64_t c = 0; c < Cg; ++c) {
          T* d = dw + ((gi * Kg + k) * Cg + c) * p.kernel_spatial();
          const T* s = ys + (c * Kg + k) * ke_size;
          for (int64_t t0 = 0; t0 < p.kernel[0]; ++t0)
            for (int64_t t1 = 0; t1 < p.kernel[1]; ++t1)
              for (int64_t t2 = 0; t2 < p.kernel[2]; ++t2, ++d) {
                const T v = s[((t0 * p.dilation[0]) * ke[1] + t1 * p.dilation[1]) * ke[2] +
                              t2 * p.dilation[2]];
                *d = n == 0 ? v : *d + v;
              }
        }
    }
}

// ---- the registry's view.
std::string why_not(const ConvProblem& p, DType, ConvDirection) {
  for (int d = 0; d < 3; ++d) {
    if (p.stride[d] != 1) return "stride must be 1";
    if ((p.kernel[d] - 1) * p.dilation[d] + 1 > kMaxExtent)
      return "a dilated kernel extent above " + std::to_string(kMaxExtent);
  }
  return {};
}

bool pads_forward_input(const ConvProblem&, DType, const kernels::KernelTable&) { return true; }

bool packs_in_forward(const ConvProblem& p, DType dtype, const kernels::KernelTable& kt,
                      int threads) {
  const int64_t lanes = dtype == DType::f32 ? kt.f32.fft.w : kt.f64.fft.w;
  const Geometry g = forward_geometry(p);
  return transforms_in_tasks(g, tiling_of(g, lanes, static_cast<int64_t>(util::dtype_size(dtype))),
                             threads);
}

std::size_t workspace_bytes(const ConvProblem& p, DType dtype, ConvDirection direction,
                            int threads, const kernels::KernelTable& kt) {
  return util::with_dtype(dtype, [&](auto z) -> std::size_t {
    using T = decltype(z);
    const int64_t lanes = kt.get<T>().fft.w;
    int64_t elems = 0;
    if (direction == ConvDirection::forward) {
      const Geometry g = forward_geometry(p);
      elems = work_size<T>(g, tiling_of(g, lanes, sizeof(T)), threads);
    } else if (direction == ConvDirection::backward_data) {
      const Geometry g = data_geometry(p);
      const Tiling t = tiling_of(g, lanes, sizeof(T));
      const std::size_t direct = direct_algorithm().workspace_bytes(p, dtype, direction, threads, kt);
      elems = std::max<int64_t>(util::round_up(weights_size(g, t), 16) + work_size<T>(g, t, threads),
                                static_cast<int64_t>(direct / sizeof(T)) + 1);
    } else {
      const WeightGradPlan P = weight_grad_plan(p, lanes, sizeof(T));
      const Geometry& g = P.g;
      const Ext ke = dilated(p);
      elems = util::round_up(g.N * g.Cg * g.in[0] * g.in[1] * g.in[2], 16) +
              util::round_up(g.Kg * g.Cg * g.ke[0] * g.ke[1] * g.ke[2], 16) +
              util::round_up(weights_size(g, P.t), 16) +
              util::round_up(g.N * g.Kg * ke[0] * ke[1] * ke[2], 16) + work_size<T>(g, P.t, threads);
    }
    return static_cast<std::size_t>(elems) * sizeof(T);
  });
}

std::size_t packed_weights_bytes(const ConvProblem& p, DType dtype, const kernels::KernelTable& kt) {
  return util::with_dtype(dtype, [&](auto z) -> std::size_t {
    using T = decltype(z);
    const Geometry g = forward_geometry(p);
    return static_cast<std::size_t>(weights_size(g, tiling_of(g, kt.get<T>().fft.w, sizeof(T)))) *
           sizeof(T);
  });
}

}  // namespace

// The direct methods' modelled time: their FLOPs at 85 GFLOP/s per 16 lanes (what direct and
// gemm reach on the large-kernel bench layers at 1 thread with AVX-512 float32 on the AMD
// EPYC; the FFT model counts vector operations, so both scale alike with the lanes, and with
// threads), scaled by the direct methods' speed-up with two FMA pipes (kernels' fma_pipes:
// the ratio of direct_ns_per_mac's two fits, 1.6; the Intel Xeon ran GoogLeNet's 5x5
// on 32 x 28 x 28 by direct in 0.14-0.17 ms against the FFT's 0.16-0.23, and C3D's weight
// gradient in 75 against 142 ms, while the FFT kept its 1.3-2.5x lead on the larger kernels),
// 35 for a single channel pair per group. The FFT must beat that by kFftMargin: near a tie the
// exact methods win, as the FFT's costs outside the model (its spectra's workspace, the scan
// for non-finite inputs, weaker scaling on small problems) decide (GoogLeNet's 5x5 modelled
// at 145 us by FFT against 146 by direct measured 0.16 against 0.15 ms on 1 thread and 0.12
// against 0.09 on 2; the next-closest bench layer, AlexNet's 5x5, models 1.3x apart).
constexpr double kFftMargin = 1.1;

bool auto_prefers(const ConvProblem& p, DType dtype, ConvDirection direction,
                  const kernels::KernelTable& kt, bool prepacked) {
  if (p.kernel_spatial() < 2 || !why_not(p, dtype, direction).empty()) return false;
  const int64_t lanes = dtype == DType::f32 ? kt.f32.fft.w : kt.f64.fft.w;
  const int64_t elem = static_cast<int64_t>(util::dtype_size(dtype));
  double fft_ns = 0;
  if (direction == ConvDirection::backward_weights) {
    const WeightGradPlan P = weight_grad_plan(p, lanes, elem);
    fft_ns = p.N * p.groups * modelled(P.g, P.t, true);
  } else {
    const Geometry g = direction == ConvDirection::forward ? forward_geometry(p) : data_geometry(p);
    const Tiling t = tiling_of(g, lanes, elem);
    fft_ns = modelled(g, t, direction == ConvDirection::backward_data || !prepacked);
  }
  const double flops = 2.0 * static_cast<double>(p.N) * static_cast<double>(p.K) *
                       static_cast<double>(p.C_per_group()) *
                       static_cast<double>(p.out_spatial()) * static_cast<double>(p.kernel_spatial());
  // Per 16 lanes at 1 thread: the dense methods' rate, or, with a single output channel per
  // group fed by a single input channel (template matching, depthwise), the row kernels' 35
  // GFLOP/s measured on 512 x 512 with 3x3 to 31x31 kernels.
  const double rate = p.C_per_group() == 1 && p.K_per_group() == 1
                          ? 35.0
                          : 85.0 * direct_ns_per_mac(1) / direct_ns_per_mac(kt.fma_pipes);
  return kFftMargin * fft_ns < flops / (rate * static_cast<double>(lanes) / 16.0);
}

}  // namespace fastconv::conv::fft

namespace fastconv::conv {

const ConvAlgorithm& fft_algorithm() {
  static const ConvAlgorithm algo{
      "fft",
      "overlap-save FFT tiles, products batched over channels; stride 1, any kernel",
      {&by_dtype<fft::forward<float>, fft::forward<double>>,
       &by_dtype<fft::backward_data<float>, fft::backward_data<double>>,
       &by_dtype<fft::backward_weights<float>, fft::backward_weights<double>>},
      &fft::why_not,
      &fft::workspace_bytes,
      &fft::packed_weights_bytes,
      &by_dtype_pack<fft::pack<float>, fft::pack<double>>,
      &fft::pads_forward_input,
      nullptr,
      true,
      &fft::packs_in_forward};
  return algo;
}

}  // namespace fastconv::conv
