// bindings/module.cpp — the fastconv._core extension: the only file that includes pybind11.
//
// A thin adapter (as SciPy's pocketfft binding): checks dtypes, turns any NumPy layout into a
// C-contiguous native-endian array (a copy only when needed), converts parameters, allocates
// outputs, releases the GIL around the C++ call, and maps fastconv::Error subclasses to Python
// exceptions. Argument forms (int vs tuple) are normalised in python/fastconv/functional.py and
// grad.py; every value check happens in the C++ core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "fastconv/fastconv.hpp"

namespace py = pybind11;
using Shape = std::vector<int64_t>;

namespace {

// A dense, C-contiguous, native-endian float32/float64 array (copied when needed).
struct Operand {
  const char* name;
  py::array array;
  fastconv::DType dtype;
  Shape shape;
  const void* data() const { return array.data(); }
};

const char* dtype_str(fastconv::DType d) { return d == fastconv::DType::f32 ? "float32" : "float64"; }

// `a` itself when its data is aligned for its dtype, else an aligned C-contiguous copy (NumPy
// arrays may start at any byte: a view into a byte buffer, a packed record field).
template <typename A>
A aligned(A a) {
  if (!a || (a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_)) return a;
  return a.attr("copy")().template cast<A>();
}

Operand as_operand(const std::string& op, const char* name, const py::object& obj) {
  py::array a = py::array::ensure(obj);
  if (!a) throw py::type_error(op + ": " + name + " must be a numpy array");
  const char kind = a.dtype().kind();
  const auto size = a.dtype().itemsize();
  Operand r{name, {}, fastconv::DType::f32, {}};
  if (kind == 'f' && size == 4) {
    r.array = aligned(py::array_t<float, py::array::c_style>::ensure(a));
  } else if (kind == 'f' && size == 8) {
    r.dtype = fastconv::DType::f64;
    r.array = aligned(py::array_t<double, py::array::c_style>::ensure(a));
  } else {
    throw py::type_error(op + ": expected " + name + " to have dtype float32 or float64, but got " +
                         py::str(a.dtype()).cast<std::string>());
  }
  if (!r.array) throw py::error_already_set();
  for (py::ssize_t i = 0; i < r.array.ndim(); ++i) r.shape.push_back(r.array.shape(i));
  return r;
}

// All operands of one call share a dtype; returns it.
fastconv::DType common_dtype(const std::string& op, std::initializer_list<const Operand*> ops) {
  const fastconv::DType d = (*ops.begin())->dtype;
  bool mixed = false;
  std::string got;
  for (const Operand* o : ops) {
    if (!o) continue;
    mixed |= o->dtype != d;
    got += std::string(got.empty() ? "" : ", ") + o->name + " " + dtype_str(o->dtype);
  }
  if (mixed) throw py::type_error(op + ": expected " + "all arrays to have the same dtype, but got " + got);
  return d;
}

// A new C-contiguous array whose data start on a 64-byte boundary (a cache line and an AVX-512
// vector), so kernels can use aligned and non-temporal stores on it; large ones on transparent
// huge pages (fastconv::allocate_array). The array owns the memory.
py::array new_array(const py::dtype& dt, const Shape& shape) {
  const std::vector<py::ssize_t> s(shape.begin(), shape.end());
  // NumPy's rule: the strides (the product of the extents other than 0, times the item size)
  // must fit in an ssize_t even when an extent is 0 and the array holds nothing.
  int64_t span = dt.itemsize(), bytes = dt.itemsize();
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(span, std::max<int64_t>(d, 1), &span)) {
      std::string dims;
      for (int64_t e : shape) dims += (dims.empty() ? "" : ", ") + std::to_string(e);
      throw py::value_error("an output of shape (" + dims + ") is too big: its strides do not "
                            "fit in a 64-bit integer");
    }
    bytes *= d;  // <= span
  }
  void* data = fastconv::allocate_array(static_cast<std::size_t>(bytes));
  py::capsule owner;
  try {
    owner = py::capsule(data, [](void* p) { fastconv::free_array(p); });
  } catch (...) {
    fastconv::free_array(data);
    throw;
  }
  return py::array(dt, s, data, owner);
}

py::array new_array(fastconv::DType dtype, const Shape& shape) {
  return new_array(dtype == fastconv::DType::f32 ? py::dtype::of<float>() : py::dtype::of<double>(),
                   shape);
}

// Set in a child process made by fork() (pthread_atfork, registered at import).
std::atomic<bool> forked_child{false};

// Run f with the GIL released; the arrays it reads are kept alive by the caller.
//
// In a forked child, libgomp's team of the thread that forked still counts the parent's
// workers, which the child does not have: a parallel region of more than one thread started
// from that thread waits for them forever. fastconv's own fork handler (runtime.cpp) sets one
// thread in the child; if the child asks for more (set_num_threads), f runs on a new thread,
// whose OpenMP team libgomp creates afresh (a thread start per call, in such children only).
//
// Python threads computing at once share the thread setting (fastconv::ThreadShare): 16 callers
// at 2 threads start about 16 compute threads in all, not 32. `threads` (0: the share) is for
// calls that choose their own count.
template <typename F>
void compute(F&& f, int threads = 0) {
  py::gil_scoped_release release;
  const fastconv::ThreadShare share;
  if (threads == 0) threads = fastconv::num_threads();
  if (threads > 1 && forked_child.load(std::memory_order_relaxed)) {
    std::exception_ptr error;
    std::thread([&] {
      try {
        f();
      } catch (...) {
        error = std::current_exception();
      }
    }).join();
    if (error) std::rethrow_exception(error);
    return;
  }
  f();
}

