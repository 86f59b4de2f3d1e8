// conv/algorithm.hpp — what a convolution algorithm is to the registry.
//
// An algorithm states whether it applies (an empty reason) to a problem, how much workspace it
// needs, and computes. Before an algorithm runs, conv_fwd() has applied the padding (see
// pad.hpp): the problem it receives has zero padding and `in` holds the padded extents.
#pragma once

#include <cstddef>
#include <string>

#include "fastconv/conv.hpp"
#include "kernels/kernel_table.hpp"

namespace fastconv::conv {

/// Operands of one forward call. Arrays are dense and C-contiguous; x is already padded.
struct ConvFwdArgs {
  const ConvProblem& problem;  // pad_lo = pad_hi = 0
  DType dtype;
  const void* x;  // N x C x in
  const void* w;  // K x C/groups x kernel
  const void* b;  // K, or null
  void* y;        // N x K x out
  void* workspace;
  int threads;
  const kernels::KernelTable& kernels;
};

struct ConvAlgorithm {
  const char* name;
  const char* description;
  // Empty when the algorithm applies to (problem, dtype), else the reason it does not.
  std::string (*why_not)(const ConvProblem& problem, DType dtype);
  std::size_t (*workspace_bytes)(const ConvProblem& problem, DType dtype, int threads,
                                 const kernels::KernelTable& kernels);
  void (*forward)(const ConvFwdArgs& args);
};

// Algorithms, one per file (direct.cpp, gemm.cpp).
const ConvAlgorithm& direct_algorithm();
const ConvAlgorithm& gemm_algorithm();

/// Every registered algorithm, best first.
const std::vector<const ConvAlgorithm*>& registry();

/// The algorithm `name` names ("auto" chooses); throws InvalidArgument for an unknown name and
/// Unsupported when the named algorithm does not apply.
const ConvAlgorithm& select(const ConvProblem& problem, DType dtype, const std::string& name);

}  // namespace fastconv::conv
