// conv/winograd_model.cpp — which Winograd tile to use, and whether Winograd at all: the cost
// model behind the `winograd` entry's tile (tile_for) and the `auto` rule (auto_tile).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "algorithm.hpp"
#include "polyphase.hpp"
#include "winograd.hpp"
#include "winograd_plan.hpp"

namespace fastconv::conv::winograd {

namespace {

// The cost model behind tile_for and auto_tile, in nanoseconds on one core (AVX-512), fitted
// by least squares to the forward, plan and data-gradient times of 22 3x3 stride-1 layers
// (ResNet-50, VGG-16 and smaller; median error 8 %) on the AMD EPYC (one 512-bit FMA pipe):
//   Winograd F(m, 3):  g_m X Cp Kp T  +  0.18 X (Cp + Kp) T        products, transforms
//                      + (4.5 + 0.16 X) Cp Kp [weights per call]     weight transform
//                      + c 4 X Cp Kp [a plan's]                      U from memory per call
//                      + 0.050 X Cp Kp ceil(T / tiles per task)       U read once per task
//   direct / gemm:     a taps Cg Kg P + 0.37 (Cg + Kg) P
//                      + 0.8 taps Cg Kg [weights per call]           weight packing
//                      + c 4 taps Cg Kg [a plan's]                   packed weights per call
// (the two per-call terms measured apart: stateless minus planned time at 512 x 7 x 7; c =
// kColdWeightNsPerByte, algorithm.hpp, fitted later on the Intel Xeon). On several threads
// every term but U's reading once per task is divided among them (auto_tile).
// with X = A x A transform-domain points (A along one axis in 1-D), Cp / Kp the channels per
// group rounded up to whole vectors, T the tiles, P the output positions, g = 0.0216, 0.0272,
// 0.0325 for m = 2, 4, 6 (the fit gave 0.0300 for m = 6, which ranked F(6,3) above F(4,3) on
// 64 x 56 x 56 where it measured 8 % slower) and a = 0.0208.
// With two 512-bit FMA pipes (kernels' fma_pipes: the Intel Xeon of shared/DESIGN.md) the
// arithmetic runs faster against the transforms, and not alike for every tile: refitted on
// the plans of 8 layers (ResNet-50's four 3x3, VGG-16's conv1_2 to conv4_2) at 1 and 2
// threads, g = 0.0133, 0.0161, 0.0235 (transform and U terms as fitted: 0.160 and 0.048;
// median error 7 %), and a = 0.0129 from the direct and gemm times of the same layers at
// batch 1 and 8. The first fit picked F(6,3) on VGG-16's conv1_2 and conv2_2, where F(4,3)
// measured 1.2-1.6x faster there. It ranks the algorithms; it does not predict times on other
// machines.
// Deterministic in p, the kernels' lanes and `threads` (not the workspace limit): the tile of
// the `winograd` entry (one thread) must be the one a plan's calls use.
// The products' g per m = 2, 4, 6 (a: direct_ns_per_mac, algorithm.hpp).
constexpr double kProductsOnePipe[3] = {0.0216, 0.0272, 0.0325};
constexpr double kProductsTwoPipes[3] = {0.0133, 0.0161, 0.0235};

double winograd_cost(const ConvProblem& p, int m, bool weights_per_call,
                     const kernels::KernelTable& kt, int threads) {
  const Shape s = shape_of(p, m);
  const blocked::Tiling t(product_problem(p), kt.f32.blocked, kMaxTiles);
  const double X = s.xis(), Cp = double(t.ncb) * t.w, Kp = double(t.nkb) * t.w;
  const double T = double(p.N) * double(p.out[0]) * double(ceil_div(p.out[1], s.mh)) *
                   double(ceil_div(p.out[2], s.mw));
  const double G = double(p.groups), elem = sizeof(float);
  const double* products = kt.fma_pipes >= 2 ? kProductsTwoPipes : kProductsOnePipe;
  const double g = products[wk::variant_index(m)];
  // Tiles per task as make_plan takes them on one thread with room to spare.
  const double u_bytes = X * Cp * Kp * G * elem, per_tile = X * (Cp + Kp) * elem;
  const double task_bytes =
      std::clamp(u_bytes / 4, double(kMinTaskBytes), double(kMaxTaskBytes));
  const double cap = std::max(1.0, std::min(double(kMaxTiles), std::floor(task_bytes / per_tile)));
  const double tasks = std::ceil(T / cap);
  const double compute = g * X * Cp * Kp * T + 0.18 * X * (Cp + Kp) * T +
                         (weights_per_call ? (4.5 + 0.16 * X) * Cp * Kp
                                           : kColdWeightNsPerByte * X * Cp * Kp * elem);
  return G * (compute / threads + 0.050 * X * Cp * Kp * tasks);  // threads share the memory
}

double exact_cost(const ConvProblem& p, bool weights_per_call, int threads,
                  const kernels::KernelTable& kt) {
  const double P = double(p.N) * double(p.out_spatial()), G = double(p.groups);
  const double Cg = double(p.C_per_group()), Kg = double(p.K_per_group());
  const double taps = double(p.kernel_spatial());
  const double elem = sizeof(float);
  return G * (direct_ns_per_mac(kt.fma_pipes) * taps * Cg * Kg * P + 0.37 * (Cg + Kg) * P +
              (weights_per_call ? 0.8 * taps * Cg * Kg
                                : kColdWeightNsPerByte * taps * Cg * Kg * elem)) / threads;
}

// The tile of least modelled cost, and that cost.
int cheapest_tile(const ConvProblem& p, bool weights_per_call, const kernels::KernelTable& kt,
                  int threads, double* cost) {
  int best = 0;
  double best_cost = 0;
  for (int m : wk::kTiles) {
    const double c = winograd_cost(p, m, weights_per_call, kt, threads);
    if (best == 0 || c < best_cost) best = m, best_cost = c;
  }
  if (cost) *cost = best_cost;
  return best;
}

}  // namespace

int tile_for(const ConvProblem& p, const kernels::KernelTable& kernels) {
  // The weight transform left out: a plan pays it once, and the tile must not depend on
  // whether the call is a plan's. A strided problem runs as its polyphase components'.
  return cheapest_tile(polyphase_problem(p), false, kernels, 1, nullptr);
}

int auto_tile(const ConvProblem& p, DType dtype, ConvDirection direction,
              const kernels::KernelTable& kernels, bool prepacked) {
  // A strided problem runs as its polyphase components' (q), after copying the input's phases
  // (and, per call, the weights') at about 0.5 ns per element.
  const ConvProblem q = polyphase_problem(p);
  // (Per stateless call: too few channels, the common refusal, is told apart before the
  // registry's reasons, which it spells out.)
  if (std::min(q.C_per_group(), q.K_per_group()) < kMinChannels) return 0;
  if (!winograd_algorithm(wk::kTiles[0]).reason_not_applicable(p, dtype, direction).empty()) return 0;
  if (p.N == 0 || p.C == 0 || p.K == 0) return 0;
  // The data gradient transforms its weights on every call.
  const bool per_call = direction == ConvDirection::backward_data || !prepacked;
  // On the threads the call will have: they share the arithmetic, not the memory bandwidth U
  // is read with (on 512 x 7 x 7, F(2,3)'s smaller U wins on 2 threads, F(4,3) on one).
  const int threads = threads_for(p);
  double cost = 0;
  const int m = cheapest_tile(q, per_call, kernels, threads, &cost);
  if (is_strided(p)) {
    const double weights = double(q.K) * double(q.C_per_group()) * double(q.kernel_spatial());
    const double copied = double(q.N) * double(q.C) * double(q.in_spatial()) +
                          (per_call ? weights : 0.0);
    cost += 0.5 * copied / threads;
  }
  return cost < exact_cost(p, per_call, threads, kernels) ? m : 0;
}

}  // namespace fastconv::conv::winograd