using PaddingArg = std::variant<std::string, Shape>;

fastconv::ConvOptions conv_options(const std::string& op, const Shape& stride,
                                   const PaddingArg& padding, const Shape& dilation,
                                   int64_t groups, const std::string& padding_mode) {
  fastconv::ConvOptions o;
  o.stride = stride;
  o.dilation = dilation;
  o.groups = groups;
  try {
    if (const auto* s = std::get_if<std::string>(&padding)) {
      o.padding = fastconv::PaddingSpec::from_string(*s);
    } else {
      o.padding.values = std::get<Shape>(padding);
    }
    o.padding_mode = fastconv::parse_padding_mode(padding_mode);
  } catch (const fastconv::InvalidArgument& e) {
    throw fastconv::InvalidArgument(op + ": " + e.what());
  }
  return o;
}

fastconv::ConvTransposeOptions transpose_options(const std::string& op, const Shape& stride,
                                                 const PaddingArg& padding,
                                                 const Shape& output_padding, int64_t groups,
                                                 const Shape& dilation) {
  if (std::holds_alternative<std::string>(padding)) {
    throw fastconv::InvalidArgument(op + ": conv_transpose does not accept string padding ('" +
                                    std::get<std::string>(padding) + "')");
  }
  fastconv::ConvTransposeOptions o;
  o.stride = stride;
  o.padding = std::get<Shape>(padding);
  o.output_padding = output_padding;
  o.groups = groups;
  o.dilation = dilation;
  return o;
}

std::string op_name(const char* base, int rank, const char* suffix) {
  return base + std::to_string(rank) + "d" + suffix;
}

// ---- convolution

py::array conv_forward(int rank, const py::object& input, const py::object& weight,
                       const py::object& bias, const Shape& stride, const PaddingArg& padding,
                       const Shape& dilation, int64_t groups, const std::string& padding_mode,
                       const std::string& algo) {
  const std::string op = op_name("conv", rank, "");
  const Operand x = as_operand(op, "input", input), w = as_operand(op, "weight", weight);
  std::optional<Operand> b;
  if (!bias.is_none()) b = as_operand(op, "bias", bias);
  const auto dtype = common_dtype(op, {&x, &w, b ? &*b : nullptr});
  const auto problem = fastconv::make_conv_problem(
      rank, x.shape, w.shape, b ? std::optional<Shape>(b->shape) : std::nullopt,
      conv_options(op, stride, padding, dilation, groups, padding_mode), op);
  fastconv::resolve_conv_algorithm(problem, dtype, fastconv::ConvDirection::forward, algo);
  py::array y = new_array(dtype, problem.output_shape());
  void* yp = y.mutable_data();
  compute([&] {
    fastconv::conv_fwd(problem, dtype, x.data(), w.data(), b ? b->data() : nullptr, yp, algo);
  });
  return y;
}

// A forward plan for inputs of `input_shape` (python/fastconv/_plan.py keeps one per shape).
fastconv::ConvPlan make_conv_plan(int rank, const Shape& input_shape, const py::object& weight,
                                  const py::object& bias, const Shape& stride,
                                  const PaddingArg& padding, const Shape& dilation, int64_t groups,
                                  const std::string& padding_mode, const std::string& algo,
                                  const std::string& activation, const std::string& isa,
                                  const std::string& output_stores) {
  const std::string op = "plan";
  if (output_stores != "stream" && output_stores != "cache") {
    throw fastconv::InvalidArgument(op + ": output_stores must be 'stream' or 'cache', but got '" +
                                    output_stores + "'");
  }
  const auto stores = output_stores == "cache" ? fastconv::OutputStores::cache
                                               : fastconv::OutputStores::stream;
  const Operand w = as_operand(op, "weight", weight);
  std::optional<Operand> b;
  if (!bias.is_none()) b = as_operand(op, "bias", bias);
  const auto dtype = common_dtype(op, {&w, b ? &*b : nullptr});
  fastconv::Activation act;
  try {
    act = fastconv::parse_activation(activation);
  } catch (const fastconv::InvalidArgument& e) {
    throw fastconv::InvalidArgument(op + ": " + e.what());
  }
  const auto problem = fastconv::make_conv_problem(
      rank, input_shape, w.shape, b ? std::optional<Shape>(b->shape) : std::nullopt,
      conv_options(op, stride, padding, dilation, groups, padding_mode), op);
  std::optional<fastconv::ConvPlan> plan;  // packing the weights is compute: without the GIL
  compute([&] {
    plan.emplace(problem, dtype, w.data(), b ? b->data() : nullptr, algo, act, isa, stores);
  });
  return std::move(*plan);
}

py::array plan_forward(const fastconv::ConvPlan& plan, const py::object& input,
                       const py::object& residual) {
  const std::string op = "plan";
  const Operand x = as_operand(op, "input", input);
  std::optional<Operand> r;
  if (!residual.is_none()) r = as_operand(op, "residual", residual);
  for (const Operand* o : std::initializer_list<const Operand*>{&x, r ? &*r : nullptr}) {
    if (o && o->dtype != plan.dtype()) {
      throw py::type_error(op + ": expected " + o->name + " to have dtype " +
                           dtype_str(plan.dtype()) + " (the plan's weights), but got " +
                           dtype_str(o->dtype));
    }
  }
  fastconv::check_shape(op, "input", x.shape, plan.problem().input_shape());
  if (r) fastconv::check_shape(op, "residual", r->shape, plan.problem().output_shape());
  py::array y = new_array(plan.dtype(), plan.problem().output_shape());
  void* yp = y.mutable_data();
  const void* rp = r ? r->data() : nullptr;
  compute([&] { plan.forward(x.data(), yp, rp); });
  return y;
}

