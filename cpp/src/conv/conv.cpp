// conv/conv.cpp — the public convolution entry points (fastconv/conv.hpp): choose the
// algorithm, handle empty problems, apply padding (and fold it back for the data gradient),
// allocate the workspace, run; plus the bias gradient and the transposed convolution, which is
// the data gradient of a convolution.
//
// Shapes: x N x C x in, w K x C/groups x kernel, b K, y / dy N x K x out.
#include <algorithm>
#include <cstddef>

#include "algorithm.hpp"
#include "fastconv/errors.hpp"
#include "fastconv/runtime.hpp"
#include "pad.hpp"
#include "util/buffer.hpp"
#include "util/checked.hpp"
#include "util/dtype.hpp"
#include "util/parallel.hpp"

namespace fastconv {

namespace {

using conv::ConvAlgorithm;
using util::with_dtype;

// Threads for a call: about 64K multiply-adds per thread at least.
int threads_for(const ConvProblem& p) {
  const int64_t macs = p.N * p.K * p.out_spatial() * p.C_per_group() * p.kernel_spatial();
  return util::threads_for(macs, int64_t(1) << 16, num_threads());
}

template <typename T>
constexpr DType dtype_of() {
  return sizeof(T) == 4 ? DType::f32 : DType::f64;
}

template <typename T>
void fill(T* p, int64_t n, T value, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

int64_t padded_elements(const ConvProblem& p) {
  const auto ext = conv::padded_extent(p);
  return p.N * p.C * ext[0] * ext[1] * ext[2];
}

// The input as algorithms read it: x itself, or its padded copy held in `storage`.
template <typename T>
const T* padded_input(const ConvProblem& p, const T* x, util::AlignedBuffer& storage,
                      int threads) {
  if (!p.has_padding()) return x;
  storage = util::AlignedBuffer(static_cast<std::size_t>(padded_elements(p)) * sizeof(T),
                                "the padded input");
  conv::pad_input(p, x, storage.as<T>(), threads);
  return storage.as<T>();
}

// Run `algo` in `direction` on the unpadded view of p.
void run(const ConvAlgorithm& algo, ConvDirection direction, const ConvProblem& p, DType dtype,
         const void* x, const void* w, const void* b, const void* dy, void* out, int threads) {
  const auto& kernels = kernels::active_kernels();
  const ConvProblem q = conv::unpadded_view(p);
  util::AlignedBuffer workspace(algo.workspace_bytes(q, dtype, direction, threads, kernels),
                                "the convolution workspace");
  algo.run[static_cast<int>(direction)](
      {q, dtype, x, w, b, dy, out, workspace.as<void>(), threads, kernels});
}

template <typename T>
void forward(const ConvProblem& p, const ConvAlgorithm& algo, const T* x, const T* w, const T* b,
             T* y) {
  if (p.N == 0 || p.K == 0) return;
  const int threads = threads_for(p);
  const int64_t plane = p.out_spatial();
  if (p.C == 0) {  // empty reduction: the output is the bias
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t k = 0; k < p.K; ++k) fill(y + (n * p.K + k) * plane, plane, b ? b[k] : T(0), 1);
    return;
  }
  util::AlignedBuffer storage;
  const T* xin = padded_input(p, x, storage, threads);
  run(algo, ConvDirection::forward, p, dtype_of<T>(), xin, w, b, nullptr, y, threads);
}

template <typename T>
void backward_data(const ConvProblem& p, const ConvAlgorithm& algo, const T* w, const T* dy,
                   T* dx) {
  if (p.N == 0 || p.C == 0) return;
  const int threads = threads_for(p);
  if (p.K == 0) {
    fill(dx, p.N * p.C * p.in_spatial(), T(0), threads);
    return;
  }
  util::AlignedBuffer storage;
  T* target = dx;
  if (p.has_padding()) {
    storage = util::AlignedBuffer(static_cast<std::size_t>(padded_elements(p)) * sizeof(T),
                                  "the padded input gradient");
    target = storage.as<T>();
  }
  fill(target, p.has_padding() ? padded_elements(p) : p.N * p.C * p.in_spatial(), T(0), threads);
  run(algo, ConvDirection::backward_data, p, dtype_of<T>(), nullptr, w, nullptr, dy, target,
      threads);
  if (p.has_padding()) conv::fold_padding(p, target, dx, threads);
}

template <typename T>
void backward_weights(const ConvProblem& p, const ConvAlgorithm& algo, const T* x, const T* dy,
                      T* dw) {
  const int64_t weights = p.K * p.C_per_group() * p.kernel_spatial();
  if (weights == 0) return;
  const int threads = threads_for(p);
  if (p.N == 0) {
    fill(dw, weights, T(0), threads);
    return;
  }
  util::AlignedBuffer storage;
  const T* xin = padded_input(p, x, storage, threads);
  run(algo, ConvDirection::backward_weights, p, dtype_of<T>(), xin, nullptr, nullptr, dy, dw,
      threads);
}

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
  const int threads = threads_for(p);
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
  const ConvAlgorithm& a = conv::select(problem, dtype, ConvDirection::forward, algo);
  with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    forward(problem, a, static_cast<const T*>(x), static_cast<const T*>(w),
            static_cast<const T*>(b), static_cast<T*>(y));
  });
}

void conv_bwd_data(const ConvProblem& problem, DType dtype, const void* w, const void* dy,
                   void* dx, const std::string& algo) {
  const ConvAlgorithm& a = conv::select(problem, dtype, ConvDirection::backward_data, algo);
  with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    backward_data(problem, a, static_cast<const T*>(w), static_cast<const T*>(dy),
                  static_cast<T*>(dx));
  });
}

void conv_bwd_weights(const ConvProblem& problem, DType dtype, const void* x, const void* dy,
                      void* dw, const std::string& algo) {
  const ConvAlgorithm& a = conv::select(problem, dtype, ConvDirection::backward_weights, algo);
  with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    backward_weights(problem, a, static_cast<const T*>(x), static_cast<const T*>(dy),
                     static_cast<T*>(dw));
  });
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
