// conv/algorithm.hpp — what a convolution algorithm is to the registry.
//
// An algorithm implements any of the three directions (forward, backward-data,
// backward-weights), states whether it applies to a problem (an empty reason), how much
// workspace it needs, and computes. The entry points (execute.cpp) apply padding first: the
// problem an algorithm receives has zero padding and `in` holds the padded extents (forward
// algorithms may instead take zero padding on themselves: pads_forward_input).
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "fastconv/conv.hpp"
#include "kernels/kernel_table.hpp"

namespace fastconv::conv {

// The direct methods' (direct, gemm) time per multiply-add on one core in ns, as the cost
// models rank algorithms against them (winograd_model.cpp, fft.cpp): fitted on ResNet-50's and
// VGG-16's 3x3 layers, 0.0208 with one vector FMA pipe (the AMD EPYC), 0.0129 with two (the
// Intel Xeon; kernels' fma_pipes).
inline double direct_ns_per_mac(int fma_pipes) { return fma_pipes >= 2 ? 0.0129 : 0.0208; }

// A plan's packed weights come from memory on every call where it serves a layer of a network
// (the other layers' weights and activations pass through the caches between two calls of
// one layer): the cost models charge this many ns per byte of them, divided among the
// threads. Fitted on the Xeon to the difference between plans timed after a 256 MB sweep and
// back to back (ResNet-50's 3x3 layers, 1 and 2 threads: 0.03-0.06 ns per byte for Winograd's
// transformed weights, 0.05 for direct's packed ones).
constexpr double kColdWeightNsPerByte = 0.045;

// A 1x1 layer at stride 1 without padding whose output covers its input (a transposed
// convolution's output_padding leaves input positions no output reads): its data gradient,
// dX_g = W_g^T dY_g, is the forward convolution of dy by the transposed weights (gemm.cpp runs
// it so; `auto` sends it there).
inline bool data_gradient_is_forward(const ConvProblem& p) {
  return p.kernel_spatial() == 1 && p.stride == std::array<int64_t, 3>{1, 1, 1} &&
         !p.has_padding() && p.out == p.in;
}

// Forward outputs larger than this (a quarter of a core's L2 here) are written with
// non-temporal stores where a driver writes each output element once: no read for ownership
// of every line, at the price of the next layer reading them from memory rather than cache.
constexpr int64_t kStreamOutputBytes = int64_t(512) << 10;

/// Operands of one call. Arrays are dense and C-contiguous; shapes refer to `problem` (an
/// unpadded view: x and dx are the padded input and its gradient).
///   forward:          x, packed_w, b (may be null)  -> out = y (N x K x out)
///   backward_data:    w, dy                  -> out = dx      (N x C x in), zeroed by the caller
///   backward_weights: x, dy                  -> out = dw      (K x C/groups x kernel)
struct ConvArgs {
  const ConvProblem& problem;
  DType dtype;
  const void* x;
  const void* w;
  const void* b;
  const void* dy;
  void* out;
  void* workspace;
  int threads;
  const kernels::KernelTable& kernels;
  // Forward only: the weights as the algorithm's pack_weights laid them out (the entry points
  // pack them per call, a plan once), and the activation applied as the output is written.
  const void* packed_w = nullptr;
  Activation activation = Activation::none;
  // Backward-data only: the box [keep_lo, keep_hi) of the padded input whose gradient the caller
  // keeps (with zero padding, the padding's gradient is dropped). Outside it an algorithm may
  // leave dx as the caller zeroed it.
  std::array<int64_t, 3> keep_lo{0, 0, 0}, keep_hi{0, 0, 0};
  // Backward-data only, for algorithms whose writes_kept_box says so: out holds just the kept
  // box (N x C x (keep_hi - keep_lo)), which the algorithm writes whole.
  bool out_is_kept_box = false;
  // Forward and backward-data, for algorithms that spread non-finite values
  // (ConvAlgorithm::spreads_non_finite): when not null, the caller wants the definition's NaN /
  // Inf pattern, so the algorithm looks for a non-finite value in its input (x, or dy) first,
  // and on finding one sets *non_finite_input and returns without writing the output.
  bool* non_finite_input = nullptr;
  // Forward only: whether an output over kStreamOutputBytes may bypass the caches (false: the
  // caller reads it again at once; OutputStores::cache).
  bool stream_output = true;
  // Forward only, for algorithms whose fuses_residual says so: an array of the output's shape
  // added to each output after the bias and before the activation (a residual block's
  // shortcut), or null.
  const void* residual = nullptr;
};

using ConvRunFn = void (*)(const ConvArgs& args);

// A ConvRunFn that calls the float32 or float64 instantiation of a driver.
template <void (*F32)(const ConvArgs&), void (*F64)(const ConvArgs&)>
void by_dtype(const ConvArgs& a) {
  if (a.dtype == DType::f32) {
    F32(a);
  } else {
    F64(a);
  }
}

// The same for a pack_weights function.
template <void (*F32)(const ConvArgs&, void*), void (*F64)(const ConvArgs&, void*)>
void by_dtype_pack(const ConvArgs& a, void* packed) {
  if (a.dtype == DType::f32) {
    F32(a, packed);
  } else {
    F64(a, packed);
  }
}

struct ConvAlgorithm {
  const char* name;
  const char* description;
  // Entry point per direction (indexed by ConvDirection); null where not implemented.
  ConvRunFn run[3];
  // Empty when the algorithm applies to (problem, dtype, direction), else the reason it does not;
  // null when it applies to every problem of the directions it implements.
  std::string (*why_not)(const ConvProblem& problem, DType dtype, ConvDirection direction);
  // Scratch memory of one call; for the forward direction, besides the packed weights.
  std::size_t (*workspace_bytes)(const ConvProblem& problem, DType dtype, ConvDirection direction,
                                 int threads, const kernels::KernelTable& kernels);
  // The forward weights in the layout its forward reads: their size, and the packing of args.w
  // into `packed` (for the kernels of args.kernels). Required when forward is implemented.
  std::size_t (*packed_weights_bytes)(const ConvProblem& problem, DType dtype,
                                      const kernels::KernelTable& kernels);
  void (*pack_weights)(const ConvArgs& args, void* packed);
  // Whether the algorithm reads a zero-padded forward input as given, padding it itself (e.g.
  // plane by plane in cache): then it receives the problem with its padding and the caller's x.
  // Null: never.
  bool (*pads_forward_input)(const ConvProblem& problem, DType dtype,
                             const kernels::KernelTable& kernels) = nullptr;
  // Whether its backward-data (on the unpadded view `problem`, with args.w the weights) can
  // write the kept box of the input gradient whole into a buffer of just that box (zero
  // padding: the entry point then needs no padded gradient and no fold; no padding: the box is
  // the whole gradient, which the entry point then does not zero). Null: never.
  bool (*writes_kept_box)(const ConvArgs& args) = nullptr;
  // Whether a non-finite input value can reach outputs whose window does not hold it (a
  // transform mixing a tile's inputs, as Winograd's does); see ConvArgs::non_finite_input.
  bool spreads_non_finite = false;
  // Whether its forward on `threads` threads, given args.w without packed weights
  // (args.packed_w null), lays them out itself as it goes, faster than packing them first (the
  // stateless entry points then do not). Null: never.
  bool (*packs_in_forward)(const ConvProblem& problem, DType dtype,
                           const kernels::KernelTable& kernels, int threads) = nullptr;
  // Whether its forward of `problem` (as the algorithm receives it) adds ConvArgs::residual in
  // its output stores. Null: never (the caller adds it in a pass of its own).
  bool (*fuses_residual)(const ConvProblem& problem, DType dtype,
                         const kernels::KernelTable& kernels) = nullptr;

