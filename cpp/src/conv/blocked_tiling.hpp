// conv/blocked_tiling.hpp — how a problem is cut into register tiles for the channel-blocked
// kernels (kernels/generic/blocked_ukernel.hpp): NB output blocks x UR outputs along a row,
// chosen by a cycle model. Shared by the direct algorithm's dense path (direct_blocked.cpp) and
// by Winograd's transform-domain products (winograd.cpp), where a "row" is a run of tiles.
#pragma once

#include <algorithm>
#include <cstdint>

#include "fastconv/conv.hpp"
#include "kernels/kernel_table.hpp"
#include "util/checked.hpp"

namespace fastconv::conv::blocked {

// How a problem is cut into tiles for the blocked kernels `uk`.
struct Tiling {
  int w = 0;        // lanes
  int cw = 0;       // input channels per block: w, or fewer on the narrow layout
  int max_acc = 0;  // accumulators of the kernels: nb x ur <= max_acc
  int nb = 1;       // output blocks per tile
  int ur = 1;       // outputs per tile along W
  int64_t ncb = 0;  // input channel blocks per group
  int64_t nkb = 0;  // output channel blocks per group, rounded up to a multiple of nb
  int64_t ntaps = 0;

  // OW: the outputs computed along W (p.out[2] unless a window of them); input_lanes: the
  // channels per input block, uk.w (the standard layout) or fewer (the narrow one); max_nb:
  // the most output blocks per tile to consider.
  template <typename T>
  Tiling(const ConvProblem& p, const kernels::BlockedConvUkernel<T>& uk)
      : Tiling(p, uk, p.out[2], uk.w) {}
  template <typename T>
  Tiling(const ConvProblem& p, const kernels::BlockedConvUkernel<T>& uk, int64_t OW)
      : Tiling(p, uk, OW, uk.w) {}
  template <typename T>
  Tiling(const ConvProblem& p, const kernels::BlockedConvUkernel<T>& uk, int64_t OW,
         int input_lanes, int max_nb = kernels::BlockedConvUkernel<T>::kMaxNb)
      : w(uk.w), cw(input_lanes), max_acc(uk.max_acc) {
    ncb = util::ceil_div(p.C_per_group(), cw);
    const int64_t blocks = util::ceil_div(p.K_per_group(), w);
    // The (NB, UR) with the fewest cycles per useful output: a row of OW outputs takes
    // ceil(OW / UR) tiles (the last one overlapping), each NB x UR FMAs per input channel, or at
    // least kMinChains cycles when too few accumulators hide the FMA latency. Ties go to the
    // larger tile (fewer loads per FMA), then NB = 2.
    constexpr int64_t kMinChains = 8;
    double best = 0;
    int best_acc = 0;
    const int order_std[3] = {2, 4, 1}, order_narrow[3] = {4, 2, 1};
    for (int n : (cw < w ? order_narrow : order_std)) {
      if ((n > 1 && n > blocks) || n > max_nb) continue;
      for (int u = 1; u <= kernels::BlockedConvUkernel<T>::kMaxUr && u <= OW; ++u) {
        if (n * u > uk.max_acc) break;
        // The narrow kernel's loop is short (one term), so a spilled accumulator would cost a
        // load and a store per FMA group: keep the NB weights and the broadcast in registers.
        if (cw < w && n * (u + 1) + 1 > uk.max_acc + 4) break;
        const double cycles =
            static_cast<double>(util::ceil_div(OW, u)) * static_cast<double>(std::max<int64_t>(n * u, kMinChains));
        const double rate = static_cast<double>(n * OW) / cycles;
        if (rate > best * 1.0001 || (rate > best * 0.9999 && n * u > best_acc)) {
          best = rate, best_acc = n * u, nb = n, ur = u;
        }
      }
    }
    nkb = util::round_up(blocks, nb);
    ntaps = p.kernel_spatial();
  }

  bool narrow() const { return cw < w; }
  // Offsets the tile kernels read per input block: one per tap, or on the narrow layout one
  // per (tap, channel).
  int64_t terms() const { return narrow() ? ntaps * cw : ntaps; }
  int64_t tap_block() const { return int64_t(cw) * w; }
  int64_t weight_block() const { return ncb * ntaps * tap_block(); }  // one output block's
};

}  // namespace fastconv::conv::blocked
