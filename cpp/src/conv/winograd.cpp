// conv/winograd.cpp — Winograd minimal-filtering convolution F(m x m, 3 x 3), m = 2, 4, 6
// (Lavin & Gray, "Fast algorithms for convolutional neural networks", CVPR 2016), and the 1-D
// F(m, 3) along an axis whose kernel has 3 taps where the other has 1: the forward direction and
// the data gradient. The weight gradient is not implemented (the registry says so and `auto`
// uses another algorithm).
//
//   x  N x C x in          -> xb [n][g][cb][D][Hb][Wb][W]   channel-blocked, zero padding applied
//                             while converting (blocked_layout.hpp)
//   w  K x Cg x 3 x 3      -> U  [xi][g][kb][cb][ci][ko]    U = G w GT, packed once (plan)
//   per task, TB consecutive tiles of one group in the order (n, d, th, tw):
//     V [xi][cb][t][W]  = BT d_t B                input transform
//     M [xi][kb][t][W]  = sum_c U[xi] V[xi]       A x A products on the blocked tile kernels
//                                                 (a 1x1 convolution over the task's tiles)
//     y (NCHW rows)    <- AT M_t A + bias, clamp  output transform, lanes back to channels
// with W the ISA's vector lanes, A = m + 2, xi < A x A the transform-domain position, cb / kb
// blocks of W input / output channels (zero beyond Cg / Kg). Every transform is vectorised over
// channels (winograd_ukernel.hpp), so it needs no shuffles; a task's V and M stay in the
// caches between its three steps, and U[xi] is read once per task. Tasks own their outputs:
// results do not depend on the thread count. A stateless forward or data gradient whose tasks
// would each read their part of U once (one chunk of images, one run of tiles: small maps, such
// as 512 x 7 x 7, where U's 16 MiB would go to memory and back) skips U: each task transforms
// NB output blocks x one reduction block of input channels at a time into a chunk that stays
// in cache, and adds that chunk's products to M (the same sums in the same order: the bits of
// a plan's call).
//
// Strided forwards run as the stride-1 problem of their polyphase components (polyphase.hpp:
// stride s along an axis of 2s + 1 to 3s taps leaves each phase 3 taps; xq and wq are copied
// into the workspace a chunk of images at a time, then the stride-1 path runs on them).
// Limits: stride 1 and dilation 1 along the axes with 3 taps (strided forwards: of their
// polyphase components; the data gradient: stride 1), kernel depth 1 (3-D inputs run plane by
// plane). Numerics: the transforms add rounding error growing with m (DESIGN.md's
// budget: F(2,3) 2e-6, F(4,3) and F(6,3) 5e-5), and a NaN or infinity in the input reaches the
// outputs of every tile whose input span holds it that the transform rows connect it to (AT BT
// nonzero: the whole tile for an interior position; zero coefficients are skipped, never
// multiplied), not only the outputs whose window holds it; non-finite weights likewise reach
// their output channels' tiles. `auto` asks for the definition's pattern (non_finite_input),
// checked while converting the input. The data gradient is the forward convolution of the
// output gradient padded by 2 with flipped, channel-swapped weights; with a non-finite weight
// (whose products with that padding would be NaN where the definition has no term) it runs the
// direct algorithm instead. Files: winograd_plan.hpp (how a call is cut), winograd_model.cpp
// (the tile and the `auto` rule), winograd_transforms.cpp (the transforms, for tests).
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "activation.hpp"
#include "algorithm.hpp"
#include "execute.hpp"
#include "polyphase.hpp"
#include "util/buffer.hpp"
#include "util/cache.hpp"
#include "util/format.hpp"
#include "winograd.hpp"
#include "winograd_plan.hpp"

namespace fastconv::conv::winograd {

namespace {

// Workspace: the blocked input (a chunk of images), the padded bias, and per thread V, M and a
// strip of outputs; then the transformed weights (data gradient), or per thread a chunk of them
// (a forward transforming them in its tasks).
template <typename T>
struct Workspace {
  T* image;
  T* bias;
  T* per_thread;
  int64_t thread_stride;
  T* weights;
  int64_t chunk_stride;

