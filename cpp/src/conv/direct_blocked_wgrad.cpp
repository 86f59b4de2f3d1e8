// conv/direct_blocked_wgrad.cpp — weight gradient of dense layers on channel-blocked layouts.
//
//   dW[k][c][tap] = sum_n sum_o dy[n][k][o] * x[n][c][o*s + tap*d]        (x padded)
// Per image, x -> xb [g][cb][Dp][Hp][Wp][W] and dy -> dyb [g][kb][OD][OH][OW][W]
// (blocked_layout.hpp). A task owns UR = W/2 output channels of one block times a group of
// NB <= 3 input blocks, for every tap: its accumulators (acc) live in memory across images, and
// the ISA's tile kernel adds to them runs of at most ~256 positions summed in registers (as
// GEMM's KC blocks: the rounding error grows with the run, not with N x positions): whole rows,
// or parts of a longer row. Each run goes through every tap while its input rows are in cache
// (VGG-16's conv1_2, 64 x 224 x 224: 55 -> 29 ms on one thread of the Intel Xeon, against
// streaming the image once per tap). Each weight has one writer and a fixed summation order,
// whatever the thread count.
#include <algorithm>

#include "blocked_layout.hpp"
#include "direct_blocked.hpp"
#include "util/checked.hpp"
#include "util/dtype.hpp"
#include "util/parallel.hpp"

namespace fastconv::conv::blocked {

namespace {

using util::ceil_div;

constexpr int64_t kPositionsPerRun = 256;

// How the weight gradient of p splits into tasks for lanes w, UR output channels per task.
struct WgradTiling {
  int64_t w, ur, halves, nkb, ncb, cb_groups, cb_per_group, ntaps, tasks;

