// fastconv/pool.hpp — N-d pooling (1-D, 2-D, 3-D), forward and backward, PyTorch semantics.
//
// Layout N C [D] H W. Max pooling (with dilation and optional argmax indices: the flat index of
// the maximum within its (n, c) plane, the first maximum on ties, NaN propagating as in
// PyTorch), average pooling (count_include_pad, divisor_override), and adaptive average / max
// pooling to a requested output size. As for convolution, a call is two steps: a make_*_problem
// function validates shapes and parameters (overflow-checked, before any allocation), then an
// entry point computes. Arrays are dense, C-contiguous, of one dtype; indices are int64.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fastconv/conv.hpp"  // DType

namespace fastconv {

/// torch.nn.functional.{max,avg}_pool<rank>d's parameters. A vector of one value applies to every
/// spatial dimension; an empty stride means stride = kernel_size.
struct PoolOptions {
  std::vector<int64_t> kernel_size;  ///< window extents, >= 1
  std::vector<int64_t> stride;       ///< empty: kernel_size
  std::vector<int64_t> padding{0};   ///< at most half the window
  std::vector<int64_t> dilation{1};  ///< max pooling only
  bool ceil_mode = false;                  ///< output extents rounded up, as in PyTorch
  bool count_include_pad = true;          ///< average pooling only
  std::optional<int64_t> divisor_override;  ///< average pooling only
};

/// Which pooling: fixed windows (max, avg) or windows that split the input into a requested
/// output size (adaptive_max, adaptive_avg).
enum class PoolKind { max, avg, adaptive_max, adaptive_avg };

/// A validated pooling problem; spatial arrays hold (D, H, W), ranks below 3 padded with 1s.
struct PoolProblem {
  std::string op = "max_pool2d";  ///< name used in messages
  PoolKind kind = PoolKind::max;
  int rank = 2;                   ///< spatial rank (1, 2 or 3)
  bool batched = true;            ///< input had a batch dimension
  int64_t N = 0, C = 0;           ///< batch and channels
  std::array<int64_t, 3> in{1, 1, 1}, out{1, 1, 1};  ///< (D, H, W) extents
  std::array<int64_t, 3> kernel{1, 1, 1}, stride{1, 1, 1}, padding{0, 0, 0}, dilation{1, 1, 1};
  bool count_include_pad = true;  ///< average pooling: padding counts in the divisor
  int64_t divisor_override = 0;   ///< 0: none

  int64_t planes() const { return N * C; }                        ///< (n, c) planes
  int64_t in_spatial() const { return in[0] * in[1] * in[2]; }      ///< input positions per plane
  int64_t out_spatial() const { return out[0] * out[1] * out[2]; }  ///< output positions per plane
  std::vector<int64_t> input_shape() const;   ///< (N, C, *in), or (C, *in) when unbatched
  std::vector<int64_t> output_shape() const;  ///< (N, C, *out), or (C, *out) when unbatched
};

/// Validate a max (kind max) or average (kind avg) pooling; throws InvalidArgument /
/// OverflowError with PyTorch-like messages starting with `op`.
PoolProblem make_pool_problem(PoolKind kind, int rank, const std::vector<int64_t>& input_shape,
                              const PoolOptions& options, const std::string& op);

/// Validate an adaptive pooling to `output_size` (one value or one per spatial dim; an empty
/// optional keeps that input size).
PoolProblem make_adaptive_pool_problem(PoolKind kind, int rank,
                                       const std::vector<int64_t>& input_shape,
                                       const std::vector<std::optional<int64_t>>& output_size,
                                       const std::string& op);

/// The problem of a gradient that scatters through argmax indices: the input had
/// `input_shape`, grad_output and indices have `grad_output_shape`.
PoolProblem make_pool_scatter_problem(int rank, const std::vector<int64_t>& input_shape,
                                      const std::vector<int64_t>& grad_output_shape,
                                      const std::vector<int64_t>& indices_shape,
                                      const std::string& op);

/// Forward of any pooling kind. indices (int64, the output's shape) is optional for the max
/// kinds and must be null for the average kinds.
void pool_fwd(const PoolProblem& problem, DType dtype, const void* x, void* y, int64_t* indices);

/// Gradient of an average pooling (kind avg or adaptive_avg): dx fully written.
void pool_avg_bwd(const PoolProblem& problem, DType dtype, const void* dy, void* dx);

/// Gradient of a max pooling through its indices: dx[n][c][indices[...]] += dy[...], dx fully
/// written. Index -1 (a dilated window that lies entirely in the padding; its value is -inf)
/// contributes nothing; any other index outside the input plane throws InvalidArgument.
void pool_max_bwd(const PoolProblem& problem, DType dtype, const void* dy, const int64_t* indices,
                  void* dx);

}  // namespace fastconv