py::array conv_backward_data(int rank, const Shape& input_shape, const py::object& weight,
                             const py::object& grad_output, const Shape& stride,
                             const PaddingArg& padding, const Shape& dilation, int64_t groups,
                             const std::string& padding_mode, const std::string& algo) {
  const std::string op = op_name("conv", rank, "_input");
  const Operand w = as_operand(op, "weight", weight), dy = as_operand(op, "grad_output", grad_output);
  const auto dtype = common_dtype(op, {&w, &dy});
  const auto problem = fastconv::make_conv_problem(
      rank, input_shape, w.shape, std::nullopt,
      conv_options(op, stride, padding, dilation, groups, padding_mode), op);
  fastconv::check_shape(op, "grad_output", dy.shape, problem.output_shape());
  fastconv::resolve_conv_algorithm(problem, dtype, fastconv::ConvDirection::backward_data, algo);
  py::array dx = new_array(dtype, problem.input_shape());
  void* dxp = dx.mutable_data();
  compute([&] { fastconv::conv_bwd_data(problem, dtype, w.data(), dy.data(), dxp, algo); });
  return dx;
}

py::array conv_backward_weights(int rank, const py::object& input, const Shape& weight_shape,
                                const py::object& grad_output, const Shape& stride,
                                const PaddingArg& padding, const Shape& dilation, int64_t groups,
                                const std::string& padding_mode, const std::string& algo) {
  const std::string op = op_name("conv", rank, "_weight");
  const Operand x = as_operand(op, "input", input), dy = as_operand(op, "grad_output", grad_output);
  const auto dtype = common_dtype(op, {&x, &dy});
  const auto problem = fastconv::make_conv_problem(
      rank, x.shape, weight_shape, std::nullopt,
      conv_options(op, stride, padding, dilation, groups, padding_mode), op);
  fastconv::check_shape(op, "grad_output", dy.shape, problem.output_shape());
  fastconv::resolve_conv_algorithm(problem, dtype, fastconv::ConvDirection::backward_weights, algo);
  py::array dw = new_array(dtype, problem.weight_shape());
  void* dwp = dw.mutable_data();
  compute([&] { fastconv::conv_bwd_weights(problem, dtype, x.data(), dy.data(), dwp, algo); });
  return dw;
}

py::array conv_backward_bias(int rank, const py::object& grad_output) {
  const std::string op = op_name("conv", rank, "_bias");
  const Operand dy = as_operand(op, "grad_output", grad_output);
  py::array db = new_array(dy.dtype, fastconv::conv_bias_grad_shape(rank, dy.shape, op));
  void* dbp = db.mutable_data();
  compute([&] { fastconv::conv_bwd_bias(rank, dy.shape, dy.dtype, dy.data(), dbp, op); });
  return db;
}

// ---- transposed convolution

py::array conv_transpose_forward(int rank, const py::object& input, const py::object& weight,
                                 const py::object& bias, const Shape& stride,
                                 const PaddingArg& padding, const Shape& output_padding,
                                 int64_t groups, const Shape& dilation, const std::string& algo) {
  const std::string op = op_name("conv_transpose", rank, "");
  const Operand x = as_operand(op, "input", input), w = as_operand(op, "weight", weight);
  std::optional<Operand> b;
  if (!bias.is_none()) b = as_operand(op, "bias", bias);
  const auto dtype = common_dtype(op, {&x, &w, b ? &*b : nullptr});
  const auto problem = fastconv::make_conv_transpose_problem(
      rank, x.shape, w.shape, b ? std::optional<Shape>(b->shape) : std::nullopt,
      transpose_options(op, stride, padding, output_padding, groups, dilation), op);
  fastconv::resolve_conv_algorithm(problem, dtype, fastconv::ConvDirection::backward_data, algo);
  py::array y = new_array(dtype, problem.input_shape());
  void* yp = y.mutable_data();
  compute([&] {
    fastconv::conv_transpose_fwd(problem, dtype, x.data(), w.data(), b ? b->data() : nullptr, yp,
                                 algo);
  });
  return y;
}

py::array conv_transpose_backward_data(int rank, const Shape& input_shape,
                                       const py::object& weight, const py::object& grad_output,
                                       const Shape& stride, const PaddingArg& padding,
                                       const Shape& output_padding, int64_t groups,
                                       const Shape& dilation, const std::string& algo) {
  const std::string op = op_name("conv_transpose", rank, "_input");
  const Operand w = as_operand(op, "weight", weight), dy = as_operand(op, "grad_output", grad_output);
  const auto dtype = common_dtype(op, {&w, &dy});
  const auto problem = fastconv::make_conv_transpose_problem(
      rank, input_shape, w.shape, std::nullopt,
      transpose_options(op, stride, padding, output_padding, groups, dilation), op);
  fastconv::check_shape(op, "grad_output", dy.shape, problem.input_shape());
  fastconv::resolve_conv_algorithm(problem, dtype, fastconv::ConvDirection::forward, algo);
  py::array dx = new_array(dtype, problem.output_shape());
  void* dxp = dx.mutable_data();
  compute([&] { fastconv::conv_transpose_bwd_data(problem, dtype, w.data(), dy.data(), dxp, algo); });
  return dx;
}

