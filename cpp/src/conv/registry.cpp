// conv/registry.cpp — the ordered list of convolution algorithms and the `auto` rule.
//
// Adding an algorithm is one file defining its ConvAlgorithm and one line in registry().
// Tests and benchmarks iterate this list (fastconv.algorithms()), so a new entry is tested and
// benchmarked without editing them.
#include <string>
#include <vector>

#include "algorithm.hpp"
#include "direct_blocked.hpp"
#include "pad.hpp"
#include "fastconv/errors.hpp"

namespace fastconv::conv {

const std::vector<const ConvAlgorithm*>& registry() {
  static const std::vector<const ConvAlgorithm*> list = {
      &gemm_algorithm(),
      &direct_algorithm(),
  };
  return list;
}

std::string ConvAlgorithm::reason_not_applicable(const ConvProblem& p, DType dtype,
                                                 ConvDirection d) const {
  if (!implements(d)) return std::string("it does not implement ") + direction_name(d);
  return why_not ? why_not(p, dtype, d) : std::string();
}

namespace {

// The `auto` rule. GEMM (im2col, packed register-tiled product) wins whenever its product is
// large enough to fill microkernel tiles: it keeps MR x NR outputs in registers. When a group
// has few output channels (depthwise, channel multipliers) or a tiny reduction (C/groups x
// kernel), most of a GEMM tile would be padding and the im2col packing dominates; the direct
// row kernels, vectorised along output rows, are faster there. Forward, and backward-data at
// stride 1, the direct algorithm's channel-blocked kernels (direct_blocked.hpp) beat GEMM
// wherever they apply and the kernel has more than one tap: they read the input in place where
// im2col copies it once per tap (and col2im adds it back); so does the blocked weight gradient
// when each image has enough output positions. For 1x1 kernels im2col is no copy
// at all, and the blocked layout change costs more than it saves.
const char* auto_choice(const ConvProblem& p, DType dtype, ConvDirection direction,
                        const kernels::KernelTable& kernels) {
  const int64_t reduction = p.C_per_group() * p.kernel_spatial();
  if (p.K_per_group() < 4 || reduction < 8) return "direct";
  if (p.kernel_spatial() > 1) {
    const ConvProblem q = unpadded_view(p);
    if (direction == ConvDirection::forward && blocked::applies(q, dtype, kernels)) return "direct";
    if (direction == ConvDirection::backward_data && blocked::applies_backward_data(q, dtype, kernels))
      return "direct";
    // The weight gradient sums over output positions in runs per image: with few positions
    // (7 x 7) the runs are too short to pay for the accumulators' loads and stores.
    if (direction == ConvDirection::backward_weights && p.out_spatial() >= 64 &&
        blocked::applies_backward_weights(q, dtype, kernels))
      return "direct";
  }
  return "gemm";
}

const ConvAlgorithm* find(const std::string& name) {
  for (const ConvAlgorithm* a : registry())
    if (name == a->name) return a;
  return nullptr;
}

}  // namespace

const ConvAlgorithm& select(const ConvProblem& problem, DType dtype, ConvDirection direction,
                            const std::string& name, const kernels::KernelTable& kernels) {
  if (name == "auto") {
    const ConvAlgorithm* preferred = find(auto_choice(problem, dtype, direction, kernels));
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