  Workspace(const Plan& P, void* base, int threads) {
    image = static_cast<T*>(base);
    bias = image + round_up(P.images * P.L.size(), 16);  // the chunk's blocked input
    per_thread = bias + round_up(P.groups * P.t.nkb * P.t.w, 16);
    thread_stride = util::scratch_stride(P.thread_elements(P.TW), sizeof(T));
    weights = per_thread + round_up(threads * thread_stride, 16);
    chunk_stride = util::scratch_stride(P.chunk_size(), sizeof(T));
  }
  T* chunk() const { return weights + util::thread_index() * chunk_stride; }
  enum class Weights { none, whole, chunks };
  static std::size_t bytes(const Plan& P, int threads, Weights weights) {
    const Workspace w(P, nullptr, threads);
    const int64_t n = weights == Weights::whole    ? P.s.xis() * P.u_xi()
                      : weights == Weights::chunks ? threads * w.chunk_stride
                                                   : 0;
    return static_cast<std::size_t>(reinterpret_cast<const char*>(w.weights + n) -
                                    reinterpret_cast<const char*>(w.image));
  }
};

// Whether a call without packed weights (a stateless forward, the data gradient) transforms
// them in its tasks: when each output block's weights are transformed once anyway (one chunk
// of images and one run of tiles per group: every task reads its part of U once) and the
// threads' chunks take at most a quarter of the workspace limit, or the workspace with them
// stays within the limit. Each chunk is then used while in cache, where U would go to memory
// and back (on 512 x 7 x 7 its 16 MiB cost more than the products; at batch 8 on 2 threads,
// F(4,3), 5.6 against 4.2 ms).
template <typename T>
bool transforms_in_tasks(const Plan& P, const ConvProblem& q, int threads) {
  const bool one_chunk = P.images >= q.N && P.planes >= P.D && P.rows >= P.TH;
  const bool one_run = P.tb >= P.chunk_tiles();
  const int64_t limit = scratch_limit(q, util::dtype_of<T>());
  const int64_t chunks = threads * P.chunk_size() * int64_t(sizeof(T));
  const auto total = static_cast<int64_t>(
      Workspace<T>::bytes(P, threads, Workspace<T>::Weights::chunks));
  return one_chunk && one_run && (chunks <= limit / 4 || total <= limit);
}

// The weights as a convolution of q reads them: output channel k, input channel c of group g
// at w[g * group + k * k_step + c * c_step + (tap, or ntaps - 1 - tap when flip)].
template <typename T>
struct WeightView {
  const T* w;
  int64_t group, k_step, c_step;
  bool flip;
};

// Output block kb of group g, input channels [c0, c1) (whole blocks): dst[xi * u_xi + ((c - c0)
// / W) * W * W + (c % W) * W + ko] = (G w GT)[xi] for output channel kb * W + ko, zero beyond Kg /
// Cg. With `stream`, non-temporal stores. With non_finite not null, a non-finite weight sets
// it (the forward does not look: its outputs take the NaN either way).
template <typename T>
void transform_block(const Plan& P, const ConvProblem& q, const kernels::KernelSet<T>& ks,
                     const WeightView<T>& wv, int64_t g, int64_t kb, int64_t c0, int64_t c1,
                     T* dst, int64_t u_xi, bool stream, bool* non_finite) {
  const auto& wk = ks.winograd;
  const int64_t Kg = q.K_per_group(), Cg = q.C_per_group(), W = P.t.w;
  const int64_t ntaps = q.kernel_spatial();
  const auto weight_fn = wk.weight[P.s.variant][P.s.index];
  const int64_t kn = std::max<int64_t>(0, std::min<int64_t>(W, Kg - kb * W));
  // Channels whose taps lie one after another (the forward's weights) are moved into lanes a
  // run at a time: whole vectors transposed, where one channel's taps would fill a part of one.
  constexpr int kMaxLanes = 64;
  constexpr int64_t kTapsSize = 16 * wk::kTaps * wk::kTaps * 16;  // 16 channels of 16 lanes
  alignas(64) T taps[kTapsSize];  // [channel][tap][ko]
  const T* rows[kMaxLanes];  // the taps of each output channel ko (null: none)
  const int64_t run = !wv.flip && wv.c_step == ntaps ? kTapsSize / (ntaps * W) : 1;
  for (int64_t c = c0; c < c1; c += run) {
    const int64_t cn = std::min(run, c1 - c);
    const int64_t real = std::clamp<int64_t>(Cg - c, 0, cn);  // channels below Cg
    if (real > 0) {  // the kn filters' taps into lanes (transposed in registers), in tap order
      for (int64_t ko = 0; ko < W; ++ko)
        rows[ko] = ko < kn ? wv.w + g * wv.group + (kb * W + ko) * wv.k_step + c * wv.c_step
                           : nullptr;
      // (flipped: one channel, its taps stored from the last record back; the GEMM packer
      // has the blocked kernels' lanes)
      ks.gemm.pack_rows(rows, static_cast<int>(W), real * ntaps,
                        wv.flip ? taps + (ntaps - 1) * W : taps, wv.flip ? -W : W);
      if (non_finite && any_non_finite(taps, real * ntaps * W)) *non_finite = true;
    }
    std::fill(taps + real * ntaps * W, taps + cn * ntaps * W, T(0));
    for (int64_t i = 0; i < cn; ++i)
      weight_fn(taps + i * ntaps * W, dst + (c + i - c0) / W * W * W + (c + i) % W * W, u_xi,
                stream);
  }
}

// U [xi][g][kb][cb][ci][ko] = (G w GT)[xi] of the weights, every output block of every group.
// With check, returns whether every weight is finite (else true).
template <typename T>
bool transform_weights(const Plan& P, const ConvProblem& q, const kernels::KernelSet<T>& ks,
                       const WeightView<T>& wv, T* U, int threads, bool check) {
  const int64_t W = P.t.w, ncb = P.t.ncb, nkb = P.t.nkb;
  const int64_t u_xi = P.u_xi();
  // Past half the last-level cache: written around it (util/cache.hpp).
  const bool stream = util::stream_intermediate(P.s.xis() * u_xi * int64_t(sizeof(T)));
  int bad = 0;
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(| : bad)
  {
#pragma omp for schedule(static)
  for (int64_t gk = 0; gk < P.groups * nkb; ++gk) {
    bool non_finite = false;
    transform_block(P, q, ks, wv, gk / nkb, gk % nkb, 0, ncb * W, U + gk * ncb * W * W, u_xi,
                    stream, check ? &non_finite : nullptr);
    if (non_finite) bad = 1;
  }
  if (stream) ks.winograd.store_fence();  // streamed U complete before it is read
  }
  return bad == 0;
}

// act(conv(src, U) + bias) at the outputs of `win`, written to `dest`. With U null, each task
// transforms the weights `raw` of its output blocks itself, a chunk at a time into its
// workspace (transforms_in_tasks; the same sums in the same order). With non_finite not null,
// an input holding NaN or Inf sets it and returns before anything is written.
template <typename T>
void convolve(const ConvProblem& q, const Plan& P, const kernels::KernelSet<T>& ks,
              const Source<T>& src, const T* U, const WeightView<T>& raw, const T* bias,
              Activation act,
              const Destination<T>& dest, const Workspace<T>& ws, const Window& win,
              int threads, bool* non_finite) {
  const auto& uk = ks.blocked;
  const auto& wk = ks.winograd;
  const blocked::Tiling& t = P.t;
  const Shape& s = P.s;
  const int64_t W = t.w, ncb = t.ncb, nkb = t.nkb, xis = s.xis();
  const auto input_fn = wk.input[s.variant][s.index];
  const auto output_fn = wk.output[s.variant][s.index];
  const int64_t ldx = P.L.ext[2] * W;
  const auto& E = dest.ext;
  const int64_t plane = E[0] * E[1] * E[2];

  for (int64_t i = 0; i < P.groups * nkb * W; ++i) {  // [g][kb][lane], zero beyond Kg
    const int64_t g = i / (nkb * W), k = i % (nkb * W);
    ws.bias[i] = bias && k < P.Kg ? bias[g * P.Kg + k] : T(0);
  }
  const int64_t u_xi = P.u_xi(), w_block = ncb * W * W;
  int64_t tap0 = 0;

  // Chunks: images [n0, n0 + images) whole, or tile rows [th0, th0 + rows) of plane d0 of one.
  for (int64_t n0 = 0; n0 < q.N; n0 += P.images)
  for (int64_t d0 = 0; d0 < P.D; d0 += P.planes)
  for (int64_t th0 = 0; th0 < P.TH; th0 += P.rows) {
    const int64_t images = std::min(P.images, q.N - n0), planes = std::min(P.planes, P.D - d0);
    const int64_t rows = std::min(P.rows, P.TH - th0);
    const int64_t per_image = planes * rows * P.TW, tiles = images * per_image;
    // The chunk's blocked input starts at the input of its first tile.
    Source<T> from = src;
    from.lo[0] -= win.lo[0] + d0;
    from.lo[1] -= win.lo[1] + th0 * s.mh;
    from.lo[2] -= win.lo[2];
    for (int64_t n = 0; n < images; ++n)
      to_blocked(P.L, from, n0 + n, ws.image + n * P.L.size(), threads, uk.interleave, non_finite);
    if (non_finite && *non_finite) return;
    const int64_t tasks_per_group = ceil_div(tiles, P.tb);

  #pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t task = 0; task < P.groups * tasks_per_group * P.ksplit; ++task) {
      const int64_t part = task % P.ksplit, run = task / P.ksplit;
      const int64_t g = run / tasks_per_group;
      const int64_t t0 = run % tasks_per_group * P.tb;
      const int64_t nt = std::min(P.tb, tiles - t0);
      // The register tiling of this task's nt tiles (NB output blocks x UR tiles), and its
      // output blocks: groups of NB [kg0, kg1), blocks [kb0, kb1).
      const blocked::Tiling tt(product_problem(q), uk, nt, uk.w,
                               U ? kernels::BlockedConvUkernel<T>::kMaxNb : kChunkNb);
      const int64_t nb = tt.nb, kgroups = ceil_div(P.kblocks, nb);
      const int64_t kg0 = part * kgroups / P.ksplit, kg1 = (part + 1) * kgroups / P.ksplit;
      const int64_t kb0 = kg0 * nb, kb1 = std::min(kg1 * nb, P.kblocks);
      T* V = ws.per_thread + util::thread_index() * ws.thread_stride;
      T* M = V + P.v_size();
      T* strip = M + P.m_size();
      const int64_t v_xi = P.v_xi(nt), m_xi = P.m_xi(nt);
      // Runs of tiles along one tile row: (first tile j within the task, count, and the chunk's
      // image n, plane d, tile row th, tile column tw).
      const auto for_each_run = [&](auto&& f) {
        for (int64_t j = 0; j < nt;) {
          const int64_t tile = t0 + j, n = tile / per_image, r = tile % per_image;
          const int64_t d = r / (rows * P.TW), th = r / P.TW % rows, tw = r % P.TW;
          const int64_t len = std::min(P.TW - tw, nt - j);
          f(j, len, n, d, th, tw);
          j += len;
        }
      };

      // 1. V = BT d B
      for_each_run([&](int64_t j, int64_t len, int64_t n, int64_t d, int64_t th, int64_t tw) {
        const T* xg = ws.image + n * P.L.size() + g * ncb * P.L.block_size() +
                      (d * P.L.ext[1] + th * s.mh) * ldx + tw * s.mw * W;
        for (int64_t cb = 0; cb < ncb; ++cb)
          input_fn(xg + cb * P.L.block_size(), ldx, len, V + (cb * nt + j) * W, v_xi);
      });

      // 2. M[xi] = U[xi] V[xi]: NB output blocks x UR tiles per kernel call, the last tile
      // group overlapping the one before.
      const int ur = static_cast<int>(std::min<int64_t>(tt.ur, nt));
      const auto& tiles = uk.tile[kernels::BlockedConvUkernel<T>::nb_index(static_cast<int>(nb))];
      const kernels::BlockedConvFn<T> tile_fn = tiles[ur][0];
      kernels::BlockedConvArgs<T> args;
      args.x_block = nt * W;
      args.taps = &tap0;
      args.ntaps = 1;
      args.ncb = ncb;
      args.last_cin = static_cast<int>(q.C_per_group() - (ncb - 1) * W);
      args.w_block = w_block;
      args.y_block = nt * W;
      const auto products = [&](const T* u, int64_t u_step, int64_t kg, int64_t cb0) {
        for (int64_t xi = 0; xi < xis; ++xi) {
          args.w = u + xi * u_step;
          for (int64_t j0 = 0; j0 < nt; j0 += ur) {
            // A last group of fewer than UR tiles overlaps the one before, recomputing some of
            // its tiles (the same sums), unless adding to M, where it would add them twice:
            // then it is a narrower tile.
            const bool rest = j0 + ur > nt && args.accumulate;
            const int64_t j = rest ? j0 : std::min(j0, nt - ur);
            args.x = V + xi * v_xi + (cb0 * nt + j) * W;
            args.y = M + xi * m_xi + (kg - kg0) * nb * nt * W + j * W;
            (rest ? tiles[nt - j0][0] : tile_fn)(args);
          }
        }
      };
      if (U) {
        for (int64_t kg = kg0; kg < kg1; ++kg)
          products(U + (g * nkb + kg * nb) * w_block, u_xi, kg, 0);
      } else {  // NB output blocks x a chunk of input blocks transformed at a time
        T* chunk = ws.chunk();
        const int64_t chunk_blocks = P.chunk_blocks(), c_xi = P.chunk_xi();
        const int64_t Cg = q.C_per_group();
        for (int64_t kg = kg0; kg < kg1; ++kg)
          for (int64_t cb0 = 0; cb0 < ncb; cb0 += chunk_blocks) {
            const int64_t cn = std::min(chunk_blocks, ncb - cb0);
            for (int64_t b = 0; b < nb; ++b)
              transform_block(P, q, ks, raw, g, kg * nb + b, cb0 * W, (cb0 + cn) * W,
                              chunk + b * cn * W * W, c_xi, false, nullptr);
            args.ncb = cn;
            args.w_block = cn * W * W;
            args.last_cin = cb0 + cn == ncb ? static_cast<int>(Cg - (ncb - 1) * W) : 0;
            args.accumulate = cb0 > 0;
            products(chunk, c_xi, kg, cb0);
          }
      }

      // 3. y = AT M A + bias, clamped; each tile row's lanes back to NCHW rows.
      for_each_run([&](int64_t j, int64_t len, int64_t n, int64_t d, int64_t th, int64_t tw) {
        const int64_t od = win.lo[0] + d0 + d, oh0 = win.lo[1] + (th0 + th) * s.mh;
        const int64_t ow0 = win.lo[2] + tw * s.mw;
        const int64_t count = std::min(len * s.mw, win.hi[2] - ow0);
        for (int64_t kb = kb0; kb < kb1; ++kb) {
          const kernels::TileStore<T> st =
              output_store(bias ? ws.bias + (g * nkb + kb) * W : static_cast<const T*>(nullptr), act);
          output_fn(M + ((kb - kb0) * nt + j) * W, m_xi, len, st, strip, len * s.mw * W);
          const int kn = static_cast<int>(std::min<int64_t>(W, P.Kg - kb * W));
          constexpr int kMaxLanes = 64;
          T* rows[kMaxLanes];
          for (int64_t i = 0; i < s.mh && oh0 + i < win.hi[1]; ++i) {
            for (int ko = 0; ko < kn; ++ko)
              rows[ko] = dest.y + ((n0 + n) * q.K + g * P.Kg + kb * W + ko) * plane +
                         ((od - dest.base[0]) * E[1] + oh0 + i - dest.base[1]) * E[2] + ow0 -
                         dest.base[2];
            uk.deinterleave(strip + i * len * s.mw * W, W, count, rows, kn);
          }
        }
      });
    }
  }
}

// ---- forward: x N x C x in (unpadded, zero padding of p), packed U -> y N x K x out.

// The forward's weights, K x Cg x taps.
template <typename T>
WeightView<T> forward_weights(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), nt = p.kernel_spatial();
  return {static_cast<const T*>(a.w), Kg * Cg * nt, Cg * nt, nt, false};
}

