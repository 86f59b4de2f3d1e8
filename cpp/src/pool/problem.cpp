// pool/problem.cpp — validation of pooling arguments and output sizes (fastconv/pool.hpp).
//
// Follows PyTorch's pooling_output_shape and pool*_shape_check: out = floor or ceil of
// (in + 2p - d(k-1) - 1) / s, + 1; in ceil mode the last window must start inside the input or
// the left padding; padding is at most half the (effective) kernel, so every window holds at
// least one input element. All sizes are overflow-checked before anything is allocated.
#include <string>

#include "fastconv/errors.hpp"
#include "fastconv/pool.hpp"
#include "util/checked.hpp"
#include "util/format.hpp"

namespace fastconv {

namespace {

using util::checked_add;
using util::checked_mul;
using util::shape_str;

std::string dims_str(const std::array<int64_t, 3>& a, int rank, const char* sep) {
  std::string r;
  for (int d = 3 - rank; d < 3; ++d) r += (r.empty() ? "" : sep) + std::to_string(a[d]);
  return r;
}

[[noreturn]] void invalid(const std::string& op, const std::string& msg) {
  throw InvalidArgument(op + ": " + msg);
}

std::array<int64_t, 3> expand(const std::string& op, const char* name,
                              const std::vector<int64_t>& v, int rank, int64_t fill) {
  if (v.size() != 1 && v.size() != static_cast<size_t>(rank)) {
    invalid(op, std::string(name) + " must either be a single int, or a tuple of " +
                    std::to_string(rank) + " ints, but got " + std::to_string(v.size()) + " values");
  }
  std::array<int64_t, 3> r{fill, fill, fill};
  for (int d = 0; d < rank; ++d) r[3 - rank + d] = v.size() == 1 ? v[0] : v[d];
  return r;
}

// Batch, channels and spatial sizes from an input shape of rank+1 or rank+2 dims. Non-batch
// dims must be non-zero (as PyTorch requires).
void read_input(PoolProblem& p, const std::vector<int64_t>& shape) {
  const size_t nd = shape.size();
  if (nd != static_cast<size_t>(p.rank + 1) && nd != static_cast<size_t>(p.rank + 2)) {
    invalid(p.op, "expected " + std::to_string(p.rank + 1) + "-D (unbatched) or " +
                      std::to_string(p.rank + 2) + "-D (batched) input, but got input of size: " +
                      shape_str(shape));
  }
  p.batched = nd == static_cast<size_t>(p.rank + 2);
  const size_t off = p.batched ? 1 : 0;
  for (size_t i = 0; i < nd; ++i) {
    if (shape[i] < 0 || (i >= off && shape[i] == 0)) {
      invalid(p.op, "expected input with non-zero sizes in its non-batch dimensions, but got "
                    "input of size: " + shape_str(shape));
    }
  }
  p.N = p.batched ? shape[0] : 1;
  p.C = shape[off];
  for (int d = 0; d < p.rank; ++d) p.in[3 - p.rank + d] = shape[off + 1 + d];
}

void check_sizes(const PoolProblem& p) {
  const std::string what = p.op + ": tensor size";
  int64_t in = 1, out = 1;
  for (int d = 0; d < 3; ++d) {
    in = checked_mul(in, p.in[d], what);
    out = checked_mul(out, p.out[d], what);
  }
  const int64_t planes = checked_mul(p.N, p.C, what);
  checked_mul(checked_mul(planes, in, what), 8, what);
  checked_mul(checked_mul(planes, out, what), 8, what);
}

}  // namespace

std::vector<int64_t> PoolProblem::input_shape() const {
  std::vector<int64_t> s;
  if (batched) s.push_back(N);
  s.push_back(C);
  for (int d = 3 - rank; d < 3; ++d) s.push_back(in[d]);
  return s;
}

std::vector<int64_t> PoolProblem::output_shape() const {
  std::vector<int64_t> s;
  if (batched) s.push_back(N);
  s.push_back(C);
  for (int d = 3 - rank; d < 3; ++d) s.push_back(out[d]);
  return s;
}

PoolProblem make_pool_problem(PoolKind kind, int rank, const std::vector<int64_t>& input_shape,
                              const PoolOptions& options, const std::string& op) {
  if (rank < 1 || rank > 3) throw InvalidArgument(op + ": spatial rank must be 1, 2 or 3");
  if (kind != PoolKind::max && kind != PoolKind::avg) {
    throw InvalidArgument(op + ": make_pool_problem takes PoolKind::max or PoolKind::avg");
  }
  PoolProblem p;
  p.op = op;
  p.kind = kind;
  p.rank = rank;
  read_input(p, input_shape);
  p.kernel = expand(op, "kernel_size", options.kernel_size, rank, 1);
  p.stride = options.stride.empty() ? p.kernel : expand(op, "stride", options.stride, rank, 1);
  p.padding = expand(op, "padding", options.padding, rank, 0);
  p.dilation = expand(op, "dilation", options.dilation, rank, 1);
  for (int d = 3 - rank; d < 3; ++d) {
    if (p.kernel[d] <= 0) {
      invalid(op, "kernel size should be greater than zero, but got kernel_size=(" +
                      dims_str(p.kernel, rank, ", ") + ")");
    }
    if (p.stride[d] <= 0) {
      invalid(op, "stride should be greater than zero, but got stride=(" +
                      dims_str(p.stride, rank, ", ") + ")");
    }
    if (p.dilation[d] <= 0) {
      invalid(op, "dilation should be greater than zero, but got dilation=(" +
                      dims_str(p.dilation, rank, ", ") + ")");
    }
    if (p.padding[d] < 0) {
      invalid(op, "pad must be non-negative, but got padding=(" + dims_str(p.padding, rank, ", ") +
                      ")");
    }
  }
  if (kind == PoolKind::avg) {
    for (int d = 3 - rank; d < 3; ++d) {
      if (p.dilation[d] != 1) invalid(op, "average pooling does not take a dilation");
      if (p.padding[d] > p.kernel[d] / 2) {
        invalid(op, "pad should be at most half of kernel size, but got padding=(" +
                        dims_str(p.padding, rank, ", ") + ") and kernel_size=(" +
                        dims_str(p.kernel, rank, ", ") + ")");
      }
    }
    p.count_include_pad = options.count_include_pad;
    if (options.divisor_override) {
      if (*options.divisor_override == 0) invalid(op, "divisor must be not zero");
      p.divisor_override = *options.divisor_override;
    }
  } else {
    for (int d = 3 - rank; d < 3; ++d) {
      const int64_t eff = checked_add(checked_mul(p.dilation[d], p.kernel[d] - 1, op), 1, op);
      if (p.padding[d] > eff / 2) {
        invalid(op, "pad should be at most half of effective kernel size, but got padding=(" +
                        dims_str(p.padding, rank, ", ") + "), kernel_size=(" +
                        dims_str(p.kernel, rank, ", ") + ") and dilation=(" +
                        dims_str(p.dilation, rank, ", ") + ")");
      }
    }
  }

  bool too_small = false;
  const std::string what = op + ": output size";
  for (int d = 3 - rank; d < 3; ++d) {
    const int64_t span = checked_mul(p.dilation[d], p.kernel[d] - 1, what);
    int64_t num = checked_add(p.in[d], checked_mul(p.padding[d], 2, what), what);
    num = checked_add(num, -span - 1, what);
    if (options.ceil_mode) num = checked_add(num, p.stride[d] - 1, what);
    // floor division (num may be negative; no intermediate may overflow)
    int64_t out = num / p.stride[d] - (num % p.stride[d] < 0 ? 1 : 0) + 1;
    if (options.ceil_mode && out > 0 && (out - 1) * p.stride[d] >= p.in[d] + p.padding[d]) --out;
    p.out[d] = out;
    if (out < 1) too_small = true;
  }
  if (too_small) {
    invalid(op, "Given input size: (" + std::to_string(p.C) + "x" + dims_str(p.in, rank, "x") +
                    "). Calculated output size: (" + std::to_string(p.C) + "x" +
                    dims_str(p.out, rank, "x") + "). Output size is too small");
  }
  check_sizes(p);
  return p;
}

PoolProblem make_adaptive_pool_problem(PoolKind kind, int rank,
                                       const std::vector<int64_t>& input_shape,
                                       const std::vector<std::optional<int64_t>>& output_size,
                                       const std::string& op) {
  if (rank < 1 || rank > 3) throw InvalidArgument(op + ": spatial rank must be 1, 2 or 3");
  if (kind != PoolKind::adaptive_max && kind != PoolKind::adaptive_avg) {
    throw InvalidArgument(op + ": make_adaptive_pool_problem takes an adaptive PoolKind");
  }
  PoolProblem p;
  p.op = op;
  p.kind = kind;
  p.rank = rank;
  read_input(p, input_shape);
  if (output_size.size() != 1 && output_size.size() != static_cast<size_t>(rank)) {
    invalid(op, "output_size must either be a single int, or a tuple of " + std::to_string(rank) +
                    " ints, but got " + std::to_string(output_size.size()) + " values");
  }
  for (int d = 0; d < rank; ++d) {
    const auto& v = output_size.size() == 1 ? output_size[0] : output_size[d];
    const int64_t size = v ? *v : p.in[3 - rank + d];
    if (size < 0) {
      invalid(op, "output_size must be non-negative, but got " + std::to_string(size));
    }
    p.out[3 - rank + d] = size;
    checked_mul(checked_add(size, 1, op + ": window arithmetic"), p.in[3 - rank + d],
                op + ": window arithmetic");
  }
  check_sizes(p);
  return p;
}

PoolProblem make_pool_scatter_problem(int rank, const std::vector<int64_t>& input_shape,
                                      const std::vector<int64_t>& grad_output_shape,
                                      const std::vector<int64_t>& indices_shape,
                                      const std::string& op) {
  if (rank < 1 || rank > 3) throw InvalidArgument(op + ": spatial rank must be 1, 2 or 3");
  PoolProblem p;
  p.op = op;
  p.kind = PoolKind::max;
  p.rank = rank;
  read_input(p, input_shape);
  check_shape(op, "indices", indices_shape, grad_output_shape);
  const size_t nd = grad_output_shape.size();
  if (nd != input_shape.size() || grad_output_shape[0] != input_shape[0] ||
      (p.batched && grad_output_shape[1] != input_shape[1])) {
    invalid(op, "expected grad_output with the batch and channel sizes of input_shape " +
                    shape_str(input_shape) + ", but got " + shape_str(grad_output_shape));
  }
  for (int d = 0; d < rank; ++d) {
    const int64_t v = grad_output_shape[nd - rank + d];
    if (v < 0) invalid(op, "grad_output has a negative dimension");
    p.out[3 - rank + d] = v;
  }
  check_sizes(p);
  return p;
}

}  // namespace fastconv
