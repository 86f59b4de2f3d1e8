// conv/direct_blocked.hpp — the dense-layer path of the direct algorithm: convolution on
// channel-blocked layouts with the ISA's blocked tile kernels (kernels/generic/blocked_ukernel.hpp).
// direct.cpp uses it when it applies (see applies()); the row kernels serve the rest.
#pragma once

#include <cstddef>

#include "algorithm.hpp"

namespace fastconv::conv::blocked {

// Whether the blocked kernels serve p (an unpadded view) on the standard layout: stride 1 or 2
// along W and at least half a vector of channels per group on both sides (blocks are
// zero-padded to whole vectors).
bool applies_dense(const ConvProblem& p, DType dtype, const kernels::KernelTable& kernels);

// Whether the forward serves p on the narrow layout: fewer than half a vector of input
// channels per group (a network's first layer), any stride, at least half a vector of output
// channels.
bool applies_narrow(const ConvProblem& p, DType dtype, const kernels::KernelTable& kernels);

// Whether the forward serves p: applies_dense() or applies_narrow().
bool applies(const ConvProblem& p, DType dtype, const kernels::KernelTable& kernels);

// Vector lanes W of the blocked kernels for dtype.
inline int lanes(DType dtype, const kernels::KernelTable& kernels) {
  return dtype == DType::f32 ? kernels.f32.blocked.w : kernels.f64.blocked.w;
}

std::size_t packed_weights_bytes(const ConvProblem& p, DType dtype,
                                 const kernels::KernelTable& kernels);
// The forward's workspace for p; with any_batch, a bound for every problem with the same
// channels, a blocked image and rows no larger than p's and any batch (the data gradient's
// phases, direct.cpp).
std::size_t workspace_bytes(const ConvProblem& p, DType dtype, int threads,
                            const kernels::KernelTable& kernels, bool any_batch = false);
void pack_weights(const ConvArgs& a, void* packed);
void forward(const ConvArgs& a);

// The data gradient of a stride-1 convolution, as the forward convolution of the padded
// output gradient with the flipped, channel-swapped weights (packed per call). backward_data
// returns false, having written nothing, when a weight is not finite (0 x NaN in the padding).
bool applies_backward_data(const ConvProblem& p, DType dtype, const kernels::KernelTable& kernels);
std::size_t backward_data_workspace_bytes(const ConvProblem& p, DType dtype, int threads,
                                          const kernels::KernelTable& kernels);
bool backward_data(const ConvArgs& a);

// The weight gradient (direct_blocked_wgrad.cpp), where applies_dense() holds.
std::size_t backward_weights_workspace_bytes(const ConvProblem& p, DType dtype, int threads,
                                             const kernels::KernelTable& kernels);
void backward_weights(const ConvArgs& a);

}  // namespace fastconv::conv::blocked