template <typename T>
void pack(const ConvArgs& a, void* packed, int m) {
  const ConvProblem& p = a.problem;
  const Plan P = forward_plan<T>(p, m, a.kernels, 1);
  transform_weights(P, p, a.kernels.get<T>(), forward_weights<T>(a), static_cast<T*>(packed),
                    a.threads, false);
}

template <typename T>
void forward(const ConvArgs& a, int m) {
  const ConvProblem& p = a.problem;
  const Plan P = forward_plan<T>(p, m, a.kernels, a.threads);
  const Workspace<T> ws(P, a.workspace, a.threads);
  const Source<T> src{static_cast<const T*>(a.x), p.in, p.pad_lo};
  // Without packed weights (a stateless call, where transforms_in_tasks holds) the tasks
  // transform them.
  convolve(p, P, a.kernels.get<T>(), src, static_cast<const T*>(a.packed_w),
           forward_weights<T>(a), static_cast<const T*>(a.b), a.activation,
           Destination<T>{static_cast<T*>(a.out), {0, 0, 0}, p.out}, ws, Window{{0, 0, 0}, p.out},
           a.threads, a.non_finite_input);
}

// ---- backward-data: w, dy -> dx (the padded input's gradient, zeroed; or just the kept box).
template <typename T>
Plan backward_data_plan(const ConvProblem& p, const Window& win, int m,
                        const kernels::KernelTable& kt, int threads) {
  const ConvProblem q = data_gradient_problem(p);
  return make_plan<T>(q, shape_of(q, m), win, kt.get<T>().blocked, threads);
}

