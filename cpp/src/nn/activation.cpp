// nn/activation.cpp — the elementwise activations of fastconv/activation.hpp, forward and
// backward side by side, each a scalar function of one element applied over the array with
// OpenMP (the compiler vectorises the piecewise-linear ones; the transcendental ones call the
// C library's exp / tanh / erf in the dtype).
//
//   x, y, dy, dx   n elements, any shape; y may alias x and dx may alias dy
//
// Derivatives follow PyTorch's backward kernels, including their choices at the kinks, and are
// computed from the input x.
#include <algorithm>
#include <cmath>

#include "fastconv/activation.hpp"
#include "fastconv/conv.hpp"
#include "fastconv/errors.hpp"
#include "fastconv/runtime.hpp"
#include "util/dtype.hpp"
#include "util/parallel.hpp"

namespace fastconv {

namespace {

constexpr Activation kAll[] = {
    Activation::none,    Activation::relu,        Activation::relu6,     Activation::leaky_relu,
    Activation::hardtanh, Activation::elu,        Activation::sigmoid,   Activation::tanh,
    Activation::silu,    Activation::hardsigmoid, Activation::hardswish, Activation::gelu,
    Activation::gelu_tanh,
};

int threads_for(int64_t n) { return util::threads_for(n, int64_t(1) << 15, num_threads()); }

// out[i] = f(a[i], b[i]) for i < n (b null: f(a[i], 0)), in chunks over the threads; each chunk
// a loop the compiler vectorises.
template <typename T, typename F>
void map(int64_t n, const T* a, const T* b, T* out, F f) {
  constexpr int64_t kChunk = int64_t(1) << 14;
  const int threads = threads_for(n);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk, m = std::min(kChunk, n - i0);
    const T* x = a + i0;
    T* y = out + i0;
    if (b) {
      const T* g = b + i0;
#pragma omp simd
      for (int64_t i = 0; i < m; ++i) y[i] = f(x[i], g[i]);
    } else {
#pragma omp simd
      for (int64_t i = 0; i < m; ++i) y[i] = f(x[i], T(0));
    }
  }
}

template <typename T>
T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }

// sqrt(2 / pi) and gelu_tanh's cubic coefficient (Hendrycks & Gimpel 2016).
constexpr double kGeluBeta = 0.7978845608028654, kGeluKappa = 0.044715;

template <typename T>
void forward(Activation act, T alpha, T beta, int64_t n, const T* x, T* y) {
  const T* none = nullptr;
  switch (act) {
    case Activation::none:
      if (y != x) std::copy(x, x + n, y);
      return;
    case Activation::relu:
      return map(n, x, none, y, [](T v, T) { return v < T(0) ? T(0) : v; });
    case Activation::relu6:
      return map(n, x, none, y, [](T v, T) { return v < T(0) ? T(0) : (v > T(6) ? T(6) : v); });
    case Activation::leaky_relu:
      return map(n, x, none, y, [=](T v, T) { return v > T(0) ? v : v * alpha; });
    case Activation::hardtanh:
      return map(n, x, none, y, [=](T v, T) { return v < alpha ? alpha : (v > beta ? beta : v); });
    case Activation::elu:
      return map(n, x, none, y, [=](T v, T) { return v > T(0) ? v : alpha * std::expm1(v); });
    case Activation::sigmoid:
      return map(n, x, none, y, [](T v, T) { return sigmoid(v); });
    case Activation::tanh:
      return map(n, x, none, y, [](T v, T) { return std::tanh(v); });
    case Activation::silu:
      return map(n, x, none, y, [](T v, T) { return v * sigmoid(v); });
    case Activation::hardsigmoid:
      return map(n, x, none, y, [](T v, T) {
        const T r = v + T(3);
        return (r < T(0) ? T(0) : (r > T(6) ? T(6) : r)) / T(6);
      });
    case Activation::hardswish:
      return map(n, x, none, y, [](T v, T) {
        return v <= T(-3) ? T(0) : (v >= T(3) ? v : v * (v + T(3)) / T(6));
      });
    case Activation::gelu:
      return map(n, x, none, y, [](T v, T) {
        return T(0.5) * v * (T(1) + std::erf(v * T(M_SQRT1_2)));
      });
    case Activation::gelu_tanh:
      return map(n, x, none, y, [](T v, T) {
        return T(0.5) * v * (T(1) + std::tanh(T(kGeluBeta) * (v + T(kGeluKappa) * v * v * v)));
      });
  }
}

