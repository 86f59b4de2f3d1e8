// pool/adaptive_pool.hpp — adaptive average and max pooling (see adaptive_pool.cpp).
// Shapes: x / dx N*C planes of in, y / dy / indices N*C planes of out.
#pragma once

#include <cstdint>

#include "fastconv/pool.hpp"
#include "kernels/kernel_table.hpp"

namespace fastconv::pool {

/// Adaptive max (kind adaptive_max) or average (kind adaptive_avg) pooling; indices (max only)
/// may be null.
template <typename T>
void adaptive_forward(const PoolProblem& p, const T* x, T* y, int64_t* indices,
                      const kernels::PoolKernels<T>& pk, int threads);

/// Gradient of adaptive average pooling; dx fully written.
template <typename T>
void adaptive_avg_backward(const PoolProblem& p, const T* dy, T* dx, int threads);

}  // namespace fastconv::pool