template <typename T>
void backward_data(const ConvArgs& a, int m) {
  const ConvProblem& p = a.problem;
  const ConvProblem q = data_gradient_problem(p);
  const Window win{a.keep_lo, a.keep_hi};
  const Plan P = backward_data_plan<T>(p, win, m, a.kernels, a.threads);
  const Workspace<T> ws(P, a.workspace, a.threads);
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), nt = p.kernel_spatial();
  // q's weight (output channel c, input channel k, tap) = p's (k, c, tap flipped in space).
  const auto* w = static_cast<const T*>(a.w);
  const WeightView<T> wv{w, Kg * Cg * nt, nt, Cg * nt, true};
  // U whole, or (transforms_in_tasks) a chunk at a time in the tasks, after a look for
  // non-finite weights: nothing may be written before the fallback is decided.
  const bool in_tasks = transforms_in_tasks<T>(P, q, a.threads);
  const bool finite = in_tasks ? all_finite(w, p.K * Cg * nt, a.threads)
                               : transform_weights(P, q, a.kernels.get<T>(), wv, ws.weights,
                                                   a.threads, true);
  if (!finite) {
    direct_algorithm().run[static_cast<int>(ConvDirection::backward_data)](a);
    return;
  }
  std::array<int64_t, 3> lo;
  for (int d = 0; d < 3; ++d) lo[d] = p.kernel[d] - 1;
  const Source<T> src{static_cast<const T*>(a.dy), p.out, lo};
  Destination<T> dest{static_cast<T*>(a.out), {0, 0, 0}, q.out};
  if (a.out_is_kept_box) {
    dest.base = a.keep_lo;
    for (int d = 0; d < 3; ++d) dest.ext[d] = a.keep_hi[d] - a.keep_lo[d];
  }
  convolve(q, P, a.kernels.get<T>(), src, in_tasks ? nullptr : ws.weights, wv,
           static_cast<const T*>(nullptr), Activation::none, dest, ws, win, a.threads,
           a.non_finite_input);
}

