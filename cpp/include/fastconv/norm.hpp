// fastconv/norm.hpp — batch, group (and instance) and layer normalisation, forward and backward,
// with PyTorch's semantics (torch.nn.functional.batch_norm, group_norm, instance_norm,
// layer_norm).
//
// All three see the input as rows: x is [N][C][S] (S the product of the trailing extents; layer
// normalisation: N rows of the normalised size S, C = 1). Statistics are a mean and a biased
// variance over
//   batch: each channel c, over (n, s);
//   group: each (n, g), over the C / groups channels of group g and s (instance: groups = C);
//   layer: each row n, over s;
// and y = (x - mean) / sqrt(var + eps) * weight + bias, weight and bias per channel (batch,
// group) or per element of the normalised shape (layer); both optional. Sums run in double, in
// a fixed order, so results do not depend on the thread count. As for convolution, a call is two
// steps: make_norm_problem validates the shapes, then norm_fwd / norm_bwd compute.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fastconv/conv.hpp"  // DType

namespace fastconv {

/// Which statistics a normalisation takes (see the file comment).
enum class NormKind { batch, group, layer };

/// A validated normalisation: x as [N][C][S]; `groups` channel groups (group kind).
struct NormProblem {
  std::string op = "batch_norm";  ///< name used in messages
  NormKind kind = NormKind::batch;
  int64_t N = 0, C = 1, S = 1;    ///< rows (batch), channels, positions per row
  int64_t groups = 1;             ///< channel groups (group kind)

  /// (mean, var) pairs: C (batch), N * groups (group), N (layer).
  int64_t stats() const;
  /// Elements of weight and bias: C, or S for layer normalisation.
  int64_t params() const;
  /// Values each statistic reduces over.
  int64_t reduced() const;
};

/// Validate a normalisation of an input of `input_shape`:
///   batch: (N, C, *) with at least 2 dims;
///   group: (N, C, *), C divisible by `groups` (> 0);
///   layer: input's trailing dims equal `normalized_shape` (non-empty).
/// Throws InvalidArgument / OverflowError with PyTorch-like messages starting with `op`.
NormProblem make_norm_problem(NormKind kind, const std::vector<int64_t>& input_shape,
                              int64_t groups, const std::vector<int64_t>& normalized_shape,
                              const std::string& op);

/// Throws InvalidArgument unless a parameter array `name` (weight, bias, running_mean, ...) of
/// `shape` holds `expected` elements in one dimension (or, for layer normalisation, has the
/// normalised shape `normalized_shape`).
void check_norm_param(const NormProblem& problem, const char* name,
                      const std::vector<int64_t>& shape,
                      const std::vector<int64_t>& normalized_shape, int64_t expected);

/// The statistics of x alone: mean and biased var (stats() doubles each), as norm_fwd computes
/// them with use_input_stats (the gradients need them when the forward's were not kept).
void norm_stats(const NormProblem& problem, DType dtype, const void* x, double* mean, double* var);

/// Forward. With use_input_stats the statistics of x are computed and written to mean and var
/// (stats() doubles each, var biased); otherwise mean and var are read (running statistics,
/// batch kind). weight / bias (params() values of dtype) may be null. y fully written.
/// Throws InvalidArgument when use_input_stats and a statistic would reduce over one value
/// in batch normalisation (PyTorch: "Expected more than 1 value per channel when training").
void norm_fwd(const NormProblem& problem, DType dtype, const void* x, const void* weight,
              const void* bias, bool use_input_stats, double eps, double* mean, double* var,
              void* y);

/// Backward of norm_fwd given the mean and var it used: dx (x's shape), dweight and dbias
/// (params() values) — each may be null and is then not computed. use_input_stats: the
/// gradient flows through the statistics too (training); otherwise they are constants.
void norm_bwd(const NormProblem& problem, DType dtype, const void* x, const void* dy,
              const void* weight, bool use_input_stats, double eps, const double* mean,
              const double* var, void* dx, void* dweight, void* dbias);

}  // namespace fastconv
