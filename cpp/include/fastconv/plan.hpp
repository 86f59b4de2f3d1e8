// fastconv/plan.hpp — a forward convolution prepared once and run many times (inference).
//
// A ConvPlan fixes a problem (shapes and parameters, from make_conv_problem()), the algorithm
// ("auto" resolved once), the kernels of one ISA and an activation, and holds its own copy of the
// weights in the layout that algorithm reads (packed GEMM panels, direct-kernel blocks), plus
// the bias. forward() then pays no weight re-layout and fuses bias and activation into the
// output as it is written. A plan is immutable: forward() may run from several threads at once.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "fastconv/conv.hpp"

namespace fastconv {

/// How a plan writes an output too large to stay in cache (over 512 KiB, a quarter of a core's
/// L2 on the bench machine):
enum class OutputStores {
  /// past the caches, by non-temporal stores: no line is read before it is written, and the
  /// caches keep the weights and input; the output's next reader fetches it from memory (a
  /// layer whose output is not read again soon, or one timed alone);
  stream,
  /// through the caches: for an output read again at once, such as the input of the next layer
  /// of a network (ResNet-50 inference, fastconv.nn: 63.7 -> 61.3 ms on 1 thread, 36.4 -> 34.2
  /// on 2).
  cache,
};

/// A forward convolution with its weights packed once (see the file comment); cheap to copy
/// (copies share the packed weights), safe to run from several threads at once.
class ConvPlan {
 public:
  /// Prepare y = activation(conv(x, weight) + bias) for `problem` (a forward convolution).
  /// weight (K, C/groups, *kernel) and bias (K, or null) are dense arrays of `dtype`, copied;
  /// `algorithm` is "auto" or a name from conv_algorithm_names(); `isa` names the kernels
  /// (available_isas(); empty: the active ISA); `activation` is one without parameters
  /// (has_parameters() false); `stores` says how a large output is written (a residual or an
  /// activation added after the convolution's stores reads it again: written through the caches
  /// then, whatever `stores`). Throws InvalidArgument for an unknown name or ISA or an activation with
  /// parameters, Unsupported when the algorithm does not apply, OutOfMemory.
  ConvPlan(const ConvProblem& problem, DType dtype, const void* weight, const void* bias,
           const std::string& algorithm = "auto", Activation activation = Activation::none,
           const std::string& isa = "", OutputStores stores = OutputStores::stream);

  /// y (problem.output_shape()) = activation(conv(x, weight) + bias) for x of
  /// problem.input_shape(); both dense, of the plan's dtype. Runs on num_threads() threads.
  void forward(const void* x, void* y) const;

  /// y = activation(conv(x, weight) + bias + residual): the shortcut of a residual block added
  /// before the activation, as the output is written (GEMM, but for its transposed product) or
  /// in one pass over it; residual (problem.output_shape(), the plan's dtype) may be null.
  void forward(const void* x, void* y, const void* residual) const;

  const ConvProblem& problem() const;  ///< the problem the plan was made for
  DType dtype() const;                 ///< the dtype of its weights, inputs and outputs
  /// The algorithm the plan runs ("auto" resolved).
  const std::string& algorithm() const;
  Activation activation() const;  ///< the activation applied to the output
  OutputStores output_stores() const;  ///< how a large output is written
  /// The ISA whose kernels the plan runs.
  std::string isa() const;
  /// Bytes the plan holds: packed weights, bias, and (when `auto` chose an algorithm that
  /// spreads non-finite values) a copy of the weights for inputs holding NaN or Inf.
  std::size_t packed_bytes() const;
  /// Bytes one forward() allocates for its duration at the current num_threads(): the padded
  /// input copy (when there is padding) and the algorithm's scratch.
  std::size_t workspace_bytes() const;

 private:
  struct State;
  std::shared_ptr<const State> state_;
};

}  // namespace fastconv
