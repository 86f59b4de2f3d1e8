// api/tensor.cpp — the array-level API of fastconv/tensor.hpp: problems made from the views'
// shapes, outputs checked or allocated, then the problem-level entry points.
#include "fastconv/tensor.hpp"

#include <cmath>
#include <initializer_list>
#include <utility>
#include <optional>

#include "fastconv/errors.hpp"
#include "fastconv/linear.hpp"
#include "fastconv/norm.hpp"
#include "fastconv/runtime.hpp"
#include "util/checked.hpp"
#include "util/dtype.hpp"
#include "util/format.hpp"

namespace fastconv {

namespace {

// Whether an array of `shape` holds elements (no overflow for any extents).
bool has_elements(const std::vector<int64_t>& shape) {
  for (int64_t d : shape)
    if (d <= 0) return false;
  return true;
}

// The common dtype of the views (nulls skipped); DTypeError naming `op` when they differ,
// InvalidArgument for a view with elements and no data.
DType common(const std::string& op, std::initializer_list<const View*> views) {
  const View* first = nullptr;
  for (const View* v : views) {
    if (!v) continue;
    if (!v->data && has_elements(v->shape))
      throw InvalidArgument(op + ": a view of " + util::shape_str(v->shape) + " has no data");
    if (!first) first = v;
    if (v->dtype != first->dtype)
      throw DTypeError(op + ": expected all arrays to have the same dtype");
  }
  return first ? first->dtype : DType::f32;
}

void check_out(const std::string& op, const MutableView& y, DType dtype,
               const std::vector<int64_t>& shape) {
  const View out = y;
  common(op, {&out});
  if (y.dtype != dtype) throw DTypeError(op + ": expected out to have the inputs' dtype");
  if (y.shape != shape) {
    throw InvalidArgument(op + ": expected out of size " + util::shape_str(shape) +
                          ", but got " + util::shape_str(y.shape));
  }
}

std::optional<std::vector<int64_t>> shape_of(const View* v) {
  return v ? std::optional<std::vector<int64_t>>(v->shape) : std::nullopt;
}

// The spatial rank of a weight of `shape` (K, C / groups, *kernel): 1 to 3.
int weight_rank(const std::string& op, const std::vector<int64_t>& shape) {
  const int rank = static_cast<int>(shape.size()) - 2;
  if (rank < 1 || rank > 3) {
    throw InvalidArgument(op + ": expected a 3-D, 4-D or 5-D weight, but got " +
                          std::to_string(shape.size()) + "-D");
  }
  return rank;
}

int conv_rank(const std::string& op, const View& w) { return weight_rank(op, w.shape); }

}  // namespace

Tensor::Tensor(DType dtype, std::vector<int64_t> shape) : dtype_(dtype), shape_(std::move(shape)) {
  int64_t bytes = static_cast<int64_t>(util::dtype_size(dtype));
  for (int64_t d : shape_) {
    if (d < 0) throw InvalidArgument("Tensor: negative extent in " + util::shape_str(shape_));
    bytes = util::checked_mul(bytes, d, "Tensor: size");
  }
  mem_ = std::shared_ptr<void>(allocate_array(static_cast<std::size_t>(bytes)), free_array);
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;  // fits: the constructor checked the byte count
  return n;
}

namespace {

ConvProblem conv_problem(const View& x, const View& w, const View* b, const ConvOptions& options) {
  return make_conv_problem(conv_rank("conv", w), x.shape, w.shape, shape_of(b), options);
}

}  // namespace

void conv(const View& x, const View& w, const View* b, const MutableView& y,
          const ConvOptions& options, const std::string& algo) {
  const DType dtype = common("conv", {&x, &w, b});
  const auto p = conv_problem(x, w, b, options);
  check_out(p.op, y, dtype, p.output_shape());
  conv_fwd(p, dtype, x.data, w.data, b ? b->data : nullptr, y.data, algo);
}

Tensor conv(const View& x, const View& w, const View* b, const ConvOptions& options,
            const std::string& algo) {
  const DType dtype = common("conv", {&x, &w, b});
  const auto p = conv_problem(x, w, b, options);
  Tensor y(dtype, p.output_shape());
  conv_fwd(p, dtype, x.data, w.data, b ? b->data : nullptr, y.data(), algo);
  return y;
}

Tensor conv_input_grad(const std::vector<int64_t>& input_shape, const View& w, const View& dy,
                       const ConvOptions& options, const std::string& algo) {
  const std::string op = "conv_input_grad";
  const DType dtype = common(op, {&w, &dy});
  const auto p = make_conv_problem(conv_rank(op, w), input_shape, w.shape, std::nullopt, options, op);
  check_shape(op, "grad_output", dy.shape, p.output_shape());
  Tensor dx(dtype, p.input_shape());
  conv_bwd_data(p, dtype, w.data, dy.data, dx.data(), algo);
  return dx;
}

Tensor conv_weight_grad(const View& x, const std::vector<int64_t>& weight_shape, const View& dy,
                        const ConvOptions& options, const std::string& algo) {
  const std::string op = "conv_weight_grad";
  const DType dtype = common(op, {&x, &dy});
  const int rank = weight_rank(op, weight_shape);
  const auto p = make_conv_problem(rank, x.shape, weight_shape, std::nullopt, options, op);
  check_shape(op, "grad_output", dy.shape, p.output_shape());
  Tensor dw(dtype, p.weight_shape());
  conv_bwd_weights(p, dtype, x.data, dy.data, dw.data(), algo);
  return dw;
}

Tensor conv_transpose(const View& x, const View& w, const View* b,
                      const ConvTransposeOptions& options, const std::string& algo) {
  const std::string op = "conv_transpose";
  const DType dtype = common(op, {&x, &w, b});
  const auto p = make_conv_transpose_problem(conv_rank(op, w), x.shape, w.shape, shape_of(b), options);
  Tensor y(dtype, p.input_shape());  // the transposed output is the convolution's input
  conv_transpose_fwd(p, dtype, x.data, w.data, b ? b->data : nullptr, y.data(), algo);
  return y;
}

Tensor conv_transpose_input_grad(const std::vector<int64_t>& input_shape, const View& w,
                                 const View& dy, const ConvTransposeOptions& options,
                                 const std::string& algo) {
  const std::string op = "conv_transpose_input_grad";
  const DType dtype = common(op, {&w, &dy});
  const auto p = make_conv_transpose_problem(conv_rank(op, w), input_shape, w.shape,
                                             std::nullopt, options, op);
  check_shape(op, "grad_output", dy.shape, p.input_shape());  // the transposed output
  Tensor dx(dtype, p.output_shape());
  conv_transpose_bwd_data(p, dtype, w.data, dy.data, dx.data(), algo);
  return dx;
}

Tensor conv_transpose_weight_grad(const View& x, const std::vector<int64_t>& weight_shape,
                                  const View& dy, const ConvTransposeOptions& options,
                                  const std::string& algo) {
  const std::string op = "conv_transpose_weight_grad";
  const DType dtype = common(op, {&x, &dy});
  const int rank = weight_rank(op, weight_shape);
  const auto p = make_conv_transpose_problem(rank, x.shape, weight_shape, std::nullopt, options, op);
  check_shape(op, "grad_output", dy.shape, p.input_shape());
  Tensor dw(dtype, p.weight_shape());
  conv_transpose_bwd_weights(p, dtype, x.data, dy.data, dw.data(), algo);
  return dw;
}

Tensor adaptive_pool(PoolKind kind, int rank, const View& x,
                     const std::vector<std::optional<int64_t>>& output_size, int64_t* indices) {
  const std::string op = std::string(kind == PoolKind::adaptive_avg ? "adaptive_avg" : "adaptive_max") +
                         "_pool" + std::to_string(rank) + "d";
  common(op, {&x});
  if (kind != PoolKind::adaptive_avg && kind != PoolKind::adaptive_max)
    throw InvalidArgument(op + ": kind must be adaptive_avg or adaptive_max");
  const auto p = make_adaptive_pool_problem(kind, rank, x.shape, output_size, op);
  Tensor y(x.dtype, p.output_shape());
  pool_fwd(p, x.dtype, x.data, y.data(), indices);
  return y;
}

Tensor adaptive_avg_pool_input_grad(int rank, const std::vector<int64_t>& input_shape,
                                    const View& dy) {
  const std::string op = "adaptive_avg_pool" + std::to_string(rank) + "d_input_grad";
  common(op, {&dy});
  if (rank < 1 || rank > 3 || static_cast<int>(dy.shape.size()) < rank)
    throw InvalidArgument(op + ": expected rank 1-3 and dy with the spatial dims");
  std::vector<std::optional<int64_t>> out(dy.shape.end() - rank, dy.shape.end());
  const auto p = make_adaptive_pool_problem(PoolKind::adaptive_avg, rank, input_shape, out, op);
  check_shape(op, "grad_output", dy.shape, p.output_shape());
  Tensor dx(dy.dtype, p.input_shape());
  pool_avg_bwd(p, dy.dtype, dy.data, dx.data());
  return dx;
}

Tensor pool(PoolKind kind, int rank, const View& x, const PoolOptions& options, int64_t* indices) {
  const std::string op = std::string(kind == PoolKind::avg ? "avg" : "max") + "_pool" +
                         std::to_string(rank) + "d";
  common(op, {&x});
  const auto p = make_pool_problem(kind, rank, x.shape, options, op);
  Tensor y(x.dtype, p.output_shape());
  pool_fwd(p, x.dtype, x.data, y.data(), indices);
  return y;
}

Tensor layer_norm(const View& x, const std::vector<int64_t>& normalized_shape, const View* weight,
                  const View* bias, double eps) {
  const std::string op = "layer_norm";
  const DType dtype = common(op, {&x, weight, bias});
  const auto p = make_norm_problem(NormKind::layer, x.shape, 1, normalized_shape, op);
  if (weight) check_norm_param(p, "weight", weight->shape, normalized_shape, p.params());
  if (bias) check_norm_param(p, "bias", bias->shape, normalized_shape, p.params());
  std::vector<double> mean(static_cast<size_t>(p.stats())), var(mean.size());
  Tensor y(dtype, x.shape);
  norm_fwd(p, dtype, x.data, weight ? weight->data : nullptr, bias ? bias->data : nullptr, true,
           eps, mean.data(), var.data(), y.data());
  return y;
}

namespace {

// C values of a float32 / float64 view as doubles.
std::vector<double> as_doubles(const View& v) {
  const int64_t n = v.shape.empty() ? 1 : v.shape[0];
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    out[i] = v.dtype == DType::f32 ? double(static_cast<const float*>(v.data)[i])
                                   : static_cast<const double*>(v.data)[i];
  return out;
}

}  // namespace

Tensor batch_norm(const View& x, const View& running_mean, const View& running_var,
                  const View* weight, const View* bias, double eps) {
  const std::string op = "batch_norm";
  const DType dtype = common(op, {&x, weight, bias});
  common(op, {&running_mean});
  common(op, {&running_var});
  const auto p = make_norm_problem(NormKind::batch, x.shape, 1, {}, op);
  for (const auto& [name, v] : {std::pair<const char*, const View*>{"running_mean", &running_mean},
                                {"running_var", &running_var}, {"weight", weight}, {"bias", bias}})
    if (v) check_norm_param(p, name, v->shape, {}, p.C);
  std::vector<double> mean = as_doubles(running_mean), var = as_doubles(running_var);
  Tensor y(dtype, x.shape);
  norm_fwd(p, dtype, x.data, weight ? weight->data : nullptr, bias ? bias->data : nullptr, false,
           eps, mean.data(), var.data(), y.data());
  return y;
}

Tensor group_norm(const View& x, int64_t groups, const View* weight, const View* bias,
                  double eps) {
  const std::string op = "group_norm";
  const DType dtype = common(op, {&x, weight, bias});
  const auto p = make_norm_problem(NormKind::group, x.shape, groups, {}, op);
  if (weight) check_norm_param(p, "weight", weight->shape, {}, p.params());
  if (bias) check_norm_param(p, "bias", bias->shape, {}, p.params());
  std::vector<double> mean(static_cast<size_t>(p.stats())), var(mean.size());
  Tensor y(dtype, x.shape);
  norm_fwd(p, dtype, x.data, weight ? weight->data : nullptr, bias ? bias->data : nullptr, true,
           eps, mean.data(), var.data(), y.data());
  return y;
}

Tensor activation(Activation act, const View& x, double alpha, double beta) {
  common(activation_name(act), {&x});
  Tensor y(x.dtype, x.shape);
  activation_fwd(act, alpha, beta, x.dtype, y.numel(), x.data, y.data());
  return y;
}

Tensor activation_input_grad(Activation act, const View& x, const View& dy, double alpha,
                             double beta) {
  const std::string op = std::string(activation_name(act)) + "_input_grad";
  const DType dtype = common(op, {&x, &dy});
  check_shape(op, "grad_output", dy.shape, x.shape);
  Tensor dx(dtype, x.shape);
  activation_bwd(act, alpha, beta, dtype, dx.numel(), x.data, dy.data, dx.data());
  return dx;
}

Tensor softmax_input_grad(const View& y, const View& dy, int64_t dim, bool log) {
  const std::string op = log ? "log_softmax_input_grad" : "softmax_input_grad";
  const DType dtype = common(op, {&y, &dy});
  check_shape(op, "grad_output", dy.shape, y.shape);
  const auto s = softmax_shape(y.shape, dim, op);
  Tensor dx(dtype, y.shape);
  softmax_bwd(dtype, s.outer, s.D, s.inner, y.data, dy.data, dx.data(), log);
  return dx;
}

Tensor softmax(const View& x, int64_t dim, bool log) {
  const std::string op = log ? "log_softmax" : "softmax";
  common(op, {&x});
  const auto s = softmax_shape(x.shape, dim, op);
  Tensor y(x.dtype, x.shape);
  softmax_fwd(x.dtype, s.outer, s.D, s.inner, x.data, y.data(), log);
  return y;
}

Tensor linear(const View& x, const View& w, const View* b) {
  const DType dtype = common("linear", {&x, &w, b});
  const auto p = make_linear_problem(x.shape, w.shape, shape_of(b));
  Tensor y(dtype, p.output_shape());
  linear_fwd(p, dtype, x.data, w.data, b ? b->data : nullptr, y.data());
  return y;
}

Tensor linear_input_grad(const View& w, const View& dy) {
  const std::string op = "linear_input_grad";
  const DType dtype = common(op, {&w, &dy});
  if (w.shape.size() != 2 || dy.shape.empty() || dy.shape.back() != w.shape[0])
    throw InvalidArgument(op + ": expected dy (*, out_features) for w (out_features, in_features)");
  std::vector<int64_t> input_shape(dy.shape.begin(), dy.shape.end() - 1);
  input_shape.push_back(w.shape[1]);
  const auto p = make_linear_problem(input_shape, w.shape, std::nullopt, op);
  Tensor dx(dtype, input_shape);
  linear_bwd_data(p, dtype, w.data, dy.data, dx.data());
  return dx;
}

Tensor linear_weight_grad(const View& x, const View& dy, Tensor* bias_grad) {
  const std::string op = "linear_weight_grad";
  const DType dtype = common(op, {&x, &dy});
  if (x.shape.empty() || dy.shape.empty() ||
      std::vector<int64_t>(x.shape.begin(), x.shape.end() - 1) !=
          std::vector<int64_t>(dy.shape.begin(), dy.shape.end() - 1))
    throw InvalidArgument(op + ": expected x (*, in_features) and dy (*, out_features) with the "
                          "same leading dims");
  const std::vector<int64_t> w_shape{dy.shape.back(), x.shape.back()};
  const auto p = make_linear_problem(x.shape, w_shape, std::nullopt, op);
  Tensor dw(dtype, w_shape);
  if (bias_grad) *bias_grad = Tensor(dtype, {w_shape[0]});
  linear_bwd_weights(p, dtype, x.data, dy.data, dw.data(), bias_grad ? bias_grad->data() : nullptr);
  return dw;
}

Tensor max_pool_input_grad(int rank, const std::vector<int64_t>& input_shape, const View& dy,
                           const int64_t* indices) {
  const std::string op = "max_pool" + std::to_string(rank) + "d_input_grad";
  common(op, {&dy});
  if (!indices && has_elements(dy.shape)) throw InvalidArgument(op + ": indices is null");
  const auto p = make_pool_scatter_problem(rank, input_shape, dy.shape, dy.shape, op);
  Tensor dx(dy.dtype, p.input_shape());
  pool_max_bwd(p, dy.dtype, dy.data, indices, dx.data());
  return dx;
}

Tensor avg_pool_input_grad(int rank, const std::vector<int64_t>& input_shape, const View& dy,
                           const PoolOptions& options) {
  const std::string op = "avg_pool" + std::to_string(rank) + "d_input_grad";
  common(op, {&dy});
  const auto p = make_pool_problem(PoolKind::avg, rank, input_shape, options, op);
  check_shape(op, "grad_output", dy.shape, p.output_shape());
  Tensor dx(dy.dtype, p.input_shape());
  pool_avg_bwd(p, dy.dtype, dy.data, dx.data());
  return dx;
}

ConvPlan conv_plan(const std::vector<int64_t>& input_shape, const View& w, const View* b,
                   const ConvOptions& options, const std::string& algo, Activation activation,
                   OutputStores stores) {
  const DType dtype = common("conv_plan", {&w, b});
  const auto p = make_conv_problem(conv_rank("conv_plan", w), input_shape, w.shape, shape_of(b),
                                   options);
  return ConvPlan(p, dtype, w.data, b ? b->data : nullptr, algo, activation, "", stores);
}

void forward(const ConvPlan& plan, const View& x, const MutableView& y, const View* residual) {
  const std::string op = "ConvPlan.forward";
  const View out = y;
  if (common(op, {&x, &out, residual}) != plan.dtype())
    throw DTypeError(op + ": expected arrays of the plan's dtype");
  check_shape(op, "input", x.shape, plan.problem().input_shape());
  check_out(op, y, plan.dtype(), plan.problem().output_shape());
  if (residual) check_shape(op, "residual", residual->shape, plan.problem().output_shape());
  plan.forward(x.data, y.data, residual ? residual->data : nullptr);
}

Tensor forward(const ConvPlan& plan, const View& x, const View* residual) {
  Tensor y(plan.dtype(), plan.problem().output_shape());
  forward(plan, x, y.mutable_view(), residual);
  return y;
}

namespace {

// running = (1 - momentum) running + momentum value, in the running array's dtype (as the
// Python layer and PyTorch update it).
void update_running(const MutableView& running, const std::vector<double>& value,
                    double momentum) {
  for (size_t c = 0; c < value.size(); ++c) {
    if (running.dtype == DType::f32) {
      float& r = static_cast<float*>(running.data)[c];
      r = r * static_cast<float>(1 - momentum) + static_cast<float>(momentum * value[c]);
    } else {
      double& r = static_cast<double*>(running.data)[c];
      r = r * (1 - momentum) + momentum * value[c];
    }
  }
}

}  // namespace

Tensor batch_norm_train(const View& x, const View* weight, const View* bias, double eps,
                        double momentum, const MutableView* running_mean,
                        const MutableView* running_var, NormStats* stats) {
  const std::string op = "batch_norm";
  const DType dtype = common(op, {&x, weight, bias});
  const auto p = make_norm_problem(NormKind::batch, x.shape, 1, {}, op);
  if (weight) check_norm_param(p, "weight", weight->shape, {}, p.C);
  if (bias) check_norm_param(p, "bias", bias->shape, {}, p.C);
  if (!running_mean != !running_var)
    throw InvalidArgument(op + ": expected both running_mean and running_var, or neither");
  if (running_mean) {
    const View rm = *running_mean, rv = *running_var;
    common(op, {&rm});
    common(op, {&rv});
    check_norm_param(p, "running_mean", rm.shape, {}, p.C);
    check_norm_param(p, "running_var", rv.shape, {}, p.C);
  }
  NormStats local;
  NormStats& s = stats ? *stats : local;
  s.mean.assign(static_cast<size_t>(p.stats()), 0.0);
  s.var.assign(s.mean.size(), 0.0);
  Tensor y(dtype, x.shape);
  norm_fwd(p, dtype, x.data, weight ? weight->data : nullptr, bias ? bias->data : nullptr, true,
           eps, s.mean.data(), s.var.data(), y.data());
  if (running_mean) {
    const int64_t count = p.reduced();
    std::vector<double> unbiased(s.var);
    for (double& v : unbiased)
      v = count > 1 ? v * (static_cast<double>(count) / static_cast<double>(count - 1)) : NAN;
    update_running(*running_mean, s.mean, momentum);
    update_running(*running_var, unbiased, momentum);
  }
  return y;
}

namespace {

// norm_bwd on arrays: statistics recomputed from x (use_input_stats) or given (mean, var).
NormGrads norm_grad(const NormProblem& p, const std::vector<int64_t>& normalized_shape,
                    const View& x, const View& dy, const View* weight, double eps,
                    const std::vector<double>* mean, const std::vector<double>* var) {
  const DType dtype = common(p.op, {&x, &dy, weight});
  check_shape(p.op, "grad_output", dy.shape, x.shape);
  if (weight) check_norm_param(p, "weight", weight->shape, normalized_shape, p.params());
  std::vector<double> m, v;
  const bool input_stats = mean == nullptr;
  if (input_stats) {
    m.resize(static_cast<size_t>(p.stats()));
    v.resize(m.size());
    norm_stats(p, dtype, x.data, m.data(), v.data());
    mean = &m;
    var = &v;
  }
  const std::vector<int64_t> param_shape =
      p.kind == NormKind::layer ? normalized_shape : std::vector<int64_t>{p.params()};
  NormGrads g{Tensor(dtype, x.shape), Tensor(dtype, param_shape), Tensor(dtype, param_shape)};
  norm_bwd(p, dtype, x.data, dy.data, weight ? weight->data : nullptr, input_stats, eps,
           mean->data(), var->data(), g.input.data(), g.weight.data(), g.bias.data());
  return g;
}

}  // namespace

NormGrads batch_norm_grad(const View& x, const View& dy, const View* weight, double eps,
                          const View* running_mean, const View* running_var) {
  const std::string op = "batch_norm_grad";
  const auto p = make_norm_problem(NormKind::batch, x.shape, 1, {}, op);
  if (!running_mean != !running_var)
    throw InvalidArgument(op + ": expected both running_mean and running_var, or neither");
  if (!running_mean) return norm_grad(p, {}, x, dy, weight, eps, nullptr, nullptr);
  common(op, {running_mean});
  common(op, {running_var});
  check_norm_param(p, "running_mean", running_mean->shape, {}, p.C);
  check_norm_param(p, "running_var", running_var->shape, {}, p.C);
  const std::vector<double> mean = as_doubles(*running_mean), var = as_doubles(*running_var);
  return norm_grad(p, {}, x, dy, weight, eps, &mean, &var);
}

NormGrads group_norm_grad(const View& x, const View& dy, int64_t groups, const View* weight,
                          double eps) {
  const auto p = make_norm_problem(NormKind::group, x.shape, groups, {}, "group_norm_grad");
  return norm_grad(p, {}, x, dy, weight, eps, nullptr, nullptr);
}

NormGrads layer_norm_grad(const View& x, const View& dy,
                          const std::vector<int64_t>& normalized_shape, const View* weight,
                          double eps) {
  const auto p = make_norm_problem(NormKind::layer, x.shape, 1, normalized_shape,
                                   "layer_norm_grad");
  return norm_grad(p, normalized_shape, x, dy, weight, eps, nullptr, nullptr);
}

}  // namespace fastconv
