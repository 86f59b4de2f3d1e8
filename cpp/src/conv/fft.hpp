// conv/fft.hpp — what the `auto` rule needs to know of FFT convolution (fft.cpp).
#pragma once

#include "fastconv/conv.hpp"
#include "kernels/kernel_table.hpp"

namespace fastconv::conv::fft {

// Whether the FFT is expected to beat the direct methods on p (stride 1, a kernel of more than
// one tap) in `direction`, by the cost model of fft_plan.hpp against the direct methods' rate
// (prepacked: a plan holds the transformed weights).
bool auto_prefers(const ConvProblem& p, DType dtype, ConvDirection direction,
                  const kernels::KernelTable& kernels, bool prepacked);

}  // namespace fastconv::conv::fft