py::array conv_transpose_backward_weights(int rank, const py::object& input,
                                          const Shape& weight_shape,
                                          const py::object& grad_output, const Shape& stride,
                                          const PaddingArg& padding, const Shape& output_padding,
                                          int64_t groups, const Shape& dilation,
                                          const std::string& algo) {
  const std::string op = op_name("conv_transpose", rank, "_weight");
  const Operand x = as_operand(op, "input", input), dy = as_operand(op, "grad_output", grad_output);
  const auto dtype = common_dtype(op, {&x, &dy});
  const auto problem = fastconv::make_conv_transpose_problem(
      rank, x.shape, weight_shape, std::nullopt,
      transpose_options(op, stride, padding, output_padding, groups, dilation), op);
  fastconv::check_shape(op, "grad_output", dy.shape, problem.input_shape());
  fastconv::resolve_conv_algorithm(problem, dtype, fastconv::ConvDirection::backward_weights, algo);
  py::array dw = new_array(dtype, problem.weight_shape());
  void* dwp = dw.mutable_data();
  compute([&] {
    fastconv::conv_transpose_bwd_weights(problem, dtype, x.data(), dy.data(), dwp, algo);
  });
  return dw;
}

// ---- pooling

fastconv::PoolKind pool_kind(const std::string& kind) {
  if (kind == "max") return fastconv::PoolKind::max;
  if (kind == "avg") return fastconv::PoolKind::avg;
  if (kind == "adaptive_max") return fastconv::PoolKind::adaptive_max;
  return fastconv::PoolKind::adaptive_avg;
}

std::string pool_op(const std::string& kind, int rank, const char* suffix = "") {
  return kind + "_pool" + std::to_string(rank) + "d" + suffix;
}

fastconv::PoolOptions pool_options(const Shape& kernel_size, const Shape& stride,
                                   const Shape& padding, const Shape& dilation, bool ceil_mode,
                                   bool count_include_pad, std::optional<int64_t> divisor_override) {
  fastconv::PoolOptions o;
  o.kernel_size = kernel_size;
  o.stride = stride;
  o.padding = padding;
  o.dilation = dilation;
  o.ceil_mode = ceil_mode;
  o.count_include_pad = count_include_pad;
  o.divisor_override = divisor_override;
  return o;
}

// Forward of a pooling problem; returns y, or (y, indices) when asked.
py::object pool_run(const fastconv::PoolProblem& problem, const Operand& x, bool return_indices) {
  py::array y = new_array(x.dtype, problem.output_shape());
  std::optional<py::array> idx;
  if (return_indices) idx = new_array(py::dtype::of<int64_t>(), problem.output_shape());
  void* yp = y.mutable_data();
  int64_t* ip = idx ? static_cast<int64_t*>(idx->mutable_data()) : nullptr;
  compute([&] { fastconv::pool_fwd(problem, x.dtype, x.data(), yp, ip); });
  if (idx) return py::make_tuple(y, *idx);
  return std::move(y);
}

py::object pool_forward(const std::string& kind, int rank, const py::object& input,
                        const Shape& kernel_size, const Shape& stride, const Shape& padding,
                        const Shape& dilation, bool ceil_mode, bool count_include_pad,
                        std::optional<int64_t> divisor_override, bool return_indices) {
  const std::string op = pool_op(kind, rank);
  const Operand x = as_operand(op, "input", input);
  const auto problem = fastconv::make_pool_problem(
      pool_kind(kind), rank, x.shape,
      pool_options(kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
                   divisor_override),
      op);
  return pool_run(problem, x, return_indices);
}

py::object adaptive_pool_forward(const std::string& kind, int rank, const py::object& input,
                                 const std::vector<std::optional<int64_t>>& output_size,
                                 bool return_indices) {
  const std::string op = pool_op(kind, rank);
  const Operand x = as_operand(op, "input", input);
  const auto problem =
      fastconv::make_adaptive_pool_problem(pool_kind(kind), rank, x.shape, output_size, op);
  return pool_run(problem, x, return_indices);
}

py::array pool_backward_avg(const std::string& kind, int rank, const py::object& grad_output,
                            const Shape& input_shape, const Shape& kernel_size,
                            const Shape& stride, const Shape& padding, bool ceil_mode,
                            bool count_include_pad, std::optional<int64_t> divisor_override,
                            const std::vector<std::optional<int64_t>>& output_size) {
  const std::string op = pool_op(kind, rank, "_input");
  const Operand dy = as_operand(op, "grad_output", grad_output);
  const auto problem =
      kind == "avg"
          ? fastconv::make_pool_problem(fastconv::PoolKind::avg, rank, input_shape,
                                        pool_options(kernel_size, stride, padding, {1}, ceil_mode,
                                                     count_include_pad, divisor_override),
                                        op)
          : fastconv::make_adaptive_pool_problem(fastconv::PoolKind::adaptive_avg, rank,
                                                 input_shape, output_size, op);
  fastconv::check_shape(op, "grad_output", dy.shape, problem.output_shape());
  py::array dx = new_array(dy.dtype, problem.input_shape());
  void* dxp = dx.mutable_data();
  compute([&] { fastconv::pool_avg_bwd(problem, dy.dtype, dy.data(), dxp); });
  return dx;
}

