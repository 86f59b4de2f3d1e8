// fastconv/activation.hpp — elementwise activations and softmax, forward and backward, with
// torch.nn.functional's definitions. A forward convolution can also apply an activation to its
// output (fastconv::ConvPlan): the clamps relu and relu6 inside the store, the others in a pass
// over the output while it is still warm.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fastconv {

enum class DType;  ///< float32 / float64 (fastconv/conv.hpp)

/// The elementwise activations, each with PyTorch's definition (alpha, beta: their parameters):
///   relu        max(x, 0)                      relu6      min(max(x, 0), 6)
///   leaky_relu  x > 0 ? x : alpha x            hardtanh   min(max(x, alpha), beta)
///   elu         x > 0 ? x : alpha (e^x - 1)    sigmoid    1 / (1 + e^-x)
///   tanh        tanh x                         silu       x sigmoid(x)
///   hardsigmoid relu6(x + 3) / 6               hardswish  x relu6(x + 3) / 6
///   gelu        x Phi(x) (erf form)            gelu_tanh  gelu's tanh approximation
/// NaN stays NaN. `none` is the identity (a plan without an activation).
enum class Activation {
  none, relu, relu6, leaky_relu, hardtanh, elu, sigmoid, tanh, silu, hardsigmoid, hardswish,
  gelu, gelu_tanh,
};

/// The activation's name as above ("none", "relu", ...).
const char* activation_name(Activation a);

/// Parse an activation name; throws InvalidArgument otherwise.
Activation parse_activation(const std::string& name);

/// True for the activations a GEMM tile store applies as a clamp (relu, relu6).
bool is_clamp(Activation a);

/// True for the activations with parameters (leaky_relu, hardtanh, elu).
bool has_parameters(Activation a);

/// y[i] = act(x[i]) for i < n (y may be x). Runs on num_threads() threads.
void activation_fwd(Activation act, double alpha, double beta, DType dtype, int64_t n,
                    const void* x, void* y);

/// dx[i] = dy[i] act'(x[i]) for i < n, from the activation's input x (dx may be dy); at the
/// kinks PyTorch's one-sided choices (relu: 0 at x = 0; hardtanh: 0 at both limits).
void activation_bwd(Activation act, double alpha, double beta, DType dtype, int64_t n,
                    const void* x, const void* dy, void* dx);

/// An array of `shape` seen as [outer][D][inner] around axis `dim` (negative: from the end; a
/// 0-d array is one element). Throws InvalidArgument naming `op` when dim is out of range.
struct SoftmaxShape {
  int64_t outer = 1, D = 1, inner = 1;
};
SoftmaxShape softmax_shape(const std::vector<int64_t>& shape, int64_t dim, const std::string& op);

/// Softmax (or, with `log`, log-softmax) of x viewed as [outer][D][inner] along D:
/// y = exp(x - max) / sum exp(x - max), log: y = x - max - log sum exp(x - max). Sums in double.
void softmax_fwd(DType dtype, int64_t outer, int64_t D, int64_t inner, const void* x, void* y,
                 bool log);

/// Backward of softmax_fwd from its output y: dx = y (dy - sum dy y), log: dx = dy - e^y sum dy.
void softmax_bwd(DType dtype, int64_t outer, int64_t D, int64_t inner, const void* y,
                 const void* dy, void* dx, bool log);

}  // namespace fastconv