// ---- the registry's view.
std::string why_not_stride_one(const ConvProblem& p) {
  const auto& k = p.kernel;
  const bool h = k[1] == wk::kTaps, w = k[2] == wk::kTaps;
  if (k[0] != 1 || (!h && k[1] != 1) || (!w && k[2] != 1) || (!h && !w)) {
    std::vector<int64_t> kernel(k.begin() + (3 - p.rank), k.end());
    return "kernel " + util::shape_str(kernel) +
           ": Winograd F(m, 3) needs a 3x3 kernel (or 3 taps along one axis and 1 along the "
           "others)";
  }
  for (int d = 0; d < 3; ++d) {
    if (p.stride[d] != 1) return "stride must be 1";
    if (p.kernel[d] > 1 && p.dilation[d] != 1) return "dilation must be 1";
  }
  // (No channels at all is an empty problem, which the entry points answer without an algorithm.)
  const int64_t fewest = std::min(p.C_per_group(), p.K_per_group());
  if (fewest > 0 && fewest < kMinChannels) {
    return "C/groups = " + std::to_string(p.C_per_group()) + " and K/groups = " +
           std::to_string(p.K_per_group()) + ": Winograd needs at least " +
           std::to_string(kMinChannels) + " of each to be worthwhile";
  }
  return {};
}

