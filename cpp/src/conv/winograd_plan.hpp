// conv/winograd_plan.hpp — how the Winograd algorithm (winograd.cpp) cuts a call: tile shapes,
// the chunks of input converted to the blocked layout at once, the tiles per task, and the
// workspace they take. Shared by the driver and the `auto` cost model (winograd_model.cpp).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include "blocked_layout.hpp"
#include "blocked_tiling.hpp"
#include "execute.hpp"
#include "fastconv/conv.hpp"
#include "kernels/generic/winograd_matrices.hpp"
#include "pad.hpp"
#include "util/checked.hpp"
#include "util/dtype.hpp"
#include "util/parallel.hpp"

namespace fastconv::conv::winograd {

using util::ceil_div;
using util::round_up;
namespace wk = kernels::winograd;

// Tiles of one variant on one problem: mh x mw outputs from ah x aw inputs (1 x 1 along an axis
// with one tap).
struct Shape {
  int variant = 0;  // index of F(m, 3) in the kernel tables
  int index = 0;    // kernels' shape: 0 2-D, 1 along W, 2 along H
  int mh = 1, mw = 1, ah = 1, aw = 1;
  int xis() const { return ah * aw; }
};

inline Shape shape_of(const ConvProblem& p, int m) {
  Shape s;
  s.variant = wk::variant_index(m);
  const bool h = p.kernel[1] == wk::kTaps, w = p.kernel[2] == wk::kTaps;
  s.index = h && w ? 0 : w ? 1 : 2;
  if (h) s.mh = m, s.ah = m + wk::kTaps - 1;
  if (w) s.mw = m, s.aw = m + wk::kTaps - 1;
  return s;
}

// The transforms read and write A x A planes at once, one vector in each: with a power-of-two
// distance between planes every access would fall in the same cache sets (a 20x slowdown of the
// weight transform at 512 channels). Planes start an odd number of 64-element lines apart.
inline int64_t skewed(int64_t n) {
  constexpr int64_t kLine = 64;
  const int64_t lines = util::ceil_div(n, kLine);
  return (lines | 1) * kLine;
}

// Output blocks a task that transforms the weights itself takes at once (its tile kernels' NB
// at most: the sums do not depend on NB, so the bits equal a plan's whatever NB that chose).
// Two, not the kernels' four: the threads' chunks half as large, within the workspace limit
// where four were not (VGG-16's conv4_2 on 2 threads, 512 channels on 28 x 28, took U whole,
// 38 MiB, through memory: 7.9-8.4 against 5.6-5.7 ms), and no slower on the layers that
// took chunks of four (ResNet-50's and VGG-16's 3x3 layers, batch 1 and 8, 1 and 2 threads).
constexpr int kChunkNb = 2;

// How one call is cut. The tile grid covers the window of outputs; the input is converted to
// the blocked layout a chunk at a time: several whole images, or, when one image does not fit
// the workspace limit, a band of tile rows of one plane. A chunk's blocked layout starts at
// the input of its first tile (with a band's halo rows) and is sized for the whole output
// whatever the window, so a window never needs more workspace than the whole output.
struct Plan {
  Shape s;
  blocked::Tiling t;
  int64_t groups = 0, Kg = 0;
  int64_t kblocks = 0;          // output blocks holding channels (<= t.nkb)
  int64_t D = 0, TH = 0, TW = 0;  // tile grid of one image over the window
  int64_t images = 1;           // images per chunk
  int64_t planes = 0, rows = 0;   // planes and tile rows per chunk: D and TH, or a band (1, rows)
  BlockedLayout L{};            // one image's part of a chunk
  int64_t tb = 1;               // tiles per task
  int64_t max_tb = 1;           // what the workspace holds: tb of this or any smaller window
  int64_t ksplit = 1;           // tasks sharing a run of tiles, each with part of the outputs
  int64_t task_kb = 0;          // output blocks a task's M holds: its part's at most

