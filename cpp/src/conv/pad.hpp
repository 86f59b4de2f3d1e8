// conv/pad.hpp — materialise the padded input of a convolution, and fold the gradient of the
// padded input back onto the input.
//
// Forward, x: N x C x in (D, H, W) -> xp: N x C x (in + pad_lo + pad_hi), extended by zeros or
// by reflecting (without repeating the edge, numpy 'reflect'), replicating the edge, or wrapping
// around (circular), as torch.nn.functional.pad does. Backward, each element of dxp is added to
// the input element it was copied from (zeros padding drops it). Doing this once up front lets
// every algorithm treat any padding mode as a plain unpadded problem, at the cost of one copy
// of the input (O(input) next to O(input x kernel x K) arithmetic).
#pragma once

#include <array>
#include <cstdint>

#include "fastconv/conv.hpp"

namespace fastconv::conv {

/// Padded extents (D, H, W) of problem's input.
std::array<int64_t, 3> padded_extent(const ConvProblem& p);

/// The problem as algorithms see it after padding: in = padded extents, zero padding.
ConvProblem unpadded_view(const ConvProblem& p);

/// The data gradient of a stride-1 convolution p (an unpadded view) as a forward convolution:
/// dX_padded = conv(dY padded by (kernel - 1) * dilation, W flipped in space with its channel
/// roles swapped). Its input channels are p's K, its output channels p's C, its input p's
/// output so padded, its output p's (padded) input.
ConvProblem data_gradient_problem(const ConvProblem& p);

/// Write the padded input; xp holds N*C*prod(padded_extent(p)) elements.
template <typename T>
void pad_input(const ConvProblem& p, const T* x, T* xp, int threads);

/// dx = the gradient of pad_input: dx[src(i)] += dxp[i] over every padded position i. dx is
/// fully written. Each plane is folded by one thread in a fixed order (deterministic).
template <typename T>
void fold_padding(const ConvProblem& p, const T* dxp, T* dx, int threads);

}  // namespace fastconv::conv