py::array pool_backward_max(const std::string& kind, int rank, const py::object& grad_output,
                            const py::object& indices, const Shape& input_shape) {
  const std::string op = pool_op(kind, rank, "_input");
  const Operand dy = as_operand(op, "grad_output", grad_output);
  py::array raw = py::array::ensure(indices);
  if (!raw || raw.dtype().kind() != 'i' || raw.dtype().itemsize() != 8) {
    throw py::type_error(op + ": expected indices to have dtype int64, but got " +
                         (raw ? py::str(raw.dtype()).cast<std::string>() : std::string("no array")));
  }
  const auto idx = aligned(py::array_t<int64_t, py::array::c_style>::ensure(raw));
  if (!idx) throw py::error_already_set();
  const Shape idx_shape(idx.shape(), idx.shape() + idx.ndim());
  const auto problem = fastconv::make_pool_scatter_problem(rank, input_shape, dy.shape, idx_shape, op);
  py::array dx = new_array(dy.dtype, problem.input_shape());
  void* dxp = dx.mutable_data();
  const int64_t* ip = idx.data();
  compute([&] { fastconv::pool_max_bwd(problem, dy.dtype, dy.data(), ip, dxp); });
  return dx;
}

// ---- normalisation, activations, softmax

std::optional<Operand> optional_operand(const std::string& op, const char* name,
                                        const py::object& obj) {
  if (obj.is_none()) return std::nullopt;
  return as_operand(op, name, obj);
}

// A float32/float64 parameter array (running statistics) as float64 values.
py::array_t<double, py::array::c_style> as_stats(const std::string& op, const char* name,
                                                 const py::object& obj) {
  const Operand o = as_operand(op, name, obj);
  auto r = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(o.array);
  if (!r) throw py::error_already_set();
  return r;
}

fastconv::NormKind norm_kind(const std::string& kind) {
  if (kind == "batch") return fastconv::NormKind::batch;
  if (kind == "group") return fastconv::NormKind::group;
  return fastconv::NormKind::layer;
}

// Forward of a normalisation: (y, mean, var) with the statistics it used (float64).
py::tuple norm_forward(const std::string& kind, const std::string& op, const py::object& input,
                       const py::object& weight, const py::object& bias,
                       const py::object& running_mean, const py::object& running_var,
                       int64_t num_groups, const Shape& normalized_shape, bool use_input_stats,
                       double eps) {
  const Operand x = as_operand(op, "input", input);
  const auto w = optional_operand(op, "weight", weight);
  const auto b = optional_operand(op, "bias", bias);
  const auto dtype = common_dtype(op, {&x, w ? &*w : nullptr, b ? &*b : nullptr});
  const auto p = fastconv::make_norm_problem(norm_kind(kind), x.shape, num_groups,
                                             normalized_shape, op);
  if (w) fastconv::check_norm_param(p, "weight", w->shape, normalized_shape, p.params());
  if (b) fastconv::check_norm_param(p, "bias", b->shape, normalized_shape, p.params());
  py::array_t<double> mean(p.stats()), var(p.stats());
  if (!use_input_stats) {
    if (running_mean.is_none() || running_var.is_none())
      throw fastconv::InvalidArgument(op + ": running_mean and running_var must be given when "
                                      "the input's statistics are not used");
    const auto rm = as_stats(op, "running_mean", running_mean);
    const auto rv = as_stats(op, "running_var", running_var);
    const Shape one{p.stats()};
    fastconv::check_norm_param(p, "running_mean", Shape(rm.shape(), rm.shape() + rm.ndim()), one, p.stats());
    fastconv::check_norm_param(p, "running_var", Shape(rv.shape(), rv.shape() + rv.ndim()), one, p.stats());
    std::copy(rm.data(), rm.data() + p.stats(), mean.mutable_data());
    std::copy(rv.data(), rv.data() + p.stats(), var.mutable_data());
  }
  py::array y = new_array(dtype, x.shape);
  double* mp = mean.mutable_data();
  double* vp = var.mutable_data();
  void* yp = y.mutable_data();
  compute([&] {
    fastconv::norm_fwd(p, dtype, x.data(), w ? w->data() : nullptr, b ? b->data() : nullptr,
                       use_input_stats, eps, mp, vp, yp);
  });
  return py::make_tuple(y, mean, var);
}

// The statistics (mean, biased var; float64) a normalisation computes from its input.
py::tuple norm_statistics(const std::string& kind, const std::string& op, const py::object& input,
                          int64_t num_groups, const Shape& normalized_shape) {
  const Operand x = as_operand(op, "input", input);
  const auto p = fastconv::make_norm_problem(norm_kind(kind), x.shape, num_groups,
                                             normalized_shape, op);
  py::array_t<double> mean(p.stats()), var(p.stats());
  double* mp = mean.mutable_data();
  double* vp = var.mutable_data();
  compute([&] { fastconv::norm_stats(p, x.dtype, x.data(), mp, vp); });
  return py::make_tuple(mean, var);
}

