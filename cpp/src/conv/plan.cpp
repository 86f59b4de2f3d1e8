// conv/plan.cpp — fastconv::ConvPlan (fastconv/plan.hpp): the weights packed once by the chosen
// algorithm's pack_weights for the kernels active at creation, then forward calls that pass
// them to the same execution path as the stateless conv_fwd (execute.hpp). relu and relu6 are
// clamped in the stores; other activations take one pass over the output afterwards.
#include "fastconv/plan.hpp"

#include <cstring>

#include "algorithm.hpp"
#include "fastconv/errors.hpp"
#include "execute.hpp"
#include "pad.hpp"
#include "util/buffer.hpp"
#include "util/dtype.hpp"

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
  util::AlignedBuffer packed, bias;
  std::size_t packed_bytes = 0, bias_bytes = 0;
};

ConvPlan::ConvPlan(const ConvProblem& problem, DType dtype, const void* weight, const void* bias,
                   const std::string& algorithm, Activation activation, const std::string& isa) {
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
  }
  state_ = std::move(s);
}

void ConvPlan::forward(const void* x, void* y) const {
  const State& s = *state_;
  const Activation fused = is_clamp(s.activation) ? s.activation : Activation::none;
  conv::execute_forward(*s.algo, s.problem, s.dtype, x, s.weights.as<void>(), s.packed.as<void>(),
                        s.bias.as<void>(), fused, y, *s.kernels, s.exact);
  if (s.activation != fused) {  // not a clamp: one pass over the output, just written
    const auto shape = s.problem.output_shape();
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    activation_fwd(s.activation, 0, 0, s.dtype, n, y, y);
  }
}

const ConvProblem& ConvPlan::problem() const { return state_->problem; }
DType ConvPlan::dtype() const { return state_->dtype; }
const std::string& ConvPlan::algorithm() const { return state_->algo_name; }
Activation ConvPlan::activation() const { return state_->activation; }
std::string ConvPlan::isa() const { return state_->kernels->isa; }
std::size_t ConvPlan::packed_bytes() const { return state_->packed_bytes + state_->bias_bytes; }

std::size_t ConvPlan::workspace_bytes() const {
  const State& s = *state_;
  return conv::forward_scratch_bytes(*s.algo, s.problem, s.dtype, conv::threads_for(s.problem),
                                     *s.kernels);
}

}  // namespace fastconv
