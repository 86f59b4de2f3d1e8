// conv/winograd.hpp — what the registry and the `auto` rule need to know of the Winograd
// algorithm (winograd.cpp).
#pragma once

#include <cstdint>

#include "fastconv/conv.hpp"
#include "kernels/kernel_table.hpp"

namespace fastconv::conv::winograd {

// Channels per group (input and output) below which Winograd declines: its transforms cost per
// channel what a few channels' products would save.
constexpr int64_t kMinChannels = 4;

// The output tile m of F(m, 3) that the `winograd` entry uses for p (on `kernels`): the least
// modelled cost, the weight transform left out.
int tile_for(const ConvProblem& p, const kernels::KernelTable& kernels);

// The `auto` rule's view: the tile m when Winograd is expected to beat the other algorithms
// on p (a forward or data-gradient problem; prepacked: a plan holds the transformed weights),
// else 0.
int auto_tile(const ConvProblem& p, DType dtype, ConvDirection direction,
              const kernels::KernelTable& kernels, bool prepacked);

}  // namespace fastconv::conv::winograd