// A strided forward runs as the stride-1 problem of its polyphase components (polyphase.hpp):
// stride s along an axis of 2s + 1 to 3s taps gives them 3 taps (s or fewer: 1).
std::string why_not(const ConvProblem& p, DType, ConvDirection direction) {
  if (!is_strided(p)) return why_not_stride_one(p);
  if (direction != ConvDirection::forward) return "stride must be 1 (in the data gradient)";
  for (int d = 0; d < 3; ++d)
    if (p.stride[d] > 1 && p.kernel[d] > 1 && p.dilation[d] != 1)
      return "dilation must be 1 along a strided axis";
  const ConvProblem q = polyphase_problem(p);
  const std::string reason = why_not_stride_one(q);
  if (reason.empty()) return {};
  const auto user = [&](const std::array<int64_t, 3>& a) {
    return util::shape_str(std::vector<int64_t>(a.begin() + (3 - p.rank), a.end()));
  };
  return "kernel " + user(p.kernel) + " with stride " + user(p.stride) +
         ", as its polyphase components (kernel " + user(q.kernel) + ", C/groups = " +
         std::to_string(q.C_per_group()) + "): " + reason;
}

bool pads_forward_input(const ConvProblem&, DType, const kernels::KernelTable&) { return true; }

// The data gradient writes the kept box whole (or falls back to the direct algorithm, which
// does too).
bool writes_kept_box(const ConvArgs&) { return true; }

std::size_t workspace_bytes_m(const ConvProblem& p, DType dtype, ConvDirection direction,
                              int threads, const kernels::KernelTable& kt, int m) {
  return util::with_dtype(dtype, [&](auto t) -> std::size_t {
    using T = decltype(t);
    if (direction == ConvDirection::forward) {
      const Plan P = forward_plan<T>(p, m, kt, threads);
      return Workspace<T>::bytes(P, threads, transforms_in_tasks<T>(P, p, threads)
                                                 ? Workspace<T>::Weights::chunks
                                                 : Workspace<T>::Weights::none);
    }
    // The kept box is at most the whole padded input: the largest window. Its weights are
    // transformed whole or in the tasks, whichever the kept box's tiles make it.
    const Window win{{0, 0, 0}, p.in};
    const Plan P = backward_data_plan<T>(p, win, m, kt, threads);
    const std::size_t own = std::max(Workspace<T>::bytes(P, threads, Workspace<T>::Weights::whole),
                                     Workspace<T>::bytes(P, threads, Workspace<T>::Weights::chunks));
    const std::size_t direct = direct_algorithm().workspace_bytes(p, dtype, direction, threads, kt);
    return std::max(own, direct);
  });
}

