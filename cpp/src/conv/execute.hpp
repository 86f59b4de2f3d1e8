// conv/execute.hpp — running a chosen convolution algorithm on a validated problem: the thread
// count, empty problems, padding (materialised once per call, and folded back for the data
// gradient), packed weights and the workspace. Shared by the stateless entry points (conv.cpp)
// and plans (plan.cpp).
//
// Shapes: x N x C x in, w K x C/groups x kernel, b K, y / dy N x K x out.
#pragma once

#include <cstddef>

#include "algorithm.hpp"

namespace fastconv::conv {

// Threads for a call: about 64K multiply-adds per thread at least.
int threads_for(const ConvProblem& p);

// Bytes a call's copies and scratch should stay within: the workspace limit
// (fastconv/runtime.hpp), by default max(16 MiB, the input's size).
int64_t scratch_limit(const ConvProblem& p, DType dtype);

// y = act(conv(x, w) + b). packed_w: the weights as algo.pack_weights lays them out for
// `kernels` (a plan's), or null to pack w here. exact: when not null (exact_alternative of an
// `auto` choice that spreads non-finite values), an input holding NaN or Inf is computed by
// `exact` instead, from w. stream_output, residual: ConvArgs's (residual only where
// algo.fuses_residual says so for the problem it receives, and p.C > 0; exact, when it runs,
// must fuse it too).
void execute_forward(const ConvAlgorithm& algo, const ConvProblem& p, DType dtype, const void* x,
                     const void* w, const void* packed_w, const void* b, Activation act, void* y,
                     const kernels::KernelTable& kernels, const ConvAlgorithm* exact = nullptr,
                     bool stream_output = true, const void* residual = nullptr);

// dx = the data gradient; exact as for execute_forward (a non-finite value in dy).
void execute_backward_data(const ConvAlgorithm& algo, const ConvProblem& p, DType dtype,
                           const void* w, const void* dy, void* dx,
                           const ConvAlgorithm* exact = nullptr);

void execute_backward_weights(const ConvAlgorithm& algo, const ConvProblem& p, DType dtype,
                              const void* x, const void* dy, void* dw);

// The forward problem as `algo` receives it: p itself when the algorithm pads the input
// itself, else the unpadded view (pad.hpp) of the padded input the entry point makes.
ConvProblem forward_view(const ConvAlgorithm& algo, const ConvProblem& p, DType dtype,
                         const kernels::KernelTable& kernels);

// Bytes a forward call allocates besides the packed weights: the padded input copy and the
// algorithm's workspace, at `threads` threads.
std::size_t forward_scratch_bytes(const ConvAlgorithm& algo, const ConvProblem& p, DType dtype,
                                  int threads, const kernels::KernelTable& kernels);

}  // namespace fastconv::conv