// Backward of a normalisation from the statistics its forward used: (dx, dweight, dbias), each
// None unless asked for (dweight / dbias: only with a weight / bias).
py::tuple norm_backward(const std::string& kind, const std::string& op, const py::object& input,
                        const py::object& grad_output, const py::object& weight,
                        const py::object& mean, const py::object& var, int64_t num_groups,
                        const Shape& normalized_shape, bool use_input_stats, double eps,
                        bool need_input, bool need_weight, bool need_bias) {
  const Operand x = as_operand(op, "input", input);
  const Operand dy = as_operand(op, "grad_output", grad_output);
  const auto w = optional_operand(op, "weight", weight);
  const auto dtype = common_dtype(op, {&x, &dy, w ? &*w : nullptr});
  const auto p = fastconv::make_norm_problem(norm_kind(kind), x.shape, num_groups,
                                             normalized_shape, op);
  fastconv::check_shape(op, "grad_output", dy.shape, x.shape);
  if (w) fastconv::check_norm_param(p, "weight", w->shape, normalized_shape, p.params());
  const auto m = as_stats(op, "mean", mean);
  const auto v = as_stats(op, "var", var);
  const Shape one{p.stats()};
  fastconv::check_shape(op, "mean", Shape(m.shape(), m.shape() + m.ndim()), one);
  fastconv::check_shape(op, "var", Shape(v.shape(), v.shape() + v.ndim()), one);
  const Shape pshape = p.kind == fastconv::NormKind::layer ? normalized_shape : Shape{p.params()};
  py::object dx = py::none(), dw = py::none(), db = py::none();
  void *dxp = nullptr, *dwp = nullptr, *dbp = nullptr;
  if (need_input) dxp = (dx = new_array(dtype, x.shape)).cast<py::array>().mutable_data();
  if (need_weight) dwp = (dw = new_array(dtype, pshape)).cast<py::array>().mutable_data();
  if (need_bias) dbp = (db = new_array(dtype, pshape)).cast<py::array>().mutable_data();
  compute([&] {
    fastconv::norm_bwd(p, dtype, x.data(), dy.data(), w ? w->data() : nullptr, use_input_stats,
                       eps, m.data(), v.data(), dxp, dwp, dbp);
  });
  return py::make_tuple(dx, dw, db);
}

fastconv::Activation activation_kind(const std::string& op, const std::string& name) {
  try {
    return fastconv::parse_activation(name);
  } catch (const fastconv::InvalidArgument& e) {
    throw fastconv::InvalidArgument(op + ": " + e.what());
  }
}

// y = act(input); into `out` (an array of input's shape and dtype, C-contiguous and writable:
// the in-place forms) when given.
py::array activation_forward(const std::string& name, const std::string& op,
                             const py::object& input, double alpha, double beta,
                             const py::object& out) {
  const auto act = activation_kind(op, name);
  const Operand x = as_operand(op, "input", input);
  py::array y;
  if (out.is_none()) {
    y = new_array(x.dtype, x.shape);
  } else {
    y = out.cast<py::array>();
    const bool same_type = x.dtype == fastconv::DType::f32
                               ? py::isinstance<py::array_t<float, py::array::c_style>>(y)
                               : py::isinstance<py::array_t<double, py::array::c_style>>(y);
    if (!same_type || !y.writeable() || !(y.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) ||
        Shape(y.shape(), y.shape() + y.ndim()) != x.shape)
      throw fastconv::InvalidArgument(op + ": out must be a writable, aligned C-contiguous array "
                                      "of input's shape and dtype");
  }
  int64_t n = 1;
  for (int64_t d : x.shape) n *= d;
  void* yp = y.mutable_data();
  compute([&] { fastconv::activation_fwd(act, alpha, beta, x.dtype, n, x.data(), yp); });
  return y;
}

py::array activation_backward(const std::string& name, const std::string& op,
                              const py::object& input, const py::object& grad_output,
                              double alpha, double beta) {
  const auto act = activation_kind(op, name);
  const Operand x = as_operand(op, "input", input);
  const Operand dy = as_operand(op, "grad_output", grad_output);
  const auto dtype = common_dtype(op, {&x, &dy});
  fastconv::check_shape(op, "grad_output", dy.shape, x.shape);
  int64_t n = 1;
  for (int64_t d : x.shape) n *= d;
  py::array dx = new_array(dtype, x.shape);
  void* dxp = dx.mutable_data();
  compute([&] { fastconv::activation_bwd(act, alpha, beta, dtype, n, x.data(), dy.data(), dxp); });
  return dx;
}

py::array softmax_forward(const std::string& op, const py::object& input, int64_t dim, bool log) {
  const Operand x = as_operand(op, "input", input);
  const auto s = fastconv::softmax_shape(x.shape, dim, op);
  py::array y = new_array(x.dtype, x.shape);
  void* yp = y.mutable_data();
  compute([&] { fastconv::softmax_fwd(x.dtype, s.outer, s.D, s.inner, x.data(), yp, log); });
  return y;
}

py::array softmax_backward(const std::string& op, const py::object& output,
                           const py::object& grad_output, int64_t dim, bool log) {
  const Operand y = as_operand(op, "output", output);
  const Operand dy = as_operand(op, "grad_output", grad_output);
  const auto dtype = common_dtype(op, {&y, &dy});
  fastconv::check_shape(op, "grad_output", dy.shape, y.shape);
  const auto s = fastconv::softmax_shape(y.shape, dim, op);
  py::array dx = new_array(dtype, y.shape);
  void* dxp = dx.mutable_data();
  compute([&] {
    fastconv::softmax_bwd(dtype, s.outer, s.D, s.inner, y.data(), dy.data(), dxp, log);
  });
  return dx;
}

// ---- linear

fastconv::LinearProblem linear_problem(const std::string& op, const Shape& input_shape,
                                       const Operand& w, const std::optional<Operand>& b) {
  return fastconv::make_linear_problem(input_shape, w.shape,
                                       b ? std::optional<Shape>(b->shape) : std::nullopt, op);
}