  bool implements(ConvDirection d) const { return run[static_cast<int>(d)] != nullptr; }
  std::string reason_not_applicable(const ConvProblem& p, DType dtype, ConvDirection d) const;
};

// Algorithms, one per file (direct.cpp, gemm.cpp, winograd.cpp, fft.cpp).
const ConvAlgorithm& direct_algorithm();
// Whether the direct algorithm computes p's data gradient (p an unpadded view) as stride-1
// phases on its channel-blocked kernels: a dense layer strided along H or W (direct.cpp).
bool direct_phased_data_gradient(const ConvProblem& p, DType dtype,
                                 const kernels::KernelTable& kernels);
const ConvAlgorithm& gemm_algorithm();
// Winograd F(m, 3) for m = 2, 4, 6; any other m: the entry that picks m per problem.
const ConvAlgorithm& winograd_algorithm(int m);
// Overlap-save FFT tiles (fft.cpp): stride 1, any kernel size.
const ConvAlgorithm& fft_algorithm();

/// Every registered algorithm, best first.
const std::vector<const ConvAlgorithm*>& registry();

/// The algorithm the `auto` rule picks among those that keep the definition's NaN / Inf
/// pattern, when `chosen` (picked by `auto`) spreads non-finite values; null otherwise. The
/// entry points compute an input holding NaN or Inf with it.
const ConvAlgorithm* exact_alternative(const ConvAlgorithm& chosen, const ConvProblem& problem,
                                       DType dtype, ConvDirection direction,
                                       const kernels::KernelTable& kernels);

/// The algorithm `name` names for `direction` ("auto" chooses for the ISA of `kernels`); throws
/// InvalidArgument for an unknown name and Unsupported when the named algorithm does not apply.
/// prepacked: the forward weights will be packed once for many calls (a plan), so `auto` does
/// not count their packing.
const ConvAlgorithm& select(const ConvProblem& problem, DType dtype, ConvDirection direction,
                            const std::string& name,
                            const kernels::KernelTable& kernels = kernels::active_kernels(),
                            bool prepacked = false);

}  // namespace fastconv::conv
