// fastconv/linear.hpp — the fully connected layer y = x W^T + b (torch.nn.functional.linear),
// forward and both gradients, on the project's packed GEMM (the same microkernels as the
// convolutions, threaded by OpenMP; no BLAS of its own, so no second thread pool competes with
// the convolutions' threads).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fastconv {

enum class DType;  ///< float32 / float64 (fastconv/conv.hpp)

/// A validated linear layer: x of (*, in_features) seen as M rows of K = in_features, weight
/// (N = out_features, K), bias (N).
struct LinearProblem {
  std::string op = "linear";      ///< name used in messages
  int64_t M = 0, K = 0, N = 0;    ///< rows, in_features, out_features
  std::vector<int64_t> input_shape;  ///< (*, in_features) as given
  std::vector<int64_t> output_shape() const;  ///< (*, out_features)
};

/// Validate shapes; throws InvalidArgument with PyTorch's wording ("mat1 and mat2 shapes cannot
/// be multiplied (2x3 and 4x5)") or OverflowError.
LinearProblem make_linear_problem(const std::vector<int64_t>& input_shape,
                                  const std::vector<int64_t>& weight_shape,
                                  const std::optional<std::vector<int64_t>>& bias_shape,
                                  const std::string& op = "linear");

/// y [M][N] = x [M][K] W^T [K][N] + b (b may be null).
void linear_fwd(const LinearProblem& p, DType dtype, const void* x, const void* w, const void* b,
                void* y);

/// dx [M][K] = dy [M][N] W [N][K].
void linear_bwd_data(const LinearProblem& p, DType dtype, const void* w, const void* dy, void* dx);

/// dw [N][K] = dy^T x and, when db is not null, db [N] = the column sums of dy; the sums over
/// the M rows run in a fixed order (results do not depend on the thread count).
void linear_bwd_weights(const LinearProblem& p, DType dtype, const void* x, const void* dy,
                        void* dw, void* db);

}  // namespace fastconv