py::array linear_forward(const py::object& input, const py::object& weight,
                         const py::object& bias) {
  const std::string op = "linear";
  const Operand x = as_operand(op, "input", input);
  const Operand w = as_operand(op, "weight", weight);
  const auto b = optional_operand(op, "bias", bias);
  const auto dtype = common_dtype(op, {&x, &w, b ? &*b : nullptr});
  const auto p = linear_problem(op, x.shape, w, b);
  py::array y = new_array(dtype, p.output_shape());
  void* yp = y.mutable_data();
  compute([&] { fastconv::linear_fwd(p, dtype, x.data(), w.data(), b ? b->data() : nullptr, yp); });
  return y;
}

py::array linear_backward_data(const py::object& grad_output, const py::object& weight) {
  const std::string op = "linear_input";
  const Operand dy = as_operand(op, "grad_output", grad_output);
  const Operand w = as_operand(op, "weight", weight);
  const auto dtype = common_dtype(op, {&dy, &w});
  if (w.shape.size() != 2 || dy.shape.empty() || dy.shape.back() != w.shape[0]) {
    throw fastconv::InvalidArgument(op + ": expected grad_output of shape (*, out_features) for "
                                    "weight (out_features, in_features)");
  }
  Shape input_shape(dy.shape.begin(), dy.shape.end() - 1);
  input_shape.push_back(w.shape[1]);
  const auto p = linear_problem(op, input_shape, w, std::nullopt);
  py::array dx = new_array(dtype, input_shape);
  void* dxp = dx.mutable_data();
  compute([&] { fastconv::linear_bwd_data(p, dtype, w.data(), dy.data(), dxp); });
  return dx;
}

py::tuple linear_backward_weights(const py::object& grad_output, const py::object& input,
                                  bool with_bias) {
  const std::string op = "linear_weight";
  const Operand dy = as_operand(op, "grad_output", grad_output);
  const Operand x = as_operand(op, "input", input);
  const auto dtype = common_dtype(op, {&dy, &x});
  if (dy.shape.empty() || x.shape.empty() ||
      Shape(dy.shape.begin(), dy.shape.end() - 1) != Shape(x.shape.begin(), x.shape.end() - 1)) {
    throw fastconv::InvalidArgument(op + ": expected grad_output (*, out_features) and input "
                                    "(*, in_features) with the same leading dims");
  }
  const Shape w_shape{dy.shape.back(), x.shape.back()};
  const Operand w{"weight", {}, dtype, w_shape};
  const auto p = linear_problem(op, x.shape, w, std::nullopt);
  py::array dw = new_array(dtype, w_shape);
  py::object db = py::none();
  void* dbp = nullptr;
  if (with_bias) dbp = (db = new_array(dtype, {w_shape[0]})).cast<py::array>().mutable_data();
  void* dwp = dw.mutable_data();
  compute([&] { fastconv::linear_bwd_weights(p, dtype, x.data(), dy.data(), dwp, dbp); });
  return py::make_tuple(dw, db);
}

// ---- runtime

// The algorithm `algo` resolves to for one direction of a convolution (tests: what `auto`
// picks); validates like the entry points.
std::string conv_algorithm(int rank, const std::string& direction, const Shape& input_shape,
                           const Shape& weight_shape, const Shape& stride,
                           const PaddingArg& padding, const Shape& dilation, int64_t groups,
                           const std::string& padding_mode, const py::object& dtype,
                           const std::string& algo) {
  const std::string op = op_name("conv", rank, "");
  const auto problem = fastconv::make_conv_problem(
      rank, input_shape, weight_shape, std::nullopt,
      conv_options(op, stride, padding, dilation, groups, padding_mode), op);
  const bool f64 = py::dtype::from_args(dtype).itemsize() == 8;
  return fastconv::resolve_conv_algorithm(problem, f64 ? fastconv::DType::f64 : fastconv::DType::f32,
                                          fastconv::parse_direction(direction), algo);
}

std::vector<std::string> algorithms(const std::optional<std::string>& direction) {
  if (!direction) return fastconv::conv_algorithm_names();
  return fastconv::conv_algorithm_names(fastconv::parse_direction(*direction));
}