std::size_t packed_weights_bytes_m(const ConvProblem& p, DType dtype,
                                   const kernels::KernelTable& kt, int m) {
  return util::with_dtype(dtype, [&](auto t) -> std::size_t {
    using T = decltype(t);
    const Plan P = forward_plan<T>(p, m, kt, 1);
    return static_cast<std::size_t>(P.s.xis() * P.u_xi()) * sizeof(T);
  });
}

// ---- strided forward: the stride-1 problem q of the polyphase components (polyphase.hpp), a
// chunk of images at a time. Workspace: the chunk's xq, wq (the weights unless packed), then
// q's own. The tile m is chosen on the whole q (tile_for maps p to it).

// Images per chunk: their phases within a quarter of the call's scratch limit (one at least).
int64_t phase_images(const ConvProblem& p, DType dtype) {
  const ConvProblem q = polyphase_problem(p);
  const int64_t elem = static_cast<int64_t>(util::dtype_size(dtype));
  const int64_t image = std::max<int64_t>(1, q.C * q.in_spatial() * elem);
  return std::clamp<int64_t>(scratch_limit(p, dtype) / 4 / image, 1, std::max<int64_t>(p.N, 1));
}

// The stride-1 problem of a chunk of p's images.
ConvProblem phase_chunk(const ConvProblem& p, int64_t images) {
  ConvProblem c = p;
  c.N = std::min(p.N, images);
  return polyphase_problem(c);
}

template <typename T>
struct PhaseWorkspace {
  T* x;
  T* w;
  void* rest;
  PhaseWorkspace(const ConvProblem& q, void* base) {
    x = static_cast<T*>(base);
    w = x + round_up(q.N * q.C * q.in_spatial(), 16);
    rest = w + round_up(q.K * q.C_per_group() * q.kernel_spatial(), 16);
  }
  static std::size_t bytes(const ConvProblem& q) {
    const PhaseWorkspace ws(q, nullptr);
    return static_cast<std::size_t>(static_cast<const char*>(ws.rest) -
                                    reinterpret_cast<const char*>(ws.x));
  }
};

// The ConvArgs of q's chunk: p's, with q's operands.
ConvArgs phase_args(const ConvArgs& a, const ConvProblem& q, const void* x, const void* w, void* y,
                    void* workspace) {
  ConvArgs c{q, a.dtype, x, w, a.b, nullptr, y, workspace, a.threads, a.kernels};
  c.packed_w = a.packed_w;
  c.activation = a.activation;
  c.stream_output = a.stream_output;
  return c;
}

template <typename T>
void forward_strided(const ConvArgs& a, int m) {
  const ConvProblem& p = a.problem;
  // The definition's NaN / Inf pattern asked for: any in x sends the call to an exact algorithm
  // (elements no window reads included), before anything is written.
  if (a.non_finite_input &&
      !all_finite(static_cast<const T*>(a.x), p.N * p.C * p.in_spatial(), a.threads)) {
    *a.non_finite_input = true;
    return;
  }
  const int64_t images = phase_images(p, a.dtype);
  const PhaseWorkspace<T> ws(phase_chunk(p, images), a.workspace);
  if (!a.packed_w) polyphase_weights(p, static_cast<const T*>(a.w), ws.w, a.threads);
  const int64_t x_image = p.C * p.in_spatial(), y_image = p.K * p.out_spatial();
  for (int64_t n0 = 0; n0 < p.N; n0 += images) {
    ConvProblem chunk = p;
    chunk.N = std::min(images, p.N - n0);
    const ConvProblem q = polyphase_problem(chunk);
    polyphase_input(chunk, a.kernels.get<T>(), static_cast<const T*>(a.x) + n0 * x_image, ws.x,
                    a.threads);
    forward<T>(phase_args(a, q, ws.x, ws.w, static_cast<T*>(a.out) + n0 * y_image, ws.rest), m);
  }
}

template <typename T>
void pack_strided(const ConvArgs& a, void* packed, int m) {
  const ConvProblem q = polyphase_problem(a.problem);
  util::AlignedBuffer wq(
      static_cast<std::size_t>(q.K * q.C_per_group() * q.kernel_spatial()) * sizeof(T),
      "the polyphase weights");
  polyphase_weights(a.problem, static_cast<const T*>(a.w), wq.as<T>(), a.threads);
  pack<T>(phase_args(a, q, nullptr, wq.as<T>(), nullptr, nullptr), packed, m);
}

