// conv/problem.cpp — validation of convolution arguments and resolution of padding.
//
// Follows torch.nn.functional.convNd / torch.nn.ConvNd: messages quote PyTorch's wording where
// it has one, prefixed with the op name. Every derived size is computed with overflow-checked
// 64-bit arithmetic, and all checks run before anything is allocated.
#include <string>

#include "fastconv/conv.hpp"
#include "fastconv/errors.hpp"
#include "util/checked.hpp"
#include "util/format.hpp"

namespace fastconv {

namespace {

using util::checked_add;
using util::checked_mul;
using util::shape_str;

[[noreturn]] void invalid(const std::string& op, const std::string& msg) {
  throw InvalidArgument(op + ": " + msg);
}

// Expand a per-dimension option (one value, or one per spatial dim) to (D, H, W) order.
std::array<int64_t, 3> expand(const std::string& op, const char* name,
                              const std::vector<int64_t>& v, int rank, int64_t fill) {
  if (v.size() != 1 && v.size() != static_cast<size_t>(rank)) {
    invalid(op, std::string("expected ") + name + " to be a single integer or a tuple of " +
                    std::to_string(rank) + " integers, but got " + std::to_string(v.size()) +
                    " values");
  }
  std::array<int64_t, 3> r{fill, fill, fill};
  for (int d = 0; d < rank; ++d) r[3 - rank + d] = v.size() == 1 ? v[0] : v[d];
  return r;
}

const char* padding_mode_name(PaddingMode m) {
  switch (m) {
    case PaddingMode::zeros: return "zeros";
    case PaddingMode::reflect: return "reflect";
    case PaddingMode::replicate: return "replicate";
    case PaddingMode::circular: return "circular";
  }
  return "?";
}

// Every buffer any direction may touch must be addressable in bytes (8-byte dtype): the padded
// input, the output, the weight (and a packed copy), im2col blocks, and the batch reduction of
// the weight gradient.
void check_sizes(const ConvProblem& p) {
  const std::string what = p.op + ": tensor size";
  int64_t padded_spatial = 1, out_spatial = 1, kernel_spatial = 1;
  for (int d = 0; d < 3; ++d) {
    const int64_t padded = checked_add(checked_add(p.in[d], p.pad_lo[d], what), p.pad_hi[d], what);
    padded_spatial = checked_mul(padded_spatial, padded, what);
    out_spatial = checked_mul(out_spatial, p.out[d], what);
    kernel_spatial = checked_mul(kernel_spatial, p.kernel[d], what);
  }
  checked_mul(checked_mul(checked_mul(p.N, p.C, what), padded_spatial, what), 8, what);
  const int64_t out_elems = checked_mul(checked_mul(p.N, p.K, what), out_spatial, what);
  checked_mul(out_elems, 8, what);
  const int64_t kd = checked_mul(p.C_per_group(), kernel_spatial, what);
  checked_mul(checked_mul(checked_mul(p.K, kd, what), 8, what), 2, what);
  checked_mul(checked_mul(kd, out_spatial, what), 8, what);
  checked_mul(checked_mul(p.N, out_spatial, what), 8, what);
}

// Ranks and signs of the input (N, C, *spatial) or (C, *spatial) and the weight (A, B, *kernel)
// of a convolution (`family` "conv") or a transposed one ("conv_transpose"). Sets p.batched,
// p.N and p.kernel; returns the input's channels and spatial sizes in (D, H, W) order.
struct InputDims {
  int64_t channels;
  std::array<int64_t, 3> spatial;
};

InputDims read_shapes(ConvProblem& p, const std::vector<int64_t>& input_shape,
                      const std::vector<int64_t>& weight_shape, const std::string& family,
                      const std::string& weight_dims) {
  const int rank = p.rank;
  const std::string& op = p.op;
  const size_t in_nd = input_shape.size();
  if (in_nd != static_cast<size_t>(rank + 1) && in_nd != static_cast<size_t>(rank + 2)) {
    invalid(op, "expected " + std::to_string(rank + 1) + "-D (unbatched) or " +
                    std::to_string(rank + 2) + "-D (batched) input to " + family +
                    std::to_string(rank) + "d, but got input of size: " + shape_str(input_shape));
  }
  static const char* kernel_names[3][3] = {{"kW"}, {"kH", "kW"}, {"kD", "kH", "kW"}};
  if (weight_shape.size() != static_cast<size_t>(rank + 2)) {
    std::string dims;
    for (int d = 0; d < rank; ++d) dims += std::string(", ") + kernel_names[rank - 1][d];
    invalid(op, "expected weight to be " + std::to_string(rank + 2) + "-D (" + weight_dims +
                    dims + "), but got weight of size " + shape_str(weight_shape));
  }
  for (int64_t v : input_shape)
    if (v < 0) invalid(op, "input has a negative dimension: " + shape_str(input_shape));
  for (int64_t v : weight_shape)
    if (v < 0) invalid(op, "weight has a negative dimension: " + shape_str(weight_shape));

  p.batched = in_nd == static_cast<size_t>(rank + 2);
  const size_t off = p.batched ? 1 : 0;
  p.N = p.batched ? input_shape[0] : 1;
  InputDims r{input_shape[off], {1, 1, 1}};
  for (int d = 0; d < rank; ++d) {
    r.spatial[3 - rank + d] = input_shape[off + 1 + d];
    p.kernel[3 - rank + d] = weight_shape[2 + d];
    if (weight_shape[2 + d] == 0) {
      invalid(op, "expected weight to have positive kernel sizes, but got weight of size " +
                      shape_str(weight_shape));
    }
  }
  return r;
}

}  // namespace

PaddingMode parse_padding_mode(const std::string& name) {
  for (PaddingMode m : {PaddingMode::zeros, PaddingMode::reflect, PaddingMode::replicate,
                        PaddingMode::circular}) {
    if (name == padding_mode_name(m)) return m;
  }
  throw InvalidArgument(
      "padding_mode must be one of ['zeros', 'reflect', 'replicate', 'circular'], but got "
      "padding_mode='" + name + "'");
}

PaddingSpec PaddingSpec::from_string(const std::string& s) {
  PaddingSpec p;
  if (s == "same") {
    p.kind = Kind::same;
  } else if (s == "valid") {
    p.kind = Kind::valid;
  } else {
    throw InvalidArgument("Invalid padding string '" + s + "', should be one of {'valid', 'same'}");
  }
  return p;
}

bool ConvProblem::has_padding() const {
  for (int d = 0; d < 3; ++d)
    if (pad_lo[d] || pad_hi[d]) return true;
  return false;
}

namespace {
std::vector<int64_t> activation_shape(const ConvProblem& p, int64_t channels,
                                      const std::array<int64_t, 3>& spatial) {
  std::vector<int64_t> s;
  if (p.batched) s.push_back(p.N);
  s.push_back(channels);
  for (int d = 3 - p.rank; d < 3; ++d) s.push_back(spatial[d]);
  return s;
}
}  // namespace

std::vector<int64_t> ConvProblem::input_shape() const { return activation_shape(*this, C, in); }
std::vector<int64_t> ConvProblem::output_shape() const { return activation_shape(*this, K, out); }
std::vector<int64_t> ConvProblem::weight_shape() const {
  std::vector<int64_t> s{K, C_per_group()};
  for (int d = 3 - rank; d < 3; ++d) s.push_back(kernel[d]);
  return s;
}

const char* direction_name(ConvDirection d) {
  switch (d) {
    case ConvDirection::forward: return "forward";
    case ConvDirection::backward_data: return "backward_data";
    case ConvDirection::backward_weights: return "backward_weights";
  }
  return "?";
}

ConvDirection parse_direction(const std::string& name) {
  for (ConvDirection d : {ConvDirection::forward, ConvDirection::backward_data,
                          ConvDirection::backward_weights}) {
    if (name == direction_name(d)) return d;
  }
  throw InvalidArgument("direction must be one of 'forward', 'backward_data', 'backward_weights', "
                        "but got '" + name + "'");
}

void check_shape(const std::string& op, const char* name, const std::vector<int64_t>& shape,
                 const std::vector<int64_t>& expected) {
  if (shape != expected) {
    throw InvalidArgument(op + ": expected " + name + " of size " + shape_str(expected) +
                          ", but got " + shape_str(shape));
  }
}

ConvProblem make_conv_problem(int rank, const std::vector<int64_t>& input_shape,
                              const std::vector<int64_t>& weight_shape,
                              const std::optional<std::vector<int64_t>>& bias_shape,
                              const ConvOptions& options, const std::string& op_name) {
  if (rank < 1 || rank > 3) {
    throw InvalidArgument("convolution: spatial rank must be 1, 2 or 3, got " +
                          std::to_string(rank));
  }
  ConvProblem p;
  p.rank = rank;
  p.op = op_name.empty() ? "conv" + std::to_string(rank) + "d" : op_name;
  const std::string& op = p.op;
  // --- ranks and raw shapes
  const InputDims in = read_shapes(p, input_shape, weight_shape, "conv",
                                   "out_channels, in_channels/groups");
  p.C = in.channels;
  p.K = weight_shape[0];
  p.in = in.spatial;
  const size_t off = p.batched ? 1 : 0;

  // --- scalar options
  p.stride = expand(op, "stride", options.stride, rank, 1);
  p.dilation = expand(op, "dilation", options.dilation, rank, 1);
  for (int64_t s : p.stride)
    if (s <= 0) invalid(op, "non-positive stride is not supported");
  for (int64_t d : p.dilation)
    if (d <= 0) invalid(op, "dilation should be greater than zero");
  if (options.groups <= 0) invalid(op, "non-positive groups is not supported");
  p.groups = options.groups;
  p.padding_mode = options.padding_mode;

  // --- channels, groups, bias
  if (p.K % p.groups != 0) {
    invalid(op, "Given groups=" + std::to_string(p.groups) +
                    ", expected weight to be divisible by " + std::to_string(p.groups) +
                    " at dimension 0, but got weight of size " + shape_str(weight_shape) +
                    " instead");
  }
  const int64_t expected_c = checked_mul(weight_shape[1], p.groups, op + ": channel count");
  if (p.C != expected_c) {
    invalid(op, "Given groups=" + std::to_string(p.groups) + ", weight of size " +
                    shape_str(weight_shape) + ", expected input" + shape_str(input_shape) +
                    " to have " + std::to_string(expected_c) + " channels, but got " +
                    std::to_string(p.C) + " channels instead");
  }
  if (bias_shape && (bias_shape->size() != 1 || (*bias_shape)[0] != p.K)) {
    invalid(op, "Given weight of size " + shape_str(weight_shape) +
                    ", expected bias to be 1-dimensional with " + std::to_string(p.K) +
                    " elements, but got bias of size " + shape_str(*bias_shape) + " instead");
  }

  // --- padding
  std::array<int64_t, 3> eff{1, 1, 1};  // dilated kernel extent
  for (int d = 0; d < 3; ++d) {
    const int64_t span = checked_mul(p.dilation[d], p.kernel[d] - 1, op + ": dilated kernel size");
    eff[d] = checked_add(span, 1, op + ": dilated kernel size");
  }
  switch (options.padding.kind) {
    case PaddingSpec::Kind::valid:
      break;
    case PaddingSpec::Kind::same:
      for (int64_t s : p.stride)
        if (s != 1) invalid(op, "padding='same' is not supported for strided convolutions");
      for (int d = 0; d < 3; ++d) {
        const int64_t total = eff[d] - 1;
        p.pad_lo[d] = total / 2;
        p.pad_hi[d] = total - p.pad_lo[d];
      }
      break;
    case PaddingSpec::Kind::explicit_values: {
      const auto pad = expand(op, "padding", options.padding.values, rank, 0);
      for (int d = 0; d < 3; ++d) {
        if (pad[d] < 0) invalid(op, "negative padding is not supported");
        p.pad_lo[d] = p.pad_hi[d] = pad[d];
      }
      break;
    }
  }
  if (p.padding_mode != PaddingMode::zeros) {
    for (int d = 3 - rank; d < 3; ++d) {
      const int64_t lo = p.pad_lo[d], hi = p.pad_hi[d], n = p.in[d];
      const std::string where = "padding (" + std::to_string(lo) + ", " + std::to_string(hi) +
                                ") at dimension " + std::to_string(off + 1 + d - (3 - rank)) +
                                " of input " + shape_str(input_shape);
      if (p.padding_mode == PaddingMode::reflect && (lo > 0 || hi > 0) && (lo >= n || hi >= n)) {
        invalid(op, "padding_mode='reflect': Padding size should be less than the corresponding "
                    "input dimension, but got: " + where);
      }
      if (p.padding_mode == PaddingMode::circular && (lo > n || hi > n)) {
        invalid(op, "padding_mode='circular': Padding value causes wrapping around more than "
                    "once: " + where);
      }
      if (p.padding_mode == PaddingMode::replicate && n == 0 && (lo > 0 || hi > 0)) {
        invalid(op, "padding_mode='replicate': cannot pad an empty dimension: " + where);
      }
    }
  }

  // --- output size
  std::array<int64_t, 3> padded{};
  bool too_small = false;
  for (int d = 0; d < 3; ++d) {
    padded[d] = checked_add(checked_add(p.in[d], p.pad_lo[d], op + ": padded input size"),
                            p.pad_hi[d], op + ": padded input size");
    if (padded[d] < eff[d]) too_small = true;
  }
  if (too_small) {
    std::string a, b;
    for (int d = 3 - rank; d < 3; ++d) {
      a += (a.empty() ? "" : " x ") + std::to_string(padded[d]);
      b += (b.empty() ? "" : " x ") + std::to_string(eff[d]);
    }
    invalid(op, "Calculated padded input size per channel: (" + a + "). Kernel size: (" + b +
                    "). Kernel size can't be greater than actual input size");
  }
  for (int d = 0; d < 3; ++d) p.out[d] = (padded[d] - eff[d]) / p.stride[d] + 1;

  check_sizes(p);
  return p;
}

ConvProblem make_conv_transpose_problem(int rank, const std::vector<int64_t>& input_shape,
                                        const std::vector<int64_t>& weight_shape,
                                        const std::optional<std::vector<int64_t>>& bias_shape,
                                        const ConvTransposeOptions& options,
                                        const std::string& op_name) {
  if (rank < 1 || rank > 3) {
    throw InvalidArgument("conv_transpose: spatial rank must be 1, 2 or 3, got " +
                          std::to_string(rank));
  }
  ConvProblem p;
  p.rank = rank;
  p.op = op_name.empty() ? "conv_transpose" + std::to_string(rank) + "d" : op_name;
  const std::string& op = p.op;

  const InputDims in = read_shapes(p, input_shape, weight_shape, "conv_transpose",
                                   "in_channels, out_channels/groups");
  const int64_t c_in = in.channels;
  const std::array<int64_t, 3> t_in = in.spatial;

  p.stride = expand(op, "stride", options.stride, rank, 1);
  p.dilation = expand(op, "dilation", options.dilation, rank, 1);
  const auto pad = expand(op, "padding", options.padding, rank, 0);
  const auto out_pad = expand(op, "output_padding", options.output_padding, rank, 0);
  for (int64_t s : p.stride)
    if (s <= 0) invalid(op, "non-positive stride is not supported");
  for (int64_t d : p.dilation)
    if (d <= 0) invalid(op, "dilation should be greater than zero");
  for (int64_t v : pad)
    if (v < 0) invalid(op, "negative padding is not supported");
  for (int64_t v : out_pad)
    if (v < 0) invalid(op, "negative output_padding is not supported");
  if (options.groups <= 0) invalid(op, "non-positive groups is not supported");
  p.groups = options.groups;
  for (int d = 0; d < 3; ++d) {
    if (out_pad[d] >= p.stride[d] && out_pad[d] >= p.dilation[d]) {
      std::string a, b, c;
      for (int e = 3 - rank; e < 3; ++e) {
        a += (a.empty() ? "" : ", ") + std::to_string(out_pad[e]);
        b += (b.empty() ? "" : ", ") + std::to_string(p.stride[e]);
        c += (c.empty() ? "" : ", ") + std::to_string(p.dilation[e]);
      }
      invalid(op, "output padding must be smaller than either stride or dilation, but got "
                  "output_padding: (" + a + "), stride: (" + b + "), dilation: (" + c + ")");
    }
  }

  // The convolution this is the data gradient of: C = C_out, K = C_in.
  p.K = weight_shape[0];
  if (p.K % p.groups != 0) {
    invalid(op, "Given groups=" + std::to_string(p.groups) +
                    ", expected weight to be divisible by " + std::to_string(p.groups) +
                    " at dimension 0, but got weight of size " + shape_str(weight_shape) +
                    " instead");
  }
  if (c_in != p.K) {
    invalid(op, "Given transposed=1, weight of size " + shape_str(weight_shape) +
                    ", expected input" + shape_str(input_shape) + " to have " +
                    std::to_string(p.K) + " channels, but got " + std::to_string(c_in) +
                    " channels instead");
  }
  p.C = checked_mul(weight_shape[1], p.groups, op + ": channel count");
  if (bias_shape && (bias_shape->size() != 1 || (*bias_shape)[0] != p.C)) {
    invalid(op, "Given transposed=1, weight of size " + shape_str(weight_shape) +
                    ", expected bias to be 1-dimensional with " + std::to_string(p.C) +
                    " elements, but got bias of size " + shape_str(*bias_shape) + " instead");
  }

  // Output size (in-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1.
  const std::string what = op + ": output size";
  bool too_small = false;
  for (int d = 0; d < 3; ++d) {
    int64_t t = checked_mul(t_in[d] - 1, p.stride[d], what);
    t = checked_add(t, -checked_mul(pad[d], 2, what), what);
    t = checked_add(t, checked_mul(p.dilation[d], p.kernel[d] - 1, what), what);
    t = checked_add(checked_add(t, out_pad[d], what), 1, what);
    p.in[d] = t;
    p.out[d] = t_in[d];
    p.pad_lo[d] = p.pad_hi[d] = pad[d];
    if (t < 1) too_small = true;
  }
  if (too_small) {
    std::string a, b;
    for (int d = 3 - rank; d < 3; ++d) {
      a += (a.empty() ? "" : " x ") + std::to_string(t_in[d]);
      b += (b.empty() ? "" : " x ") + std::to_string(p.in[d]);
    }
    invalid(op, "Given input size per channel: (" + a + "). Calculated output size per channel: (" +
                    b + "). Output size is too small");
  }
  check_sizes(p);
  return p;
}

}  // namespace fastconv