py::dict info() {
  py::dict d;
  d["version"] = fastconv::version;
  d["isa"] = fastconv::active_isa();
  d["fma_pipes"] = fastconv::active_fma_pipes();
  d["isas"] = fastconv::available_isas();
  d["num_threads"] = fastconv::num_threads();
  d["workspace_limit"] = fastconv::workspace_limit();
  d["compiler"] = fastconv::compiler_description();
  d["eigen"] = fastconv::eigen_version();
  d["openmp"] = fastconv::openmp_version();
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastconv's compiled core (private: use fastconv.functional, fastconv.grad, ...)";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const fastconv::DTypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const fastconv::OverflowError& e) {
      PyErr_SetString(PyExc_OverflowError, e.what());
    } catch (const fastconv::OutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const fastconv::Error& e) {  // InvalidArgument, Unsupported
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  // Touch the ISA registry now so that a bad FASTCONV_ISA fails the import with its message.
  fastconv::active_isa();
  // Touch the thread setting too, so that runtime.cpp's fork handler (one thread in a child)
  // is registered; then ours (compute() above).
  fastconv::num_threads();
  pthread_atfork(nullptr, nullptr, [] { forked_child.store(true, std::memory_order_relaxed); });

  // Positional, private: python/fastconv/functional.py and grad.py hold the public signatures.
  m.def("conv_forward", &conv_forward);
  m.def("conv_backward_data", &conv_backward_data);
  m.def("conv_algorithm", &conv_algorithm);
  m.def("conv_backward_weights", &conv_backward_weights);
  m.def("conv_backward_bias", &conv_backward_bias);
  m.def("conv_transpose_forward", &conv_transpose_forward);
  m.def("conv_transpose_backward_data", &conv_transpose_backward_data);
  m.def("conv_transpose_backward_weights", &conv_transpose_backward_weights);
  py::class_<fastconv::ConvPlan>(m, "ConvPlan")
      .def(py::init(&make_conv_plan))
      .def("forward", &plan_forward, py::arg("input"), py::arg("residual") = py::none())
      .def_property_readonly("algo", &fastconv::ConvPlan::algorithm)
      .def_property_readonly("activation", [](const fastconv::ConvPlan& p) {
        return std::string(fastconv::activation_name(p.activation()));
      })
      .def_property_readonly("isa", &fastconv::ConvPlan::isa)
      .def_property_readonly("output_stores", [](const fastconv::ConvPlan& p) {
        return std::string(p.output_stores() == fastconv::OutputStores::cache ? "cache" : "stream");
      })
      .def_property_readonly("dtype", [](const fastconv::ConvPlan& p) { return dtype_str(p.dtype()); })
      .def_property_readonly("input_shape", [](const fastconv::ConvPlan& p) { return p.problem().input_shape(); })
      .def_property_readonly("output_shape", [](const fastconv::ConvPlan& p) { return p.problem().output_shape(); })
      .def_property_readonly("packed_bytes", &fastconv::ConvPlan::packed_bytes)
      .def_property_readonly("workspace_bytes", &fastconv::ConvPlan::workspace_bytes);
  m.def("pool_forward", &pool_forward);
  m.def("adaptive_pool_forward", &adaptive_pool_forward);
  m.def("pool_backward_avg", &pool_backward_avg);
  m.def("pool_backward_max", &pool_backward_max);
  m.def("norm_forward", &norm_forward);
  m.def("norm_backward", &norm_backward);
  m.def("norm_statistics", &norm_statistics);
  m.def("activation_forward", &activation_forward);
  m.def("activation_backward", &activation_backward);
  m.def("softmax_forward", &softmax_forward);
  m.def("linear_forward", &linear_forward);
  m.def("linear_backward_data", &linear_backward_data);
  m.def("linear_backward_weights", &linear_backward_weights);
  m.def("softmax_backward", &softmax_backward);
  m.def("algorithms", &algorithms, py::arg("direction") = py::none());
  m.def("info", &info);
  m.def("set_isa", &fastconv::set_isa, py::arg("name"));
  m.def("get_isa", &fastconv::active_isa);
  m.def("set_num_threads", &fastconv::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &fastconv::num_threads);
  m.def("set_workspace_limit", &fastconv::set_workspace_limit, py::arg("nbytes"));
  m.def("get_workspace_limit", &fastconv::workspace_limit);
  m.def("release_memory", &fastconv::release_memory);
  // Winograd's matrices and one-tile transform kernels (fastconv/winograd.hpp), for tests.
  m.def("winograd_matrices", [](int m) {
    const fastconv::WinogradMatrices t = fastconv::winograd_matrices(m);
    const auto matrix = [](const std::vector<double>& v, py::ssize_t rows, py::ssize_t cols) {
      py::array_t<double> a({rows, cols});
      std::copy(v.begin(), v.end(), a.mutable_data());
      return a;
    };
    py::dict d;
    d["AT"] = matrix(t.AT, t.m, t.alpha);
    d["G"] = matrix(t.G, t.alpha, 3);
    d["BT"] = matrix(t.BT, t.alpha, t.alpha);
    return d;
  }, py::arg("m"));
  m.def("winograd_lanes", [](const std::string& isa, const py::object& dtype) {
    const bool f64 = py::dtype::from_args(dtype).itemsize() == 8;
    return fastconv::winograd_lanes(isa, f64 ? fastconv::DType::f64 : fastconv::DType::f32);
  }, py::arg("isa"), py::arg("dtype"));
  m.def("winograd_transform", [](const std::string& isa, int m, const std::string& axes,
                                 const std::string& kind, const py::object& data) {
    const Operand in = as_operand("winograd_transform", "data", data);
    fastconv::winograd_matrices(m);  // validates m
    if (axes != "hw" && axes != "w" && axes != "h") {
      throw py::value_error("winograd_transform: expected axes 'hw', 'w' or 'h', got '" + axes + "'");
    }
    const bool h = axes != "w", w = axes != "h";
    const int64_t lanes = fastconv::winograd_lanes(isa, in.dtype);
    const int64_t ah = h ? m + 2 : 1, aw = w ? m + 2 : 1;
    const Shape expected = kind == "weight" ? Shape{h ? 3 : 1, w ? 3 : 1, lanes} : Shape{ah, aw, lanes};
    const Shape result = kind == "output" ? Shape{h ? m : 1, w ? m : 1, lanes} : Shape{ah, aw, lanes};
    if (in.shape != expected) {
      std::string want;
      for (int64_t e : expected) want += (want.empty() ? "" : ", ") + std::to_string(e);
      throw py::value_error("winograd_transform: expected data of shape (" + want + ")");
    }
    py::array out = new_array(in.dtype, result);
    fastconv::winograd_transform(isa, in.dtype, m, axes, kind, in.data(), out.mutable_data());
    return out;
  }, py::arg("isa"), py::arg("m"), py::arg("axes"), py::arg("kind"), py::arg("data"));
  m.def("measure_fma_peak", [](int threads, double seconds) {
    double gflops = 0;
    compute([&] { gflops = fastconv::measure_fma_peak(threads, seconds); }, threads);
    return gflops;
  }, py::arg("threads"), py::arg("seconds") = 0.2);
}
