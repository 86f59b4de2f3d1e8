// fastconv/conv.hpp — N-d convolution (1-D, 2-D, 3-D): forward, gradients, and transposed
// convolution, with PyTorch semantics.
//
// Layout NC[D]HW for input and output, K C/groups [kD]kH kW for weight; "convolution" is
// cross-correlation as in torch.nn.functional.convNd. A call is two steps: make_conv_problem()
// (or make_conv_transpose_problem()) validates every shape and parameter (64-bit
// overflow-checked, before any allocation) and resolves padding; then an entry point computes
// one direction with a named algorithm or "auto". Arrays are dense, C-contiguous, of one dtype.
// Internally every problem is 3-D: lower ranks get leading spatial dims of size 1, so one code
// path serves all ranks. A transposed convolution is described by the convolution it is the
// data gradient of: its input is that convolution's output and vice versa.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fastconv/activation.hpp"

namespace fastconv {

/// Element type of every array of a call: float32 (the fast path) or float64.
enum class DType { f32, f64 };

/// The three computations of a convolution layer.
enum class ConvDirection { forward, backward_data, backward_weights };

/// "forward" | "backward_data" | "backward_weights".
const char* direction_name(ConvDirection d);

/// Parse a direction name; throws InvalidArgument otherwise.
ConvDirection parse_direction(const std::string& name);

/// How the input is extended beyond its border (torch.nn.ConvNd's padding_mode).
enum class PaddingMode { zeros, reflect, replicate, circular };

/// Parse "zeros" | "reflect" | "replicate" | "circular"; throws InvalidArgument otherwise.
PaddingMode parse_padding_mode(const std::string& name);

/// Padding as the user gave it: explicit per-dimension values, or "same" / "valid".
struct PaddingSpec {
  enum class Kind { explicit_values, same, valid };
  Kind kind = Kind::explicit_values;
  std::vector<int64_t> values{0};  ///< one value (all dims) or one per spatial dim

  /// Parse "same" | "valid"; throws InvalidArgument otherwise.
  static PaddingSpec from_string(const std::string& s);
};

/// Convolution parameters, as torch.nn.functional.convNd takes them. A vector of one value
/// applies to every spatial dimension; otherwise it has one value per spatial dimension.
struct ConvOptions {
  std::vector<int64_t> stride{1};                 ///< >= 1
  PaddingSpec padding{};                          ///< values >= 0, or "same" / "valid"
  std::vector<int64_t> dilation{1};               ///< >= 1
  int64_t groups = 1;                             ///< divides C and K
  PaddingMode padding_mode = PaddingMode::zeros;  ///< how the padding is filled
};

/// torch.nn.functional.conv_transposeNd's parameters (one value, or one per spatial dim).
struct ConvTransposeOptions {
  std::vector<int64_t> stride{1};          ///< >= 1
  std::vector<int64_t> padding{0};         ///< cropped from both ends of the output, >= 0
  std::vector<int64_t> output_padding{0};  ///< added at the end, < max(stride, dilation)
  int64_t groups = 1;                      ///< divides C_in and C_out
  std::vector<int64_t> dilation{1};        ///< >= 1
};

/// A validated convolution problem. Spatial arrays hold (D, H, W); ranks below 3 have leading
/// entries in = kernel = out = stride = dilation = 1 and zero padding.
struct ConvProblem {
  std::string op = "conv2d";  ///< name used in messages, e.g. "conv2d_input"
  int rank = 2;          ///< spatial rank the user asked for (1, 2 or 3)
  bool batched = true;   ///< input had a batch dimension
  int64_t N = 0;         ///< batch
  int64_t C = 0;         ///< input channels
  int64_t K = 0;         ///< output channels
  int64_t groups = 1;         ///< channel groups (C and K divide by it)
  std::array<int64_t, 3> in{1, 1, 1}, kernel{1, 1, 1}, out{1, 1, 1};  ///< (D, H, W) extents
  std::array<int64_t, 3> stride{1, 1, 1}, dilation{1, 1, 1};          ///< per (D, H, W)
  std::array<int64_t, 3> pad_lo{0, 0, 0}, pad_hi{0, 0, 0};  ///< resolved padding before / after
  PaddingMode padding_mode = PaddingMode::zeros;             ///< how the padding is filled