std::size_t strided_workspace_bytes(const ConvProblem& p, DType dtype, int threads,
                                    const kernels::KernelTable& kt, int m) {
  const ConvProblem q = phase_chunk(p, phase_images(p, dtype));
  const std::size_t own = util::with_dtype(dtype, [&](auto t) {
    return PhaseWorkspace<decltype(t)>::bytes(q);
  });
  return own + workspace_bytes_m(q, dtype, ConvDirection::forward, threads, kt, m);
}

// One registry entry per tile size M (0: chosen per problem by tile_for).
template <int M>
int tile(const ConvProblem& p, const kernels::KernelTable& kernels) {
  return M ? M : tile_for(p, kernels);
}

template <int M>
void run_forward(const ConvArgs& a) {
  util::with_dtype(a.dtype, [&](auto t) {
    using T = decltype(t);
    const int m = tile<M>(a.problem, a.kernels);
    if (is_strided(a.problem))
      forward_strided<T>(a, m);
    else
      forward<T>(a, m);
  });
}

template <int M>
void run_backward_data(const ConvArgs& a) {
  util::with_dtype(a.dtype, [&](auto t) {
    backward_data<decltype(t)>(a, tile<M>(a.problem, a.kernels));
  });
}

template <int M>
void pack_weights(const ConvArgs& a, void* packed) {
  util::with_dtype(a.dtype, [&](auto t) {
    using T = decltype(t);
    const int m = tile<M>(a.problem, a.kernels);
    if (is_strided(a.problem))
      pack_strided<T>(a, packed, m);
    else
      pack<T>(a, packed, m);
  });
}

template <int M>
std::size_t workspace_bytes(const ConvProblem& p, DType dtype, ConvDirection direction,
                            int threads, const kernels::KernelTable& kt) {
  const int m = tile<M>(p, kt);
  return is_strided(p) ? strided_workspace_bytes(p, dtype, threads, kt, m)
                       : workspace_bytes_m(p, dtype, direction, threads, kt, m);
}

template <int M>
std::size_t packed_weights_bytes(const ConvProblem& p, DType dtype,
                                 const kernels::KernelTable& kt) {
  return packed_weights_bytes_m(polyphase_problem(p), dtype, kt, tile<M>(p, kt));
}

template <int M>
bool packs_in_forward(const ConvProblem& p, DType dtype, const kernels::KernelTable& kt,
                      int threads) {
  const int m = tile<M>(p, kt);
  const ConvProblem q = is_strided(p) ? phase_chunk(p, phase_images(p, dtype)) : p;
  return util::with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    return transforms_in_tasks<T>(forward_plan<T>(q, m, kt, threads), q, threads);
  });
}

template <int M>
ConvAlgorithm make_algorithm(const char* name, const char* description) {
  return ConvAlgorithm{name,
                       description,
                       {&run_forward<M>, &run_backward_data<M>, nullptr},
                       &why_not,
                       &workspace_bytes<M>,
                       &packed_weights_bytes<M>,
                       &pack_weights<M>,
                       &pads_forward_input,
                       &writes_kept_box,
                       true,
                       &packs_in_forward<M>};
}

}  // namespace

}  // namespace fastconv::conv::winograd

namespace fastconv::conv {

const ConvAlgorithm& winograd_algorithm(int m) {
  static const ConvAlgorithm f2 = winograd::make_algorithm<2>(
      "winograd_f2x3", "Winograd F(2x2, 3x3): 2.25x fewer multiplications, 3x3 stride-1 kernels "
                       "(strided: their 3x3 polyphase components)");
  static const ConvAlgorithm f4 = winograd::make_algorithm<4>(
      "winograd_f4x3", "Winograd F(4x4, 3x3): 4x fewer multiplications, 3x3 stride-1 kernels "
                       "(strided: their 3x3 polyphase components)");
  static const ConvAlgorithm f6 = winograd::make_algorithm<6>(
      "winograd_f6x3", "Winograd F(6x6, 3x3), points 0, +-1, +-2, +-1/2: 5.06x fewer multiplications");
  static const ConvAlgorithm any = winograd::make_algorithm<0>(
      "winograd", "Winograd F(m, 3) with the tile chosen per problem (winograd_f2x3 / f4x3 / f6x3)");
  switch (m) {
    case 2: return f2;
    case 4: return f4;
    case 6: return f6;
    default: return any;
  }
}

}  // namespace fastconv::conv
