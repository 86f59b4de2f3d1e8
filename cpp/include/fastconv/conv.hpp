// fastconv/conv.hpp — N-d convolution (1-D, 2-D, 3-D) forward, PyTorch semantics.
//
// Layout NC[D]H W for input and output, K C/groups [kD]kH kW for weight; "convolution" is
// cross-correlation as in torch.nn.functional.convNd. A call is two steps: make_conv_problem()
// validates every shape and parameter (64-bit overflow-checked, before any allocation) and
// resolves padding; conv_fwd() computes with a named algorithm or "auto". Arrays are dense,
// C-contiguous, of one dtype. Internally every problem is 3-D: lower ranks get leading spatial
// dims of size 1, so one code path serves all ranks.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fastconv {

enum class DType { f32, f64 };

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
  std::vector<int64_t> stride{1};
  PaddingSpec padding{};
  std::vector<int64_t> dilation{1};
  int64_t groups = 1;
  PaddingMode padding_mode = PaddingMode::zeros;
};

/// A validated convolution problem. Spatial arrays hold (D, H, W); ranks below 3 have leading
/// entries in = kernel = out = stride = dilation = 1 and zero padding.
struct ConvProblem {
  int rank = 2;          ///< spatial rank the user asked for (1, 2 or 3)
  bool batched = true;   ///< input had a batch dimension
  int64_t N = 0;         ///< batch
  int64_t C = 0;         ///< input channels
  int64_t K = 0;         ///< output channels
  int64_t groups = 1;
  std::array<int64_t, 3> in{1, 1, 1}, kernel{1, 1, 1}, out{1, 1, 1};
  std::array<int64_t, 3> stride{1, 1, 1}, dilation{1, 1, 1};
  std::array<int64_t, 3> pad_lo{0, 0, 0}, pad_hi{0, 0, 0};
  PaddingMode padding_mode = PaddingMode::zeros;
  bool has_bias = false;

  int64_t C_per_group() const { return C / groups; }
  int64_t K_per_group() const { return K / groups; }
  int64_t in_spatial() const { return in[0] * in[1] * in[2]; }
  int64_t out_spatial() const { return out[0] * out[1] * out[2]; }
  int64_t kernel_spatial() const { return kernel[0] * kernel[1] * kernel[2]; }
  bool has_padding() const;
  /// Output shape as the user sees it (without the batch dim when the input had none).
  std::vector<int64_t> output_shape() const;
  /// "conv1d" / "conv2d" / "conv3d", used in messages.
  std::string op_name() const;
};

/// Validate shapes and options and resolve padding. `rank` is 1, 2 or 3; input is
/// (N, C, *spatial) or (C, *spatial); weight (K, C/groups, *kernel); bias (K) when present.
/// Throws InvalidArgument or OverflowError with a PyTorch-like message naming the argument.
ConvProblem make_conv_problem(int rank, const std::vector<int64_t>& input_shape,
                              const std::vector<int64_t>& weight_shape,
                              const std::optional<std::vector<int64_t>>& bias_shape,
                              const ConvOptions& options);

/// Forward convolution y = conv(x, w) + b. x, w, b (may be null), y are dense C-contiguous
/// arrays of `dtype` shaped as `problem` says; y is fully written. `algo` is "auto" or a name
/// from conv_algorithm_names(); a named algorithm that does not apply throws Unsupported.
void conv_fwd(const ConvProblem& problem, DType dtype, const void* x, const void* w,
              const void* b, void* y, const std::string& algo = "auto");

/// The algorithm conv_fwd() would run for `algo` (resolves "auto"); throws like conv_fwd().
std::string resolve_conv_algorithm(const ConvProblem& problem, DType dtype,
                                   const std::string& algo);

/// Registered convolution algorithm names, in registry order (best first).
std::vector<std::string> conv_algorithm_names();

/// Registered convolution algorithms with one-line descriptions, in registry order.
std::vector<std::pair<std::string, std::string>> conv_algorithm_descriptions();

}  // namespace fastconv
