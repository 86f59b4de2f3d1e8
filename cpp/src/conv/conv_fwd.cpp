// conv/conv_fwd.cpp — the forward entry point: choose the algorithm, handle empty problems,
// apply padding, allocate the workspace, run.
//
// Shapes: x N x C x in, w K x C/groups x kernel, b K, y N x K x out (see fastconv/conv.hpp).
#include <algorithm>
#include <cstddef>

#include "algorithm.hpp"
#include "fastconv/errors.hpp"
#include "fastconv/runtime.hpp"
#include "pad.hpp"
#include "util/buffer.hpp"

namespace fastconv {

namespace {

template <typename T>
void fill_with_bias(const ConvProblem& p, const T* b, T* y) {
  const int64_t plane = p.out_spatial();
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t k = 0; k < p.K; ++k)
      std::fill(y + (n * p.K + k) * plane, y + (n * p.K + k + 1) * plane, b ? b[k] : T(0));
}

template <typename T>
void run(const ConvProblem& p, const conv::ConvAlgorithm& algo, const T* x, const T* w,
         const T* b, T* y) {
  if (p.N == 0 || p.K == 0) return;
  if (p.C == 0) {  // empty reduction: the output is the bias
    fill_with_bias(p, b, y);
    return;
  }
  const int threads = num_threads();
  const auto& kernels = kernels::active_kernels();
  const DType dtype = sizeof(T) == 4 ? DType::f32 : DType::f64;

  util::AlignedBuffer padded;
  const T* xin = x;
  if (p.has_padding()) {
    const auto ext = conv::padded_extent(p);
    padded = util::AlignedBuffer(
        static_cast<std::size_t>(p.N * p.C * ext[0] * ext[1] * ext[2]) * sizeof(T),
        "the padded input");
    conv::pad_input(p, x, padded.as<T>(), threads);
    xin = padded.as<T>();
  }
  const ConvProblem q = conv::unpadded_view(p);
  util::AlignedBuffer workspace(algo.workspace_bytes(q, dtype, threads, kernels),
                                "the convolution workspace");
  algo.forward({q, dtype, xin, w, b, y, workspace.as<void>(), threads, kernels});
}

}  // namespace

void conv_fwd(const ConvProblem& problem, DType dtype, const void* x, const void* w,
              const void* b, void* y, const std::string& algo) {
  const conv::ConvAlgorithm& a = conv::select(problem, dtype, algo);
  if (dtype == DType::f32) {
    run(problem, a, static_cast<const float*>(x), static_cast<const float*>(w),
        static_cast<const float*>(b), static_cast<float*>(y));
  } else {
    run(problem, a, static_cast<const double*>(x), static_cast<const double*>(w),
        static_cast<const double*>(b), static_cast<double*>(y));
  }
}

std::string resolve_conv_algorithm(const ConvProblem& problem, DType dtype,
                                   const std::string& algo) {
  return conv::select(problem, dtype, algo).name;
}

std::vector<std::string> conv_algorithm_names() {
  std::vector<std::string> names;
  for (const auto* a : conv::registry()) names.push_back(a->name);
  return names;
}

std::vector<std::pair<std::string, std::string>> conv_algorithm_descriptions() {
  std::vector<std::pair<std::string, std::string>> r;
  for (const auto* a : conv::registry()) r.emplace_back(a->name, a->description);
  return r;
}

}  // namespace fastconv
