// conv/registry.cpp — the ordered list of convolution algorithms and the `auto` rule.
//
// Adding an algorithm is one file defining its ConvAlgorithm and one line in registry().
// Tests and benchmarks iterate this list (fastconv.algorithms()), so a new entry is tested and
// benchmarked without editing them.
#include <string>
#include <vector>

#include "algorithm.hpp"
#include "direct_blocked.hpp"
#include "fft.hpp"
#include "pad.hpp"
#include "winograd.hpp"
#include "fastconv/errors.hpp"

namespace fastconv::conv {

const std::vector<const ConvAlgorithm*>& registry() {
  static const std::vector<const ConvAlgorithm*> list = {
      &gemm_algorithm(),
      &direct_algorithm(),
      &winograd_algorithm(0),
      &winograd_algorithm(2),
      &winograd_algorithm(4),
      &winograd_algorithm(6),
      &fft_algorithm(),
  };
  return list;
}

std::string ConvAlgorithm::reason_not_applicable(const ConvProblem& p, DType dtype,
                                                 ConvDirection d) const {
  if (!implements(d)) return std::string("it does not implement ") + direction_name(d);
  return why_not ? why_not(p, dtype, d) : std::string();
}

namespace {

// The `auto` rule, measured on the layers of shared/shapes/layers.json (bench/RESULTS.md): first
// among the algorithms that keep the definition's NaN / Inf pattern (exact_choice), then
// Winograd where it is expected to be faster (auto_choice).
// GEMM (im2col, packed register-tiled product) is the general case. The direct algorithm wins:
// - with few output channels per group (depthwise, channel multipliers) or a tiny reduction
//   (C/groups x kernel), where GEMM tiles would be mostly padding: its row kernels;
// - forward, on dense layers whose kernel has more than one tap and whose reduction has at
//   least 256 terms: its channel-blocked kernels read the input in place where im2col copies
//   it once per tap (a 1x1 kernel copies nothing; shorter reductions leave the blocked tiles'
//   fixed costs unpaid); and on layers with few input channels (a network's first layer)
//   strided along W, whose im2col gathers element by element (at stride 1 it copies runs, and
//   GEMM, writing its output rows directly, is faster than the blocked kernels' transposition);
// - backward, on dense layers: the blocked kernels avoid col2im and the transposed packing;
//   the data gradient of a 1x1 layer only with a stride or padding (without, GEMM runs it as
//   the forward by W^T: data_gradient_is_forward; ResNet-50's 1x1 layers, 1 thread: 1.2-1.7x
//   faster than the blocked kernels), the weight gradient only with a kernel of more than two
//   taps (a 1x1 layer's is one GEMM of dY by X^T, read in place: 1.0-1.7x faster than the
//   blocked kernels on ResNet-50's and MobileNetV2's 1x1 layers, on the AMD EPYC and the
//   Intel Xeon alike; WaveNet's 2 dilated taps: 2.4 against 3.3 ms), at least 64 output
//   positions per image (with fewer, a 7x7 image, GEMM is faster) and at most 128 products of
//   a channel pair per output position of the batch, Cg Kg <= 128 N P (past it GEMM's longer
//   reduction wins: 256 x 14 x 14 at batch 1, Cg Kg / N P = 334, 1.29 against 1.50 ms, VGG-16's
//   512 x 28 x 28 20.1 against 22.4; at 83, 256 x 28 x 28, the blocked kernels, 5.1 against
//   5.5; Intel Xeon, 1 thread, the same order on 2). The data gradient of strided dense layers
//   runs as stride-1 phases only with a kernel of 9 taps or more, 128 channels per group or
//   more both ways and output rows at least 28 wide: ResNet-50's 3x3 / 2 on 56x56 took 2.8 ms
//   by phases against GEMM's 3.3 (1 thread; equal on 2), while on 28x28 (128 -> 256) the phases
//   took 2.0 / 1.5 ms against 1.5 / 0.8, a 1x1 / 2 layer up to 2.7x GEMM's time, and 64 -> 128
//   on 56x56 lost on 2 threads (0.93 against 0.86 ms). And the data gradient of stride-1
//   layers with few input channels (a network's first layer), which the row kernels scatter
//   faster than col2im (strided ones they scatter lane by lane, slower), where the core has
//   one FMA pipe (kernels' fma_pipes): VGG-16's conv1_1 took 4.9 ms by direct against GEMM's
//   6.4 on the AMD EPYC, 5.8 against 4.1 on the Intel Xeon (two pipes; 1 thread).
const char* exact_choice(const ConvProblem& p, DType dtype, ConvDirection direction,
                         const kernels::KernelTable& kernels) {
  const int64_t reduction = p.C_per_group() * p.kernel_spatial();
  if (p.K_per_group() < 4 || reduction < 8) return "direct";
  const ConvProblem q = unpadded_view(p);
  const bool positions = p.out_spatial() >= 64;
  switch (direction) {
    case ConvDirection::forward:
      if (p.kernel_spatial() > 1 && reduction >= 256 && blocked::applies(q, dtype, kernels))
        return "direct";
      if (p.stride[2] > 1 && blocked::applies_narrow(q, dtype, kernels)) return "direct";
      break;
    case ConvDirection::backward_data:
      if (data_gradient_is_forward(p)) break;
      if (blocked::applies_backward_data(q, dtype, kernels)) return "direct";
      if (direct_phased_data_gradient(q, dtype, kernels) && p.kernel_spatial() >= 9 &&
          p.C_per_group() >= 128 && p.K_per_group() >= 128 && p.out[2] >= 28)
        return "direct";
      if (p.C_per_group() < 8 && p.stride[0] == 1 && p.stride[1] == 1 && p.stride[2] == 1 &&
          kernels.fma_pipes < 2)
        return "direct";
      break;
    case ConvDirection::backward_weights:
      if (positions && p.kernel_spatial() > 2 &&
          p.C_per_group() * p.K_per_group() <= 128 * p.N * p.out_spatial() &&
          blocked::applies_dense(q, dtype, kernels))
        return "direct";
      break;
  }
  return "gemm";
}

// Winograd where its cost model (winograd::auto_tile) expects it to beat the rest: forward and
// data gradient of 3x3 stride-1 layers with enough channels and tiles to pay for its transforms
// (and strided forwards whose polyphase components are such layers: AlexNet's conv1);
// the weight transform counts only when a plan does not hold it. Otherwise the FFT where its
// cost model (fft::auto_prefers) expects it to beat the direct methods' arithmetic: large
// kernels, and kernels of many taps on few positions.
const char* auto_choice(const ConvProblem& p, DType dtype, ConvDirection direction,
                        const kernels::KernelTable& kernels, bool prepacked) {
  switch (winograd::auto_tile(p, dtype, direction, kernels, prepacked)) {
    case 2: return "winograd_f2x3";
    case 4: return "winograd_f4x3";
    case 6: return "winograd_f6x3";
    default: break;
  }
  if (fft::auto_prefers(p, dtype, direction, kernels, prepacked)) return "fft";
  return exact_choice(p, dtype, direction, kernels);
}

const ConvAlgorithm* find(const std::string& name) {
  for (const ConvAlgorithm* a : registry())
    if (name == a->name) return a;
  return nullptr;
}

}  // namespace

const ConvAlgorithm* exact_alternative(const ConvAlgorithm& chosen, const ConvProblem& problem,
                                       DType dtype, ConvDirection direction,
                                       const kernels::KernelTable& kernels) {
  if (!chosen.spreads_non_finite) return nullptr;
  const ConvAlgorithm* a = find(exact_choice(problem, dtype, direction, kernels));
  return a && a->reason_not_applicable(problem, dtype, direction).empty() ? a : &gemm_algorithm();
}

const ConvAlgorithm& select(const ConvProblem& problem, DType dtype, ConvDirection direction,
                            const std::string& name, const kernels::KernelTable& kernels,
                            bool prepacked) {
  if (name == "auto") {
    const ConvAlgorithm* preferred =
        find(auto_choice(problem, dtype, direction, kernels, prepacked));
    if (preferred && preferred->reason_not_applicable(problem, dtype, direction).empty())
      return *preferred;
    for (const ConvAlgorithm* a : registry())
      if (a->reason_not_applicable(problem, dtype, direction).empty()) return *a;
    throw Unsupported(problem.op + ": no registered algorithm supports this problem");
  }
  const ConvAlgorithm* a = find(name);
  if (!a) {
    std::string names = "auto";
    for (const ConvAlgorithm* r : registry()) names += std::string(", ") + r->name;
    throw InvalidArgument(problem.op + ": unknown algo '" + name + "'; expected one of " + names);
  }
  const std::string reason = a->reason_not_applicable(problem, dtype, direction);
  if (!reason.empty()) {
    throw Unsupported(problem.op + ": algo '" + name + "' does not support this problem (" +
                      direction_name(direction) + "): " + reason);
  }
  return *a;
}

}  // namespace fastconv::conv
