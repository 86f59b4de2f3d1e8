// conv/conv.cpp — the public convolution entry points (fastconv/conv.hpp): choose the
// algorithm and run it (execute.hpp); plus the bias gradient and the transposed convolution,
// which is the data gradient of a convolution.
//
// Shapes: x N x C x in, w K x C/groups x kernel, b K, y / dy N x K x out.
#include "algorithm.hpp"
#include "execute.hpp"
#include "fastconv/errors.hpp"
#include "fastconv/runtime.hpp"
#include "util/checked.hpp"
#include "util/dtype.hpp"
#include "util/parallel.hpp"

namespace fastconv {

namespace {

using conv::ConvAlgorithm;
using util::with_dtype;

// db[k] = sum over n and positions of dy[n][k] (dy N x K x plane), accumulated in double in a
// fixed order and rounded once: a plain sum has no other products to hide its rounding behind,
// and the terms of a gradient often nearly cancel.
template <typename T>
void backward_bias(int64_t N, int64_t K, int64_t plane, const T* dy, T* db) {
  const int threads = util::threads_for(N * K * plane, int64_t(1) << 14, num_threads());
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t k = 0; k < K; ++k) {
    double total = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const T* row = dy + (n * K + k) * plane;
      for (int64_t i = 0; i < plane; ++i) total += row[i];
    }
    db[k] = static_cast<T>(total);
  }
}

// y[n][c] += b[c] over the planes of an N x C x in array.
template <typename T>
void add_channel_bias(const ConvProblem& p, const T* b, T* y) {
  const int64_t plane = p.in_spatial();
  const int threads = conv::threads_for(p);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t nc = 0; nc < p.N * p.C; ++nc) {
    T* row = y + nc * plane;
    const T v = b[nc % p.C];
    for (int64_t i = 0; i < plane; ++i) row[i] += v;
  }
}

}  // namespace

void conv_fwd(const ConvProblem& problem, DType dtype, const void* x, const void* w,
              const void* b, void* y, const std::string& algo) {
  const kernels::KernelTable& kernels = kernels::active_kernels();
  const ConvAlgorithm& a = conv::select(problem, dtype, ConvDirection::forward, algo, kernels);
  const ConvAlgorithm* exact =
      algo == "auto" ? conv::exact_alternative(a, problem, dtype, ConvDirection::forward, kernels)
                     : nullptr;
  conv::execute_forward(a, problem, dtype, x, w, nullptr, b, Activation::none, y, kernels, exact);
}

void conv_bwd_data(const ConvProblem& problem, DType dtype, const void* w, const void* dy,
                   void* dx, const std::string& algo) {
  const kernels::KernelTable& kernels = kernels::active_kernels();
  const ConvAlgorithm& a = conv::select(problem, dtype, ConvDirection::backward_data, algo, kernels);
  const ConvAlgorithm* exact =
      algo == "auto"
          ? conv::exact_alternative(a, problem, dtype, ConvDirection::backward_data, kernels)
          : nullptr;
  conv::execute_backward_data(a, problem, dtype, w, dy, dx, exact);
}

void conv_bwd_weights(const ConvProblem& problem, DType dtype, const void* x, const void* dy,
                      void* dw, const std::string& algo) {
  const ConvAlgorithm& a = conv::select(problem, dtype, ConvDirection::backward_weights, algo);
  conv::execute_backward_weights(a, problem, dtype, x, dy, dw);
}

std::vector<int64_t> conv_bias_grad_shape(int rank, const std::vector<int64_t>& grad_output_shape,
                                          const std::string& op_name) {
  const std::string op = op_name.empty() ? "conv" + std::to_string(rank) + "d_bias" : op_name;
  const size_t nd = grad_output_shape.size();
  if (rank < 1 || rank > 3 ||
      (nd != static_cast<size_t>(rank + 1) && nd != static_cast<size_t>(rank + 2))) {
    throw InvalidArgument(op + ": expected grad_output to be " + std::to_string(rank + 1) +
                          "-D (unbatched) or " + std::to_string(rank + 2) +
                          "-D (batched), but got " + std::to_string(nd) + "-D");
  }
  return {grad_output_shape[nd - rank - 1]};
}

void conv_bwd_bias(int rank, const std::vector<int64_t>& grad_output_shape, DType dtype,
                   const void* dy, void* db, const std::string& op) {
  const int64_t K = conv_bias_grad_shape(rank, grad_output_shape, op)[0];
  const bool batched = grad_output_shape.size() == static_cast<size_t>(rank + 2);
  const int64_t N = batched ? grad_output_shape[0] : 1;
  int64_t plane = 1;
  for (size_t d = grad_output_shape.size() - rank; d < grad_output_shape.size(); ++d)
    plane = util::checked_mul(plane, grad_output_shape[d], "grad_output size");
  with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    backward_bias(N, K, plane, static_cast<const T*>(dy), static_cast<T*>(db));
  });
}

void conv_transpose_fwd(const ConvProblem& problem, DType dtype, const void* x, const void* w,
                        const void* b, void* y, const std::string& algo) {
  conv_bwd_data(problem, dtype, w, x, y, algo);
  if (!b) return;
  with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    add_channel_bias(problem, static_cast<const T*>(b), static_cast<T*>(y));
  });
}

void conv_transpose_bwd_data(const ConvProblem& problem, DType dtype, const void* w,
                             const void* dy, void* dx, const std::string& algo) {
  conv_fwd(problem, dtype, dy, w, nullptr, dx, algo);
}

void conv_transpose_bwd_weights(const ConvProblem& problem, DType dtype, const void* x,
                                const void* dy, void* dw, const std::string& algo) {
  conv_bwd_weights(problem, dtype, dy, x, dw, algo);
}

std::string resolve_conv_algorithm(const ConvProblem& problem, DType dtype,
                                   ConvDirection direction, const std::string& algo) {
  return conv::select(problem, dtype, direction, algo).name;
}

std::vector<std::string> conv_algorithm_names(std::optional<ConvDirection> direction) {
  std::vector<std::string> names;
  for (const auto* a : conv::registry())
    if (!direction || a->implements(*direction)) names.push_back(a->name);
  return names;
}

std::vector<std::pair<std::string, std::string>> conv_algorithm_descriptions() {
  std::vector<std::pair<std::string, std::string>> r;
  for (const auto* a : conv::registry()) r.emplace_back(a->name, a->description);
  return r;
}

}  // namespace fastconv