  WgradTiling(const ConvProblem& p, int lanes, int ur_) : w(lanes), ur(ur_) {
    halves = w / ur;
    nkb = ceil_div(p.K_per_group(), w);
    ncb = ceil_div(p.C_per_group(), w);
    cb_groups = ceil_div(ncb, 3);
    cb_per_group = ceil_div(ncb, cb_groups);  // blocks spread evenly over the groups
    ntaps = p.kernel_spatial();
    tasks = p.groups * nkb * halves * cb_groups;
  }
  int64_t acc_size() const { return ntaps * ur * 3 * w; }  // one task's
};

template <typename T>
struct WgradWorkspace {
  T* x;
  T* dy;
  T* acc;
  WgradWorkspace(const BlockedLayout& xl, const BlockedLayout& dl, void* base)
      : x(static_cast<T*>(base)),
        dy(x + util::round_up(xl.size(), 16)),
        acc(dy + util::round_up(dl.size(), 16)) {}
};

BlockedLayout x_layout(const ConvProblem& p, const WgradTiling& t) {
  return {p.groups, p.C_per_group(), t.ncb, p.in, t.w};
}
BlockedLayout dy_layout(const ConvProblem& p, const WgradTiling& t) {
  return {p.groups, p.K_per_group(), t.nkb, p.out, t.w};
}

template <typename T>
void run(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& uk = a.kernels.get<T>().blocked;
  const WgradTiling t(p, uk.w, uk.wgrad_ur);
  const BlockedLayout xl = x_layout(p, t), dl = dy_layout(p, t);
  const WgradWorkspace<T> ws(xl, dl, a.workspace);
  const int64_t W = t.w, Kg = p.K_per_group(), Cg = p.C_per_group();
  const int64_t Hp = p.in[1], Wp = p.in[2], OH = p.out[1], OW = p.out[2];
  // A run: whole rows of at most kPositionsPerRun positions, or a part of one longer row.
  const int64_t chunk =
      std::max<int64_t>(1, std::min(OH, kPositionsPerRun / std::max<int64_t>(OW, 1)));
  const int64_t ow_run = std::max<int64_t>(1, std::min(OW, kPositionsPerRun));
  const int s = static_cast<int>(p.stride[2]) - 1;
  const auto* x = static_cast<const T*>(a.x);
  const auto* dy = static_cast<const T*>(a.dy);
  auto* dw = static_cast<T*>(a.out);

  for (int64_t n = 0; n < p.N; ++n) {
    to_blocked(xl, Source<T>{x, p.in, {0, 0, 0}}, n, ws.x, a.threads, uk.interleave);
    to_blocked(dl, Source<T>{dy, p.out, {0, 0, 0}}, n, ws.dy, a.threads, uk.interleave);
#pragma omp parallel for schedule(dynamic, 1) num_threads(a.threads) if (a.threads > 1)
    for (int64_t task = 0; task < t.tasks; ++task) {
      const int64_t cg = task % t.cb_groups, half = task / t.cb_groups % t.halves;
      const int64_t kb = task / (t.cb_groups * t.halves) % t.nkb;
      const int64_t g = task / (t.cb_groups * t.halves * t.nkb);
      const int64_t cb0 = cg * t.cb_per_group, nb = std::min(t.cb_per_group, t.ncb - cb0);
      const kernels::BlockedWgradFn<T> fn = uk.wgrad[nb][s];
      kernels::BlockedWgradArgs<T> args;
      args.x_block = xl.block_size();
      args.x_row = p.stride[1] * Wp * W;
      args.dy_row = OW * W;
      // Every tap over a run of rows before the next run: the run's input rows stay in
      // cache for all the taps (tap-major order streamed the whole image once per tap). Each
      // tap's sums still take the runs in the same order.
      for (int64_t od = 0; od < p.out[0]; ++od)
        for (int64_t oh = 0; oh < OH; oh += chunk)
          for (int64_t ow = 0; ow < OW; ow += ow_run) {
            args.rows = std::min(chunk, OH - oh);
            args.ow = std::min(ow_run, OW - ow);
            args.dy = ws.dy + (g * t.nkb + kb) * dl.block_size() + ((od * OH + oh) * OW + ow) * W +
                      half * t.ur;
            args.first = n == 0 && od == 0 && oh == 0 && ow == 0;
            for (int64_t tap = 0; tap < t.ntaps; ++tap) {
              const int64_t kw = tap % p.kernel[2], kh = tap / p.kernel[2] % p.kernel[1];
              const int64_t kd = tap / (p.kernel[1] * p.kernel[2]);
              args.acc = ws.acc + (task * t.ntaps + tap) * t.ur * 3 * W;
              args.x = ws.x + (g * t.ncb + cb0) * xl.block_size() +
                       (((od * p.stride[0] + kd * p.dilation[0]) * Hp + oh * p.stride[1] +
                         kh * p.dilation[1]) * Wp + ow * p.stride[2] + kw * p.dilation[2]) * W;
              fn(args);
            }
          }
    }
  }
  // acc [task][tap][r][b][ci] -> dW [k][c][tap]
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1)
  for (int64_t task = 0; task < t.tasks; ++task) {
    const int64_t cg = task % t.cb_groups, half = task / t.cb_groups % t.halves;
    const int64_t kb = task / (t.cb_groups * t.halves) % t.nkb;
    const int64_t g = task / (t.cb_groups * t.halves * t.nkb);
    const int64_t cb0 = cg * t.cb_per_group, nb = std::min(t.cb_per_group, t.ncb - cb0);
    for (int64_t r = 0; r < t.ur; ++r) {
      const int64_t k = kb * W + half * t.ur + r;
      if (k >= Kg) break;
      for (int64_t b = 0; b < nb; ++b)
        for (int64_t ci = 0; ci < W; ++ci) {
          const int64_t c = (cb0 + b) * W + ci;
          if (c >= Cg) break;
          T* out = dw + ((g * Kg + k) * Cg + c) * t.ntaps;
          const T* src = ws.acc + task * t.ntaps * t.ur * 3 * W + (r * nb + b) * W + ci;
          for (int64_t tap = 0; tap < t.ntaps; ++tap) out[tap] = src[tap * t.ur * 3 * W];
        }
    }
  }
}

}  // namespace

std::size_t backward_weights_workspace_bytes(const ConvProblem& p, DType dtype, int,
                                             const kernels::KernelTable& kernels) {
  const int ur = dtype == DType::f32 ? kernels.f32.blocked.wgrad_ur : kernels.f64.blocked.wgrad_ur;
  const WgradTiling t(p, lanes(dtype, kernels), ur);
  const int64_t elems = util::round_up(x_layout(p, t).size(), 16) +
                        util::round_up(dy_layout(p, t).size(), 16) + t.tasks * t.acc_size();
  return static_cast<std::size_t>(elems) * util::dtype_size(dtype);
}

void backward_weights(const ConvArgs& a) { by_dtype<run<float>, run<double>>(a); }

}  // namespace fastconv::conv::blocked