  int64_t chunk_tiles() const { return images * planes * rows * TW; }  // at most
  // Elements between the xi planes of V, M (a task of nt tiles) and U: see skewed().
  int64_t v_xi(int64_t nt) const { return skewed(t.ncb * nt * t.w); }
  int64_t m_xi(int64_t nt) const { return skewed(task_kb * nt * t.w); }
  int64_t v_size() const { return s.xis() * v_xi(max_tb); }
  int64_t m_size() const { return s.xis() * m_xi(max_tb); }
  int64_t strip_size(int64_t tw) const { return s.mh * std::min(tw, max_tb) * s.mw * t.w; }
  // One thread's V, M and strip of outputs, for tile rows of tw tiles.
  int64_t thread_elements(int64_t tw) const { return v_size() + m_size() + strip_size(tw); }
  int64_t u_xi() const { return skewed(groups * t.nkb * t.ncb * t.w * t.w); }
  // A call without packed weights transforms them in its tasks (winograd.cpp, convolve), NB
  // output blocks x chunk_blocks() input blocks at a time: one reduction block of the tile
  // kernels, so the chunks' partial sums round as U's whole products do.
  int64_t chunk_blocks() const {
    return std::min(t.ncb, std::max<int64_t>(1, kernels::kBlockedReductionBlock / t.w));
  }
  int64_t chunk_xi() const {
    const int64_t nb = std::min<int64_t>(kChunkNb, t.nkb);
    return skewed(nb * chunk_blocks() * t.w * t.w);
  }
  int64_t chunk_size() const { return s.xis() * chunk_xi(); }
};

// Output blocks U and M hold: rounded up to a multiple of every NB the tiling of a task may
// choose (NB <= blocks), so each task tiles its own number of tiles.
inline int64_t packed_blocks(int64_t blocks) {
  return round_up(blocks, blocks >= 4 ? 4 : blocks >= 2 ? 2 : 1);
}

// The transform-domain products as a 1x1 convolution of Cg -> Kg channels, for the tiling.
inline ConvProblem product_problem(const ConvProblem& q) {
  ConvProblem r;
  r.N = 1;
  r.C = q.C_per_group();
  r.K = q.K_per_group();
  return r;
}

// Tiles per task: U[xi] is read once per task, so more tiles amortise it, while a task's V and
// M should stay in the caches from one step to the next. At most kMaxTiles, and V + M within
// a quarter of U (2 to 8 MiB: large weights are worth an L3-sized task) and, over the
// threads, the workspace limit less one image's blocked input (at most half of it). The
// blocked input gets what the tasks leave.
constexpr int64_t kMaxTiles = 64;
constexpr int64_t kMinTaskBytes = int64_t(2) << 20, kMaxTaskBytes = int64_t(8) << 20;
constexpr int64_t kSharedWeightBytes = int64_t(1) << 20;

// The output blocks of the part of `ksplit` that takes most, whatever NB its tasks tile with
// (winograd.cpp splits the groups of NB blocks of the kblocks holding channels).
inline int64_t part_blocks(int64_t kblocks, int64_t ksplit) {
  int64_t most = 0;
  for (int64_t nb = 1; nb <= kernels::BlockedConvUkernel<float>::kMaxNb; nb *= 2)
    most = std::max(most, ceil_div(ceil_div(kblocks, nb), ksplit) * nb);
  return most;
}

template <typename T>
Plan make_plan(const ConvProblem& q, const Shape& s, const Window& win,
               const kernels::BlockedConvUkernel<T>& uk, int threads) {
  Plan P{s, blocked::Tiling(product_problem(q), uk, kMaxTiles)};
  P.groups = q.groups;
  P.Kg = q.K_per_group();
  P.kblocks = ceil_div(P.Kg, P.t.w);
  P.t.nkb = packed_blocks(P.kblocks);
  P.D = win.hi[0] - win.lo[0];
  P.TH = ceil_div(win.hi[1] - win.lo[1], s.mh);
  P.TW = ceil_div(win.hi[2] - win.lo[2], s.mw);
  const int64_t elem = sizeof(T);
  const int64_t limit = scratch_limit(q, util::dtype_of<T>());
  const int64_t u_bytes = s.xis() * P.u_xi() * elem;

  // The whole output's grid sizes the layout: rows of mh outputs need mh input rows each plus
  // ah - mh of halo; columns likewise.
  const int64_t th_all = ceil_div(q.out[1], s.mh), tw_all = ceil_div(q.out[2], s.mw);
  const int64_t width = tw_all * s.mw + s.aw - s.mw;
  const int64_t row_bytes = q.groups * P.t.ncb * width * P.t.w * elem;  // one input row
  const int64_t image_bytes = q.out[0] * (th_all * s.mh + s.ah - s.mh) * row_bytes;

  // Threads share out the runs of tiles, or, when U outgrows a core's cache or the runs are
  // fewer than the threads, the output channels of each run: each task then transforms the
  // run's input again but reads only its part of U, once, and its M holds only its part.
  const bool split_outputs = threads > 1 && u_bytes > kSharedWeightBytes;
  const int64_t kgroups = ceil_div(P.kblocks, P.t.nb);
  const int64_t task_bytes =
      std::min(std::clamp(u_bytes / 4, kMinTaskBytes, kMaxTaskBytes),
               (limit - std::min(image_bytes, limit / 2)) / int64_t(threads));
  // A tile's V and M counted with M for every block, though a task splitting the outputs holds
  // only its part's (task_kb): budgeting the part's M gave VGG-16's 256 x 56 x 56 tasks more
  // tiles, measured slower (5.2 against 4.9 ms, 2 threads).
  const int64_t per_tile = s.xis() * (P.t.ncb + P.t.nkb) * P.t.w * elem;
  const int64_t cap = std::max<int64_t>(1, std::min(kMaxTiles, task_bytes / per_tile));
  // What the threads' V, M and strips take at most (Workspace), and the padded bias.
  P.task_kb =
      split_outputs ? part_blocks(P.kblocks, std::min<int64_t>(threads, kgroups)) : P.t.nkb;
  P.max_tb = std::min(cap, std::max<int64_t>(q.N, 1) * q.out[0] * th_all * tw_all);
  const int64_t per_thread = util::scratch_stride(P.thread_elements(tw_all), elem);
  const int64_t avail = limit - (threads * per_thread + q.groups * P.t.nkb * P.t.w + 64) * elem;
  P.planes = P.D;
  P.rows = P.TH;
  P.images = std::clamp<int64_t>(avail / image_bytes, 1, std::max<int64_t>(q.N, 1));
  std::array<int64_t, 3> ext{q.out[0], th_all * s.mh + s.ah - s.mh, width};
  if (avail < image_bytes) {  // a band of tile rows of one plane
    P.planes = 1;
    P.rows = std::clamp<int64_t>((avail / row_bytes - (s.ah - s.mh)) / s.mh, 1, P.TH);
    ext = {1, P.rows * s.mh + s.ah - s.mh, width};
  }
  P.L = BlockedLayout{q.groups, q.C_per_group(), P.t.ncb, ext, P.t.w};

  const int64_t tiles = P.chunk_tiles();
  const int64_t runs = ceil_div(tiles, std::min(cap, tiles));
  P.tb = ceil_div(tiles, runs);  // balanced
  P.max_tb = std::min(cap, tiles);
  P.ksplit = 1;
  if (threads > 1) {
    if (split_outputs || runs * q.groups < threads) {
      P.ksplit = std::min<int64_t>(threads, kgroups);
    } else {
      P.tb = std::max<int64_t>(1, std::min(P.tb, ceil_div(tiles * q.groups, int64_t(threads))));
    }
  }
  // (Fewer runs than threads without a large U: M still sized for every block, as the
  // workspace above counted it.)
  return P;
}

template <typename T>
Plan forward_plan(const ConvProblem& p, int m, const kernels::KernelTable& kt, int threads) {
  return make_plan<T>(p, shape_of(p, m), Window{{0, 0, 0}, p.out}, kt.get<T>().blocked, threads);
}

}  // namespace fastconv::conv::winograd
