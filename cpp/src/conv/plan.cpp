// conv/plan.cpp — fastconv::ConvPlan (fastconv/plan.hpp): the weights packed once by the chosen
// algorithm's pack_weights for the kernels active at creation, then forward calls that pass
// them to the same execution path as the stateless conv_fwd (execute.hpp). relu and relu6 are
// clamped in the stores; other activations take one pass over the output afterwards. A
// residual is added in the stores too where the algorithm can (ConvAlgorithm::fuses_residual:
// GEMM's, but for its transposed product: ResNet-50's 1x1 64 -> 256 on 56 x 56 with its
// shortcut, 1 thread: 0.88 -> 0.76 ms, 0.65 without; ResNet-50 inference 58.0 -> 57.0 ms),
// else in a pass of its own with the activation.
#include "fastconv/plan.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "algorithm.hpp"
#include "execute.hpp"
#include "fastconv/errors.hpp"
#include "fastconv/runtime.hpp"
#include "pad.hpp"
#include "util/buffer.hpp"
#include "util/checked.hpp"
#include "util/dtype.hpp"
#include "util/parallel.hpp"

namespace fastconv {

struct ConvPlan::State {
  ConvProblem problem;
  DType dtype = DType::f32;
  const conv::ConvAlgorithm* algo = nullptr;
  // `auto` picked an algorithm that spreads non-finite values: the one that computes an input
  // holding NaN or Inf instead, from a copy of the weights as given.
  const conv::ConvAlgorithm* exact = nullptr;
  util::AlignedBuffer weights;
  std::string algo_name;
  const kernels::KernelTable* kernels = nullptr;
  Activation activation = Activation::none;
  OutputStores stores = OutputStores::stream;
  bool fuses_residual = false;  // the algorithm adds a residual in its stores
  util::AlignedBuffer packed, bias;
  std::size_t packed_bytes = 0, bias_bytes = 0;
};

ConvPlan::ConvPlan(const ConvProblem& problem, DType dtype, const void* weight, const void* bias,
                   const std::string& algorithm, Activation activation, const std::string& isa,
                   OutputStores stores) {
  auto s = std::make_shared<State>();
  s->kernels = isa.empty() ? &kernels::active_kernels() : &kernels::kernels_for(isa);
  s->problem = problem;
  s->dtype = dtype;
  s->algo = &conv::select(problem, dtype, ConvDirection::forward, algorithm, *s->kernels, true);
  s->algo_name = s->algo->name;
  if (has_parameters(activation)) {
    throw InvalidArgument(problem.op + ": a plan applies activations without parameters; '" +
                          activation_name(activation) + "' takes some");
  }
  s->activation = activation;
  s->stores = stores;
  const std::size_t elem = util::dtype_size(dtype);
  if (algorithm == "auto")
    s->exact = conv::exact_alternative(*s->algo, problem, dtype, ConvDirection::forward, *s->kernels);
  if (s->exact) {
    const std::size_t bytes =
        static_cast<std::size_t>(problem.K * problem.C_per_group() * problem.kernel_spatial()) * elem;
    s->weights = util::AlignedBuffer(bytes, "the plan's weights");
    if (bytes > 0) std::memcpy(s->weights.as<void>(), weight, bytes);
    s->packed_bytes += bytes;
  }
  if (bias && problem.K > 0) {
    s->bias_bytes = static_cast<std::size_t>(problem.K) * elem;
    s->bias = util::AlignedBuffer(s->bias_bytes, "the plan's bias");
    std::memcpy(s->bias.as<void>(), bias, s->bias_bytes);
  }
  if (problem.N > 0 && problem.K > 0 && problem.C > 0) {  // else forward computes nothing
    const ConvProblem q = conv::forward_view(*s->algo, problem, dtype, *s->kernels);
    s->packed_bytes += s->algo->packed_weights_bytes(q, dtype, *s->kernels);
    s->packed = util::AlignedBuffer(s->algo->packed_weights_bytes(q, dtype, *s->kernels),
                                    "the plan's packed weights");
    const conv::ConvArgs args{q,       dtype,   nullptr, weight,
                              nullptr, nullptr, nullptr, nullptr,
                              conv::threads_for(problem), *s->kernels};
    s->algo->pack_weights(args, s->packed.as<void>());
    s->fuses_residual = !s->exact && s->algo->fuses_residual &&
                        s->algo->fuses_residual(q, dtype, *s->kernels);
  }
  state_ = std::move(s);
}

namespace {

// y = act(y + r) over n elements, threaded; the clamps inline, other activations in a second
// sweep of each chunk while it is in cache.
template <typename T>
void add_activate(Activation act, int64_t n, T* y, const T* r, DType dtype) {
  constexpr int64_t kChunk = 16384;
  const int64_t chunks = util::ceil_div(n, kChunk);
  const int threads = util::threads_for(n, kChunk, num_threads());
  const T hi = act == Activation::relu6 ? T(6) : std::numeric_limits<T>::infinity();
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk, i1 = std::min(n, i0 + kChunk);
    if (is_clamp(act)) {
      for (int64_t i = i0; i < i1; ++i) {
        const T v = y[i] + r[i];
        y[i] = v < T(0) ? T(0) : (v > hi ? hi : v);  // NaN fails both tests and stays
      }
    } else {
      for (int64_t i = i0; i < i1; ++i) y[i] += r[i];
      if (act != Activation::none) activation_fwd(act, 0, 0, dtype, i1 - i0, y + i0, y + i0);
    }
  }
}

}  // namespace

void ConvPlan::forward(const void* x, void* y) const { forward(x, y, nullptr); }

void ConvPlan::forward(const void* x, void* y, const void* residual) const {
  const State& s = *state_;
  // The residual in the stores where the algorithm adds it there; the clamps go into the
  // stores, unless a residual must be added after them.
  const bool in_stores = residual && s.fuses_residual;
  const bool after = residual && !in_stores;
  const Activation fused = is_clamp(s.activation) && !after ? s.activation : Activation::none;
  // A pass over the output follows (the residual, or an activation not fused): through the caches.
  const bool again = after || s.activation != fused;
  conv::execute_forward(*s.algo, s.problem, s.dtype, x, s.weights.as<void>(), s.packed.as<void>(),
                        s.bias.as<void>(), fused, y, *s.kernels, s.exact,
                        s.stores == OutputStores::stream && !again, in_stores ? residual : nullptr);
  if (s.activation == fused && !after) return;
  const auto shape = s.problem.output_shape();
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (!after) {  // not a clamp: one pass over the output, just written
    activation_fwd(s.activation, 0, 0, s.dtype, n, y, y);
    return;
  }
  util::with_dtype(s.dtype, [&](auto t) {
    using T = decltype(t);
    add_activate(s.activation, n, static_cast<T*>(y), static_cast<const T*>(residual), s.dtype);
  });
}

const ConvProblem& ConvPlan::problem() const { return state_->problem; }
DType ConvPlan::dtype() const { return state_->dtype; }
const std::string& ConvPlan::algorithm() const { return state_->algo_name; }
Activation ConvPlan::activation() const { return state_->activation; }
OutputStores ConvPlan::output_stores() const { return state_->stores; }
std::string ConvPlan::isa() const { return state_->kernels->isa; }
std::size_t ConvPlan::packed_bytes() const { return state_->packed_bytes + state_->bias_bytes; }

std::size_t ConvPlan::workspace_bytes() const {
  const State& s = *state_;
  return conv::forward_scratch_bytes(*s.algo, s.problem, s.dtype, conv::threads_for(s.problem),
                                     *s.kernels);
}

}  // namespace fastconv
