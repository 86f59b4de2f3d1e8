// pool/fixed_pool.hpp — max and average pooling with fixed windows (see fixed_pool.cpp).
// Shapes: x / dx N*C planes of in, y / dy / indices N*C planes of out.
#pragma once

#include <cstdint>

#include "fastconv/pool.hpp"
#include "kernels/kernel_table.hpp"

namespace fastconv::pool {

/// Max (kind max) or average (kind avg) pooling without indices.
template <typename T>
void fixed_forward(const PoolProblem& p, const T* x, T* y, const kernels::PoolKernels<T>& pk,
                   int threads);

/// Max pooling with argmax indices (flat within each plane).
template <typename T>
void fixed_max_forward_indices(const PoolProblem& p, const T* x, T* y, int64_t* indices,
                               int threads);

/// Gradient of average pooling; dx fully written.
template <typename T>
void fixed_avg_backward(const PoolProblem& p, const T* dy, T* dx, int threads);

}  // namespace fastconv::pool
