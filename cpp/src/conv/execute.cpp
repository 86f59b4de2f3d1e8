// conv/execute.cpp — see execute.hpp. An algorithm receives the unpadded view of a problem: the
// input arrives padded (or, for the data gradient, the gradient of the padded input is computed
// and folded back), so no algorithm handles padding modes itself. With zero padding an
// algorithm may instead take the forward input as given and pad it itself (pads_forward_input),
// or (with zero padding or none) write the data gradient's kept box straight into dx, which
// is then neither zeroed nor folded (writes_kept_box).
#include "execute.hpp"

#include <algorithm>
#include <cstddef>

#include "activation.hpp"
#include "fastconv/runtime.hpp"
#include "pad.hpp"
#include "util/buffer.hpp"
#include "util/checked.hpp"
#include "util/dtype.hpp"
#include "util/parallel.hpp"

namespace fastconv::conv {

namespace {

using util::dtype_of;
using util::dtype_size;
using util::with_dtype;

template <typename T>
void fill(T* p, int64_t n, T value, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

int64_t padded_elements(const ConvProblem& p) {
  const auto ext = padded_extent(p);
  return p.N * p.C * ext[0] * ext[1] * ext[2];
}

// The input as algorithms read it: x itself, or its padded copy held in `storage`.
template <typename T>
const T* padded_input(const ConvProblem& p, const T* x, util::AlignedBuffer& storage,
                      int threads) {
  if (!p.has_padding()) return x;
  storage = util::AlignedBuffer(static_cast<std::size_t>(padded_elements(p)) * sizeof(T),
                                "the padded input");
  pad_input(p, x, storage.as<T>(), threads);
  return storage.as<T>();
}

bool pads_itself(const ConvAlgorithm& algo, const ConvProblem& p, DType dtype,
                 const kernels::KernelTable& kernels) {
  return algo.pads_forward_input && p.padding_mode == PaddingMode::zeros &&
         algo.pads_forward_input(p, dtype, kernels);
}

// Run `algo` in `direction` on q: the unpadded view of p, or (forward) p itself.
void run(const ConvAlgorithm& algo, ConvDirection direction, const ConvProblem& p,
         const ConvProblem& q, DType dtype, const void* x, const void* w, const void* b,
         const void* dy, void* out, int threads, const kernels::KernelTable& kernels,
         const void* packed_w = nullptr, Activation act = Activation::none,
         bool out_is_kept_box = false, bool* non_finite_input = nullptr,
         bool stream_output = true, const void* residual = nullptr) {
  util::AlignedBuffer workspace(algo.workspace_bytes(q, dtype, direction, threads, kernels),
                                "the convolution workspace");
  ConvArgs args{q, dtype, x, w, b, dy, out, workspace.as<void>(), threads, kernels};
  args.activation = act;
  args.packed_w = packed_w;
  args.keep_hi = q.in;
  if (p.padding_mode == PaddingMode::zeros) {  // fold_padding() only copies the interior
    for (int d = 0; d < 3; ++d) args.keep_lo[d] = p.pad_lo[d], args.keep_hi[d] = q.in[d] - p.pad_hi[d];
  }
  args.out_is_kept_box = out_is_kept_box;
  args.non_finite_input = non_finite_input;
  args.stream_output = stream_output;
  args.residual = residual;
  algo.run[static_cast<int>(direction)](args);
}

// Images per run of a batch whose per-call copies (`image_bytes` per image) must fit the
// workspace limit (fastconv/runtime.hpp): the whole batch when it fits, else as many images as
// fit, at least one.
int64_t images_per_run(const ConvProblem& p, DType dtype, int64_t image_bytes) {
  const int64_t limit = scratch_limit(p, dtype);
  if (image_bytes <= 0 || image_bytes * p.N <= limit) return std::max<int64_t>(p.N, 1);
  return std::max<int64_t>(1, limit / image_bytes);
}

// p restricted to `count` images (the caller offsets the operands).
ConvProblem images(const ConvProblem& p, int64_t count) {
  ConvProblem q = p;
  q.N = count;
  return q;
}

int64_t padded_image_bytes(const ConvProblem& p, DType dtype) {
  return p.has_padding() ? padded_elements(images(p, 1)) * static_cast<int64_t>(dtype_size(dtype)) : 0;
}

template <typename T>
void forward(const ConvAlgorithm& algo, const ConvProblem& p, const T* x, const T* w,
             const void* packed_w, const T* b, Activation act, T* y,
             const kernels::KernelTable& kernels, const ConvAlgorithm* exact, bool stream_output,
             const T* residual) {
  if (p.N == 0 || p.K == 0) return;
  const int threads = threads_for(p);
  const int64_t plane = p.out_spatial();
  if (p.C == 0) {  // empty reduction: the output is the activated bias
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t k = 0; k < p.K; ++k) {
        T* yk = y + (n * p.K + k) * plane;
        fill(yk, plane, b ? b[k] : T(0), 1);
        activate(act, yk, plane);
      }
    return;
  }
  constexpr DType dtype = dtype_of<T>();
  const bool own_padding = pads_itself(algo, p, dtype, kernels);
  util::AlignedBuffer packed;  // the weights packed once for every run of images
  const ConvProblem q = own_padding ? p : unpadded_view(p);
  if (!packed_w && !(algo.packs_in_forward && algo.packs_in_forward(q, dtype, kernels, threads))) {
    packed = util::AlignedBuffer(algo.packed_weights_bytes(q, dtype, kernels), "the packed weights");
    algo.pack_weights({q, dtype, nullptr, w, nullptr, nullptr, nullptr, nullptr, threads, kernels},
                      packed.as<void>());
    packed_w = packed.as<void>();
  }
  const int64_t run_n = own_padding ? p.N : images_per_run(p, dtype, padded_image_bytes(p, dtype));
  const int64_t x_image = p.C * p.in_spatial(), y_image = p.K * plane;
  util::AlignedBuffer storage;
  bool non_finite = false;
  bool* check = exact && algo.spreads_non_finite ? &non_finite : nullptr;
  for (int64_t n0 = 0; n0 < p.N && !non_finite; n0 += run_n) {
    const ConvProblem pr = images(p, std::min(run_n, p.N - n0));
    const T* xr = x + n0 * x_image;
    const T* xin = own_padding ? xr : padded_input(pr, xr, storage, threads);
    run(algo, ConvDirection::forward, pr, own_padding ? pr : unpadded_view(pr), dtype, xin, w, b,
        nullptr, y + n0 * y_image, threads, kernels, packed_w, act, false, check, stream_output,
        residual ? residual + n0 * y_image : nullptr);
  }
  if (non_finite)
    forward(*exact, p, x, w, nullptr, b, act, y, kernels, nullptr, stream_output, residual);
}

template <typename T>
void backward_data(const ConvAlgorithm& algo, const ConvProblem& p, const T* w, const T* dy,
                   T* dx, const ConvAlgorithm* exact) {
  if (p.N == 0 || p.C == 0) return;
  const int threads = threads_for(p);
  if (p.K == 0) {
    fill(dx, p.N * p.C * p.in_spatial(), T(0), threads);
    return;
  }
  constexpr DType dtype = dtype_of<T>();
  const int64_t x_image = p.C * p.in_spatial(), y_image = p.K * p.out_spatial();
  const kernels::KernelTable& kernels = kernels::active_kernels();
  bool non_finite = false;
  bool* check = exact && algo.spreads_non_finite ? &non_finite : nullptr;
  if ((!p.has_padding() || p.padding_mode == PaddingMode::zeros) && algo.writes_kept_box) {
    // The kept box of the padded gradient is dx itself: an algorithm that writes it whole
    // needs no padded copy and no fold (and without padding, no zeroed dx).
    const ConvProblem q = unpadded_view(p);
    ConvArgs probe{q, dtype, nullptr, w, nullptr, dy, dx, nullptr, threads, kernels};
    for (int d = 0; d < 3; ++d) probe.keep_lo[d] = p.pad_lo[d], probe.keep_hi[d] = q.in[d] - p.pad_hi[d];
    if (algo.writes_kept_box(probe)) {
      run(algo, ConvDirection::backward_data, p, q, dtype, nullptr, w, nullptr, dy, dx, threads,
          kernels, nullptr, Activation::none, true, check);
      if (non_finite) backward_data(*exact, p, w, dy, dx, nullptr);
      return;
    }
  }
  const int64_t run_n = images_per_run(p, dtype, padded_image_bytes(p, dtype));
  util::AlignedBuffer storage;
  if (p.has_padding()) {
    storage = util::AlignedBuffer(
        static_cast<std::size_t>(padded_elements(images(p, run_n))) * sizeof(T),
        "the padded input gradient");
  }
  for (int64_t n0 = 0; n0 < p.N; n0 += run_n) {
    const ConvProblem pr = images(p, std::min(run_n, p.N - n0));
    T* target = p.has_padding() ? storage.as<T>() : dx + n0 * x_image;
    fill(target, p.has_padding() ? padded_elements(pr) : pr.N * x_image, T(0), threads);
    run(algo, ConvDirection::backward_data, pr, unpadded_view(pr), dtype, nullptr, w, nullptr,
        dy + n0 * y_image, target, threads, kernels, nullptr, Activation::none, false, check);
    if (non_finite) {
      backward_data(*exact, p, w, dy, dx, nullptr);
      return;
    }
    if (p.has_padding()) fold_padding(pr, target, dx + n0 * x_image, threads);
  }
}

template <typename T>
void backward_weights(const ConvAlgorithm& algo, const ConvProblem& p, const T* x, const T* dy,
                      T* dw) {
  const int64_t weights = p.K * p.C_per_group() * p.kernel_spatial();
  if (weights == 0) return;
  const int threads = threads_for(p);
  if (p.N == 0) {
    fill(dw, weights, T(0), threads);
    return;
  }
  // Runs of images whose padded copies fit the workspace limit; after the first, each run's
  // gradient is added to dw (a fixed order, whatever the thread count).
  constexpr DType dtype = dtype_of<T>();
  const int64_t run_n = images_per_run(p, dtype, padded_image_bytes(p, dtype));
  const int64_t x_image = p.C * p.in_spatial(), y_image = p.K * p.out_spatial();
  util::AlignedBuffer storage, partial;
  if (run_n < p.N) partial = util::AlignedBuffer(static_cast<std::size_t>(weights) * sizeof(T), "a weight gradient");
  for (int64_t n0 = 0; n0 < p.N; n0 += run_n) {
    const ConvProblem pr = images(p, std::min(run_n, p.N - n0));
    const T* xin = padded_input(pr, x + n0 * x_image, storage, threads);
    T* out = n0 == 0 ? dw : partial.as<T>();
    run(algo, ConvDirection::backward_weights, pr, unpadded_view(pr), dtype, xin, nullptr,
        nullptr, dy + n0 * y_image, out, threads, kernels::active_kernels());
    if (n0 > 0)
      for (int64_t i = 0; i < weights; ++i) dw[i] += out[i];
  }
}

}  // namespace

int64_t scratch_limit(const ConvProblem& p, DType dtype) {
  const int64_t limit = workspace_limit();
  if (limit > 0) return limit;
  constexpr int64_t kDefault = int64_t(16) << 20;
  return std::max(kDefault, p.N * p.C * p.in_spatial() * static_cast<int64_t>(dtype_size(dtype)));
}

int threads_for(const ConvProblem& p) {
  const int64_t macs = p.N * p.K * p.out_spatial() * p.C_per_group() * p.kernel_spatial();
  return util::threads_for(macs, int64_t(1) << 16, num_threads());
}

void execute_forward(const ConvAlgorithm& algo, const ConvProblem& p, DType dtype, const void* x,
                     const void* w, const void* packed_w, const void* b, Activation act, void* y,
                     const kernels::KernelTable& kernels, const ConvAlgorithm* exact,
                     bool stream_output, const void* residual) {
  with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    forward(algo, p, static_cast<const T*>(x), static_cast<const T*>(w), packed_w,
            static_cast<const T*>(b), act, static_cast<T*>(y), kernels, exact, stream_output,
            static_cast<const T*>(residual));
  });
}

