// bindings/module.cpp — the fastconv._core extension: the only file that includes pybind11.
//
// A thin adapter (as SciPy's pocketfft binding): checks dtypes, turns any NumPy layout into a
// C-contiguous native-endian array (a copy only when needed), converts parameters, allocates the
// output, releases the GIL around the C++ call, and maps fastconv::Error subclasses to Python
// exceptions. Argument forms (int vs tuple) are normalised in python/fastconv/functional.py;
// every value check happens in the C++ core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "fastconv/fastconv.hpp"

namespace py = pybind11;

namespace {

// A dense, C-contiguous, native-endian view of a float32/float64 array (copied when needed).
struct Operand {
  py::array array;
  fastconv::DType dtype;
  std::vector<int64_t> shape;
};

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

Operand as_operand(const std::string& op, const char* name, const py::object& obj) {
  py::array a = py::array::ensure(obj);
  if (!a) throw py::type_error(op + ": " + name + " must be a numpy array");
  const char kind = a.dtype().kind();
  const auto size = a.dtype().itemsize();
  Operand r;
  if (kind == 'f' && size == 4) {
    r.dtype = fastconv::DType::f32;
    r.array = py::array_t<float, py::array::c_style>::ensure(a);
  } else if (kind == 'f' && size == 8) {
    r.dtype = fastconv::DType::f64;
    r.array = py::array_t<double, py::array::c_style>::ensure(a);
  } else {
    throw py::type_error(op + ": expected " + name + " to have dtype float32 or float64, but got " +
                         dtype_name(a));
  }
  if (!r.array) throw py::error_already_set();
  for (py::ssize_t i = 0; i < r.array.ndim(); ++i) r.shape.push_back(r.array.shape(i));
  return r;
}

const char* dtype_str(fastconv::DType d) { return d == fastconv::DType::f32 ? "float32" : "float64"; }

// padding: a list of ints or the string "same" / "valid".
fastconv::PaddingSpec padding_spec(const std::variant<std::string, std::vector<int64_t>>& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return fastconv::PaddingSpec::from_string(*s);
  fastconv::PaddingSpec p;
  p.values = std::get<std::vector<int64_t>>(v);
  return p;
}

py::array conv_forward(int rank, const py::object& input, const py::object& weight,
                       const py::object& bias, const std::vector<int64_t>& stride,
                       const std::variant<std::string, std::vector<int64_t>>& padding,
                       const std::vector<int64_t>& dilation, int64_t groups,
                       const std::string& padding_mode, const std::string& algo) {
  const std::string op = "conv" + std::to_string(rank) + "d";
  const Operand x = as_operand(op, "input", input);
  const Operand w = as_operand(op, "weight", weight);
  std::optional<Operand> b;
  if (!bias.is_none()) b = as_operand(op, "bias", bias);
  if (w.dtype != x.dtype || (b && b->dtype != x.dtype)) {
    std::string got = std::string("input ") + dtype_str(x.dtype) + ", weight " + dtype_str(w.dtype);
    if (b) got += std::string(", bias ") + dtype_str(b->dtype);
    throw py::type_error(op + ": expected input, weight and bias to have the same dtype, but got " +
                         got);
  }

  fastconv::ConvOptions options;
  options.stride = stride;
  options.dilation = dilation;
  options.groups = groups;
  try {
    options.padding = padding_spec(padding);
    options.padding_mode = fastconv::parse_padding_mode(padding_mode);
  } catch (const fastconv::InvalidArgument& e) {
    throw fastconv::InvalidArgument(op + ": " + e.what());
  }
  const fastconv::ConvProblem problem = fastconv::make_conv_problem(
      rank, x.shape, w.shape,
      b ? std::optional<std::vector<int64_t>>(b->shape) : std::nullopt, options);
  fastconv::resolve_conv_algorithm(problem, x.dtype, algo);  // fail before allocating

  const auto shape = problem.output_shape();
  py::array y = x.dtype == fastconv::DType::f32
                    ? py::array(py::array_t<float>(std::vector<py::ssize_t>(shape.begin(), shape.end())))
                    : py::array(py::array_t<double>(std::vector<py::ssize_t>(shape.begin(), shape.end())));
  const void* xp = x.array.data();
  const void* wp = w.array.data();
  const void* bp = b ? b->array.data() : nullptr;
  void* yp = y.mutable_data();
  {
    py::gil_scoped_release release;
    fastconv::conv_fwd(problem, x.dtype, xp, wp, bp, yp, algo);
  }
  return y;
}

py::dict info() {
  py::dict d;
  d["version"] = fastconv::version;
  d["isa"] = fastconv::active_isa();
  d["isas"] = fastconv::available_isas();
  d["num_threads"] = fastconv::num_threads();
  d["compiler"] = fastconv::compiler_description();
  d["eigen"] = fastconv::eigen_version();
  d["openmp"] = fastconv::openmp_version();
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastconv's compiled core (private: use fastconv.functional and fastconv.*)";

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

  m.def("conv_forward", &conv_forward, py::arg("rank"), py::arg("input"), py::arg("weight"),
        py::arg("bias"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"), py::arg("padding_mode"), py::arg("algo"),
        "N-d convolution forward; see fastconv.functional.conv2d.");
  m.def("algorithms", &fastconv::conv_algorithm_names, "Registered convolution algorithms.");
  m.def("algorithm_descriptions", &fastconv::conv_algorithm_descriptions);
  m.def("info", &info);
  m.def("set_isa", &fastconv::set_isa, py::arg("name"));
  m.def("get_isa", &fastconv::active_isa);
  m.def("set_num_threads", &fastconv::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &fastconv::num_threads);
}