template <typename T>
void backward(Activation act, T alpha, T beta, int64_t n, const T* x, const T* dy, T* dx) {
  switch (act) {
    case Activation::none:
      if (dx != dy) std::copy(dy, dy + n, dx);
      return;
    case Activation::relu:
      return map(n, x, dy, dx, [](T v, T g) { return v <= T(0) ? T(0) : g; });
    case Activation::relu6:
      return map(n, x, dy, dx, [](T v, T g) { return (v <= T(0) || v >= T(6)) ? T(0) : g; });
    case Activation::leaky_relu:
      return map(n, x, dy, dx, [=](T v, T g) { return v > T(0) ? g : g * alpha; });
    case Activation::hardtanh:
      return map(n, x, dy, dx, [=](T v, T g) { return (v <= alpha || v >= beta) ? T(0) : g; });
    case Activation::elu:
      return map(n, x, dy, dx, [=](T v, T g) { return v > T(0) ? g : g * alpha * std::exp(v); });
    case Activation::sigmoid:
      return map(n, x, dy, dx, [](T v, T g) {
        const T s = sigmoid(v);
        return g * s * (T(1) - s);
      });
    case Activation::tanh:
      return map(n, x, dy, dx, [](T v, T g) {
        const T t = std::tanh(v);
        return g * (T(1) - t * t);
      });
    case Activation::silu:
      return map(n, x, dy, dx, [](T v, T g) {
        const T s = sigmoid(v);
        return g * s * (T(1) + v * (T(1) - s));
      });
    case Activation::hardsigmoid:
      return map(n, x, dy, dx, [](T v, T g) { return (v > T(-3) && v < T(3)) ? g / T(6) : T(0); });
    case Activation::hardswish:
      return map(n, x, dy, dx, [](T v, T g) {
        return v <= T(-3) ? T(0) : (v < T(3) ? g * (v / T(3) + T(0.5)) : g);
      });
    case Activation::gelu:
      return map(n, x, dy, dx, [](T v, T g) {
        const T cdf = T(0.5) * (T(1) + std::erf(v * T(M_SQRT1_2)));
        const T pdf = std::exp(T(-0.5) * v * v) * T(0.3989422804014327);  // 1 / sqrt(2 pi)
        return g * (cdf + v * pdf);
      });
    case Activation::gelu_tanh:
      return map(n, x, dy, dx, [](T v, T g) {
        const T t = std::tanh(T(kGeluBeta) * (v + T(kGeluKappa) * v * v * v));
        const T inner = T(kGeluBeta) * (T(1) + T(3 * kGeluKappa) * v * v);
        return g * (T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * inner);
      });
  }
}

}  // namespace

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::none: return "none";
    case Activation::relu: return "relu";
    case Activation::relu6: return "relu6";
    case Activation::leaky_relu: return "leaky_relu";
    case Activation::hardtanh: return "hardtanh";
    case Activation::elu: return "elu";
    case Activation::sigmoid: return "sigmoid";
    case Activation::tanh: return "tanh";
    case Activation::silu: return "silu";
    case Activation::hardsigmoid: return "hardsigmoid";
    case Activation::hardswish: return "hardswish";
    case Activation::gelu: return "gelu";
    case Activation::gelu_tanh: return "gelu_tanh";
  }
  return "?";
}

Activation parse_activation(const std::string& name) {
  std::string names;
  for (Activation a : kAll) {
    if (name == activation_name(a)) return a;
    names += std::string(names.empty() ? "'" : ", '") + activation_name(a) + "'";
  }
  throw InvalidArgument("activation must be one of " + names + ", but got '" + name + "'");
}

bool is_clamp(Activation a) { return a == Activation::relu || a == Activation::relu6; }

bool has_parameters(Activation a) {
  return a == Activation::leaky_relu || a == Activation::hardtanh || a == Activation::elu;
}

void activation_fwd(Activation act, double alpha, double beta, DType dtype, int64_t n,
                    const void* x, void* y) {
  if (n <= 0) return;
  util::with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    forward(act, T(alpha), T(beta), n, static_cast<const T*>(x), static_cast<T*>(y));
  });
}

void activation_bwd(Activation act, double alpha, double beta, DType dtype, int64_t n,
                    const void* x, const void* dy, void* dx) {
  if (n <= 0) return;
  util::with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    backward(act, T(alpha), T(beta), n, static_cast<const T*>(x), static_cast<const T*>(dy),
             static_cast<T*>(dx));
  });
}

}  // namespace fastconv