void execute_backward_data(const ConvAlgorithm& algo, const ConvProblem& p, DType dtype,
                           const void* w, const void* dy, void* dx, const ConvAlgorithm* exact) {
  with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    backward_data(algo, p, static_cast<const T*>(w), static_cast<const T*>(dy),
                  static_cast<T*>(dx), exact);
  });
}

void execute_backward_weights(const ConvAlgorithm& algo, const ConvProblem& p, DType dtype,
                              const void* x, const void* dy, void* dw) {
  with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    backward_weights(algo, p, static_cast<const T*>(x), static_cast<const T*>(dy),
                     static_cast<T*>(dw));
  });
}

ConvProblem forward_view(const ConvAlgorithm& algo, const ConvProblem& p, DType dtype,
                         const kernels::KernelTable& kernels) {
  return pads_itself(algo, p, dtype, kernels) ? p : unpadded_view(p);
}

std::size_t forward_scratch_bytes(const ConvAlgorithm& algo, const ConvProblem& p, DType dtype,
                                  int threads, const kernels::KernelTable& kernels) {
  if (p.N == 0 || p.K == 0 || p.C == 0) return 0;
  const bool copy = p.has_padding() && !pads_itself(algo, p, dtype, kernels);
  const int64_t image = padded_image_bytes(p, dtype);
  const std::size_t padded = copy ? static_cast<std::size_t>(image * images_per_run(p, dtype, image)) : 0;
  return padded + algo.workspace_bytes(forward_view(algo, p, dtype, kernels), dtype,
                                       ConvDirection::forward, threads, kernels);
}

}  // namespace fastconv::conv
