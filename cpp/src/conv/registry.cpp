// conv/registry.cpp — the ordered list of convolution algorithms and the `auto` rule.
//
// Adding an algorithm is one file defining its ConvAlgorithm and one line in registry().
// Tests and benchmarks iterate this list (fastconv.algorithms()), so a new entry is tested and
// benchmarked without editing them.
#include <string>
#include <vector>

#include "algorithm.hpp"
#include "fastconv/errors.hpp"

namespace fastconv::conv {

const std::vector<const ConvAlgorithm*>& registry() {
  static const std::vector<const ConvAlgorithm*> list = {
      &gemm_algorithm(),
      &direct_algorithm(),
  };
  return list;
}

namespace {

// The `auto` rule. GEMM (im2col, packed register-tiled product) wins whenever its product is
// large enough to fill microkernel tiles: it keeps MR output channels x NR output pixels in
// registers. When a group has few output channels (depthwise, channel multipliers) or a tiny
// reduction (C/groups x kernel), most of a GEMM tile would be padding and the im2col packing
// dominates; the direct kernel, vectorised along output rows, is faster there.
const char* auto_choice(const ConvProblem& p) {
  const int64_t reduction = p.C_per_group() * p.kernel_spatial();
  if (p.K_per_group() < 4 || reduction < 8) return "direct";
  return "gemm";
}

const ConvAlgorithm* find(const std::string& name) {
  for (const ConvAlgorithm* a : registry())
    if (name == a->name) return a;
  return nullptr;
}

}  // namespace

const ConvAlgorithm& select(const ConvProblem& problem, DType dtype, const std::string& name) {
  if (name == "auto") {
    const ConvAlgorithm* preferred = find(auto_choice(problem));
    if (preferred && preferred->why_not(problem, dtype).empty()) return *preferred;
    for (const ConvAlgorithm* a : registry())
      if (a->why_not(problem, dtype).empty()) return *a;
    throw Unsupported(problem.op_name() + ": no registered algorithm supports this problem");
  }
  const ConvAlgorithm* a = find(name);
  if (!a) {
    std::string names = "auto";
    for (const ConvAlgorithm* r : registry()) names += std::string(", ") + r->name;
    throw InvalidArgument(problem.op_name() + ": unknown algo '" + name + "'; expected one of " +
                          names);
  }
  const std::string reason = a->why_not(problem, dtype);
  if (!reason.empty()) {
    throw Unsupported(problem.op_name() + ": algo '" + name + "' does not support this problem: " +
                      reason);
  }
  return *a;
}

}  // namespace fastconv::conv