  int64_t C_per_group() const { return C / groups; }  ///< input channels of one group
  int64_t K_per_group() const { return K / groups; }  ///< output channels of one group
  int64_t in_spatial() const { return in[0] * in[1] * in[2]; }    ///< input positions
  int64_t out_spatial() const { return out[0] * out[1] * out[2]; }  ///< output positions
  int64_t kernel_spatial() const { return kernel[0] * kernel[1] * kernel[2]; }  ///< kernel taps
  bool has_padding() const;  ///< any pad_lo / pad_hi above 0
  /// Shapes of the convolution's operands as the user sees them (no batch dim when unbatched):
  /// (N, C, *in), (N, K, *out) and (K, C / groups, *kernel).
  std::vector<int64_t> input_shape() const;
  std::vector<int64_t> output_shape() const;   ///< see input_shape()
  std::vector<int64_t> weight_shape() const;   ///< see input_shape()
};

/// Validate shapes and options and resolve padding. `rank` is 1, 2 or 3; input is
/// (N, C, *spatial) or (C, *spatial); weight (K, C/groups, *kernel); bias (K) when present.
/// Throws InvalidArgument or OverflowError with a PyTorch-like message naming the argument;
/// messages start with `op` (default "conv<rank>d").
ConvProblem make_conv_problem(int rank, const std::vector<int64_t>& input_shape,
                              const std::vector<int64_t>& weight_shape,
                              const std::optional<std::vector<int64_t>>& bias_shape,
                              const ConvOptions& options, const std::string& op = "");

/// The problem of conv_transpose<rank>d(input, weight, bias): weight (C_in, C_out/groups,
/// *kernel), bias (C_out), output spatial (in-1)*stride - 2*padding + dilation*(k-1) +
/// output_padding + 1. The result describes the convolution whose data gradient it is
/// (C = C_out, K = C_in, in = the transposed output, out = the transposed input).
ConvProblem make_conv_transpose_problem(int rank, const std::vector<int64_t>& input_shape,
                                        const std::vector<int64_t>& weight_shape,
                                        const std::optional<std::vector<int64_t>>& bias_shape,
                                        const ConvTransposeOptions& options,
                                        const std::string& op = "");

/// Throws InvalidArgument "<op>: expected <name> of size [...], but got [...]" unless `shape`
/// equals `expected` (e.g. a grad_output's shape).
void check_shape(const std::string& op, const char* name, const std::vector<int64_t>& shape,
                 const std::vector<int64_t>& expected);

/// Forward convolution y = conv(x, w) + b. x, w, b (may be null), y are dense C-contiguous
/// arrays of `dtype` shaped as `problem` says; y is fully written. `algo` is "auto" or a name
/// from conv_algorithm_names(); a named algorithm that does not apply throws Unsupported.
void conv_fwd(const ConvProblem& problem, DType dtype, const void* x, const void* w,
              const void* b, void* y, const std::string& algo = "auto");

/// Data gradient dx = d(sum(conv(x, w) * dy)) / dx; dx has the input's shape and is fully
/// written (gradients of reflect / replicate / circular padding are folded back into it).
void conv_bwd_data(const ConvProblem& problem, DType dtype, const void* w, const void* dy,
                   void* dx, const std::string& algo = "auto");

/// Weight gradient dw = d(sum(conv(x, w) * dy)) / dw; fully written. Deterministic: the
/// reduction over batch and positions has a fixed order, whatever the thread count.
void conv_bwd_weights(const ConvProblem& problem, DType dtype, const void* x, const void* dy,
                      void* dw, const std::string& algo = "auto");

/// Shape (K) of the bias gradient for a grad_output of `grad_output_shape`: (N, K, *spatial) or
/// (K, *spatial) for spatial rank `rank`. Throws InvalidArgument for another number of dims.
std::vector<int64_t> conv_bias_grad_shape(int rank, const std::vector<int64_t>& grad_output_shape,
                                          const std::string& op = "");

/// Bias gradient db[k] = sum of dy over batch and positions (shapes: conv_bias_grad_shape).
void conv_bwd_bias(int rank, const std::vector<int64_t>& grad_output_shape, DType dtype,
                   const void* dy, void* db, const std::string& op = "");

/// Transposed convolution y = conv_transpose(x, w) + b, for a problem from
/// make_conv_transpose_problem(): the data gradient of that convolution, plus bias.
void conv_transpose_fwd(const ConvProblem& problem, DType dtype, const void* x, const void* w,
                        const void* b, void* y, const std::string& algo = "auto");

/// Gradient of conv_transpose with respect to its input: the forward convolution of dy.
void conv_transpose_bwd_data(const ConvProblem& problem, DType dtype, const void* w,
                             const void* dy, void* dx, const std::string& algo = "auto");

/// Gradient of conv_transpose with respect to its weight (C_in, C_out/groups, *kernel).
void conv_transpose_bwd_weights(const ConvProblem& problem, DType dtype, const void* x,
                                const void* dy, void* dw, const std::string& algo = "auto");

/// The algorithm that `algo` selects for `direction` (resolves "auto"); throws InvalidArgument
/// for an unknown name and Unsupported when the named algorithm does not apply.
std::string resolve_conv_algorithm(const ConvProblem& problem, DType dtype,
                                   ConvDirection direction, const std::string& algo);

/// Registered convolution algorithm names in registry order (best first); with a direction,
/// only those implementing it.
std::vector<std::string> conv_algorithm_names(std::optional<ConvDirection> direction = {});

/// Registered convolution algorithms with one-line descriptions, in registry order.
std::vector<std::pair<std::string, std::string>> conv_algorithm_descriptions();

}  // namespace fastconv
