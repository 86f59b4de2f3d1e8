// cpp/tests/test_api.cpp — C++ tests of the public API, run by ctest (no framework: each check
// prints what failed and the run exits non-zero).
//
// For every available ISA (set_isa) and every registered algorithm that takes the problem, the
// three directions of a set of small convolutions (groups, strides, dilation, padding) are
// compared with a naive double-precision reference within the accuracy budget of DESIGN.md,
// and every output buffer sits between guard regions filled with a canary pattern that must
// come back untouched (out-of-bounds writes, XNNPACK-style). Pooling, normalisation, linear,
// softmax and the error hierarchy are checked the same way on a few cases.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include "fastconv/fastconv.hpp"

namespace {

using Shape = std::vector<int64_t>;
int failures = 0, checks = 0;

void check(bool ok, const std::string& what) {
  ++checks;
  if (!ok) {
    ++failures;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::vector<float> random(int64_t n, uint32_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = float(seed >> 8) / float(1u << 24) * 2.0f - 1.0f;
  }
  return v;
}

// An output buffer of n floats between two guard regions of canaries.
class Guarded {
 public:
  static constexpr int64_t kGuard = 64;
  explicit Guarded(int64_t n) : n_(n), buf_(static_cast<size_t>(n + 2 * kGuard)) {
    for (int64_t i = 0; i < kGuard; ++i) buf_[i] = buf_[kGuard + n + i] = canary(i);
    for (int64_t i = 0; i < n; ++i) buf_[kGuard + i] = 12345.0f;  // garbage the op must overwrite
  }
  float* data() { return buf_.data() + kGuard; }
  const float* data() const { return buf_.data() + kGuard; }
  bool intact() const {
    for (int64_t i = 0; i < kGuard; ++i)
      if (!same(buf_[i], canary(i)) || !same(buf_[kGuard + n_ + i], canary(i))) return false;
    return true;
  }

 private:
  static float canary(int64_t i) { return float(-1e30) + float(i); }
  static bool same(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }
  int64_t n_;
  std::vector<float> buf_;
};

double normalized_error(const float* y, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(y[i])) return INFINITY;
    num = std::max(num, std::fabs(double(y[i]) - ref[i]));
    den = std::max(den, std::fabs(ref[i]));
  }
  return den > 0 ? num / den : num;
}

// Visits every (n, k, output position, c, tap) term of a 2-D convolution with zero padding:
// f(y_index, x_index, w_index).
void for_each_term(const fastconv::ConvProblem& p,
                   const std::function<void(int64_t, int64_t, int64_t)>& f) {
  const int64_t Cg = p.C_per_group(), Kg = p.K_per_group();
  const int64_t H = p.in[1], W = p.in[2], OH = p.out[1], OW = p.out[2];
  const int64_t KH = p.kernel[1], KW = p.kernel[2];
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t k = 0; k < p.K; ++k)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow)
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t i = 0; i < KH; ++i)
              for (int64_t j = 0; j < KW; ++j) {
                const int64_t ih = oh * p.stride[1] - p.pad_lo[1] + i * p.dilation[1];
                const int64_t iw = ow * p.stride[2] - p.pad_lo[2] + j * p.dilation[2];
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const int64_t cin = (k / Kg) * Cg + c;
                f(((n * p.K + k) * OH + oh) * OW + ow, ((n * p.C + cin) * H + ih) * W + iw,
                  ((k * Cg + c) * KH + i) * KW + j);
              }
}

double budget(const std::string& algo) {
  return algo == "winograd_f4x3" || algo == "winograd_f6x3" || algo == "winograd" ? 5e-5 : 2e-6;
}

struct ConvCase {
  Shape input, weight;
  int64_t stride, padding, dilation, groups;
};

void test_convolution(const std::string& isa) {
  const ConvCase cases[] = {
      {{2, 8, 9, 10}, {16, 8, 3, 3}, 1, 1, 1, 1},   {{1, 6, 11, 7}, {4, 3, 3, 3}, 2, 1, 1, 2},
      {{1, 16, 8, 8}, {16, 1, 3, 3}, 1, 1, 1, 16},  {{2, 4, 12, 12}, {8, 4, 1, 1}, 1, 0, 1, 1},
      {{1, 3, 17, 17}, {8, 3, 5, 5}, 1, 2, 2, 1},   {{1, 32, 6, 6}, {32, 32, 3, 3}, 1, 1, 1, 1},
  };
  for (const ConvCase& cc : cases) {
    fastconv::ConvOptions o;
    o.stride = {cc.stride};
    o.padding.values = {cc.padding};
    o.dilation = {cc.dilation};
    o.groups = cc.groups;
    const auto p = fastconv::make_conv_problem(2, cc.input, cc.weight, std::nullopt, o);
    const auto x = random(numel(p.input_shape()), 1), w = random(numel(p.weight_shape()), 2),
               g = random(numel(p.output_shape()), 3);
    std::vector<double> y_ref(numel(p.output_shape())), dx_ref(x.size()), dw_ref(w.size());
    for_each_term(p, [&](int64_t yi, int64_t xi, int64_t wi) {
      y_ref[yi] += double(x[xi]) * w[wi];
      dx_ref[xi] += double(g[yi]) * w[wi];
      dw_ref[wi] += double(g[yi]) * x[xi];
    });
    const std::string where = isa + " input " + std::to_string(cc.input[1]) + "x" +
                              std::to_string(cc.input[2]) + " kernel " +
                              std::to_string(cc.weight[2]) + " groups " + std::to_string(cc.groups);
    for (const std::string& algo : fastconv::conv_algorithm_names()) {
      const auto run = [&](fastconv::ConvDirection d, int64_t n, const std::vector<double>& ref,
                           const std::function<void(float*)>& op) {
        if (!fastconv::conv_algorithm_names(d).empty()) {
          const auto names = fastconv::conv_algorithm_names(d);
          if (std::find(names.begin(), names.end(), algo) == names.end()) return;
        }
        Guarded out(n);
        try {
          op(out.data());
        } catch (const fastconv::Unsupported&) {
          return;  // the algorithm does not take this problem
        }
        const double err = normalized_error(out.data(), ref);
        check(err <= budget(algo), where + " " + algo + " " + fastconv::direction_name(d) +
                                       ": error " + std::to_string(err));
        check(out.intact(), where + " " + algo + " " + fastconv::direction_name(d) +
                                ": wrote outside its output");
      };
      const auto f32 = fastconv::DType::f32;
      run(fastconv::ConvDirection::forward, numel(p.output_shape()), y_ref, [&](float* y) {
        fastconv::conv_fwd(p, f32, x.data(), w.data(), nullptr, y, algo);
      });
      run(fastconv::ConvDirection::backward_data, numel(p.input_shape()), dx_ref, [&](float* dx) {
        fastconv::conv_bwd_data(p, f32, w.data(), g.data(), dx, algo);
      });
      run(fastconv::ConvDirection::backward_weights, numel(p.weight_shape()), dw_ref,
          [&](float* dw) { fastconv::conv_bwd_weights(p, f32, x.data(), g.data(), dw, algo); });
    }
  }
}

void test_pooling_norm_linear(const std::string& isa) {
  const auto f32 = fastconv::DType::f32;
  // max pool 3x3 / 2, padding 1
  fastconv::PoolOptions po;
  po.kernel_size = {3};
  po.stride = {2};
  po.padding = {1};
  const auto pp = fastconv::make_pool_problem(fastconv::PoolKind::max, 2, {2, 3, 9, 8}, po, "max_pool2d");
  const auto x = random(2 * 3 * 9 * 8, 4);
  Guarded y(numel(pp.output_shape()));
  fastconv::pool_fwd(pp, f32, x.data(), y.data(), nullptr);
  std::vector<double> ref(numel(pp.output_shape()), -INFINITY);
  for (int64_t pl = 0; pl < 6; ++pl)
    for (int64_t oh = 0; oh < pp.out[1]; ++oh)
      for (int64_t ow = 0; ow < pp.out[2]; ++ow)
        for (int64_t i = 0; i < 3; ++i)
          for (int64_t j = 0; j < 3; ++j) {
            const int64_t h = oh * 2 - 1 + i, w = ow * 2 - 1 + j;
            if (h < 0 || h >= 9 || w < 0 || w >= 8) continue;
            double& r = ref[(pl * pp.out[1] + oh) * pp.out[2] + ow];
            r = std::max(r, double(x[(pl * 9 + h) * 8 + w]));
          }
  check(normalized_error(y.data(), ref) == 0, isa + " max pool");
  check(y.intact(), isa + " max pool wrote outside its output");

  // layer norm of rows, against the two-pass definition
  const auto np = fastconv::make_norm_problem(fastconv::NormKind::layer, {5, 12}, 1, {12}, "layer_norm");
  const auto v = random(60, 5);
  Guarded z(60);
  std::vector<double> mean(5), var(5), zref(60);
  fastconv::norm_fwd(np, f32, v.data(), nullptr, nullptr, true, 1e-5, mean.data(), var.data(), z.data());
  for (int r = 0; r < 5; ++r) {
    double m = 0, s = 0;
    for (int i = 0; i < 12; ++i) m += v[r * 12 + i] / 12.0;
    for (int i = 0; i < 12; ++i) s += (v[r * 12 + i] - m) * (v[r * 12 + i] - m) / 12.0;
    for (int i = 0; i < 12; ++i) zref[r * 12 + i] = (v[r * 12 + i] - m) / std::sqrt(s + 1e-5);
  }
  check(normalized_error(z.data(), zref) <= 2e-6, isa + " layer norm");
  check(z.intact(), isa + " layer norm wrote outside its output");

  // linear 7 -> 5 on 3 rows, with bias
  const auto lp = fastconv::make_linear_problem({3, 7}, {5, 7}, Shape{5});
  const auto a = random(21, 6), wl = random(35, 7), b = random(5, 8);
  Guarded out(15);
  fastconv::linear_fwd(lp, f32, a.data(), wl.data(), b.data(), out.data());
  std::vector<double> lref(15);
  for (int m = 0; m < 3; ++m)
    for (int n = 0; n < 5; ++n) {
      double s = b[n];
      for (int k = 0; k < 7; ++k) s += double(a[m * 7 + k]) * wl[n * 7 + k];
      lref[m * 5 + n] = s;
    }
  check(normalized_error(out.data(), lref) <= 2e-6, isa + " linear");
  check(out.intact(), isa + " linear wrote outside its output");

  // softmax rows sum to one
  Guarded sm(21);
  fastconv::softmax_fwd(f32, 3, 7, 1, a.data(), sm.data(), false);
  double total = 0;
  for (int i = 0; i < 21; ++i) total += sm.data()[i];
  check(std::fabs(total - 3) < 1e-5, isa + " softmax");
  check(sm.intact(), isa + " softmax wrote outside its output");
}

template <typename E>
void expect_error(const std::function<void()>& f, const std::string& what) {
  try {
    f();
    check(false, what + ": no exception");
  } catch (const E&) {
    check(true, what);
  } catch (const std::exception& e) {
    check(false, what + ": another exception: " + e.what());
  }
}

void test_errors() {
  fastconv::ConvOptions o;
  expect_error<fastconv::InvalidArgument>(
      [&] { fastconv::make_conv_problem(2, {1, 3, 8, 8}, {4, 2, 3, 3}, std::nullopt, o); },
      "channel mismatch is InvalidArgument");
  o.stride = {0};
  expect_error<fastconv::InvalidArgument>(
      [&] { fastconv::make_conv_problem(2, {1, 3, 8, 8}, {4, 3, 3, 3}, std::nullopt, o); },
      "stride 0 is InvalidArgument");
  expect_error<fastconv::OverflowError>(
      [&] {
        fastconv::make_conv_problem(2, {int64_t(1) << 40, 3, int64_t(1) << 20, 8}, {4, 3, 3, 3},
                                    std::nullopt, fastconv::ConvOptions{});
      },
      "huge sizes are OverflowError");
  fastconv::ConvOptions same;
  const auto p = fastconv::make_conv_problem(2, {1, 3, 8, 8}, {4, 3, 3, 3}, std::nullopt, same);
  std::vector<float> x(192), w(108), y(144);
  expect_error<fastconv::Unsupported>(
      [&] { fastconv::conv_fwd(p, fastconv::DType::f32, x.data(), w.data(), nullptr, y.data(), "winograd_f2x3"); },
      "an algorithm that does not apply is Unsupported (Winograd needs 4 channels)");
  expect_error<fastconv::InvalidArgument>([] { fastconv::set_num_threads(0); },
                                          "0 threads is InvalidArgument");
}

// The bad-argument sweep: every shape extent and parameter of every make_*_problem call, set in
// turn to each value of kValues in an otherwise valid call. Each call either validates (and
// then its output shape's element count fits in int64) or throws InvalidArgument /
// OverflowError — never another exception, a crash, undefined behaviour (the sanitizer build
// runs this too) or an allocation: validation is arithmetic only, so the slowest case is
// printed as evidence.
void test_bad_argument_sweep() {
  using Sizes = std::vector<int64_t>;
  const int64_t kValues[] = {0, -1, 1, 2, INT32_MAX, int64_t(1) << 31, int64_t(1) << 62,
                             INT64_MAX, INT64_MIN};
  struct Slot {
    std::string name;
    std::function<Sizes(int64_t)> run;  // the output shape of the validated problem
  };
  std::vector<Slot> slots;
  auto each = [](Sizes v, size_t i, int64_t value) { v[i] = value; return v; };
  const Sizes x{2, 4, 9, 9}, w{6, 2, 3, 3};
  // an extent of 0 elsewhere: products of the others must still be checked
  const Sizes x0{0, 4, 9, 9};
  for (size_t i = 0; i < 4; ++i) {
    for (const auto& [base, tag] : {std::pair<Sizes, std::string>{x, ""}, {x0, " (N = 0)"}}) {
      slots.push_back({"group_norm input[" + std::to_string(i) + "]" + tag, [=](int64_t v) {
        fastconv::make_norm_problem(fastconv::NormKind::group, each(base, i, v), 2, {}, "gn");
        return base;
      }});
      slots.push_back({"batch_norm input[" + std::to_string(i) + "]" + tag, [=](int64_t v) {
        fastconv::make_norm_problem(fastconv::NormKind::batch, each(base, i, v), 1, {}, "bn");
        return base;
      }});
      slots.push_back({"layer_norm input[" + std::to_string(i) + "]" + tag, [=](int64_t v) {
        const Sizes in = each(base, i, v);
        fastconv::make_norm_problem(fastconv::NormKind::layer, in, 1, {in[3]}, "ln");
        return base;
      }});
      slots.push_back({"conv input[" + std::to_string(i) + "]" + tag, [=](int64_t v) {
        fastconv::ConvOptions o;
        return fastconv::make_conv_problem(2, each(base, i, v), {6, 4, 3, 3}, std::nullopt, o)
            .output_shape();
      }});
      slots.push_back({"pool input[" + std::to_string(i) + "]" + tag, [=](int64_t v) {
        fastconv::PoolOptions o;
        o.kernel_size = {2};
        return fastconv::make_pool_problem(fastconv::PoolKind::max, 2, each(base, i, v), o, "mp")
            .output_shape();
      }});
    }
  }
  slots.push_back({"group_norm groups (C = 0)", [=](int64_t v) {
    fastconv::make_norm_problem(fastconv::NormKind::group, {5, 0, 3}, v, {}, "gn");
    return x;
  }});
  for (size_t i = 0; i < 4; ++i) {
    slots.push_back({"conv input[" + std::to_string(i) + "]", [=](int64_t v) {
      fastconv::ConvOptions o;
      o.groups = 2;
      return fastconv::make_conv_problem(2, each(x, i, v), w, std::nullopt, o).output_shape();
    }});
    slots.push_back({"conv weight[" + std::to_string(i) + "]", [=](int64_t v) {
      fastconv::ConvOptions o;
      o.groups = 2;
      return fastconv::make_conv_problem(2, x, each(w, i, v), std::nullopt, o).output_shape();
    }});
    slots.push_back({"conv_transpose input[" + std::to_string(i) + "]", [=](int64_t v) {
      fastconv::ConvTransposeOptions o;
      o.stride = {2};
      return fastconv::make_conv_transpose_problem(2, each(x, i, v), {4, 3, 3, 3}, std::nullopt, o)
          .input_shape();
    }});
  }
  const std::vector<std::pair<std::string, std::function<void(fastconv::ConvOptions&, int64_t)>>>
      conv_params = {
          {"stride", [](auto& o, int64_t v) { o.stride = {v}; }},
          {"stride[1]", [](auto& o, int64_t v) { o.stride = {1, v}; }},
          {"padding", [](auto& o, int64_t v) { o.padding.values = {v}; }},
          {"padding[1]", [](auto& o, int64_t v) { o.padding.values = {1, v}; }},
          {"dilation", [](auto& o, int64_t v) { o.dilation = {v}; }},
          {"groups", [](auto& o, int64_t v) { o.groups = v; }},
          {"reflect padding", [](auto& o, int64_t v) {
             o.padding.values = {v};
             o.padding_mode = fastconv::PaddingMode::reflect;
           }},
          {"circular padding", [](auto& o, int64_t v) {
             o.padding.values = {v};
             o.padding_mode = fastconv::PaddingMode::circular;
           }},
      };
  for (const auto& [name, set] : conv_params) {
    slots.push_back({"conv " + name, [=](int64_t v) {
      fastconv::ConvOptions o;
      set(o, v);
      return fastconv::make_conv_problem(2, {2, 4, 9, 9}, {6, 4, 3, 3}, std::nullopt, o)
          .output_shape();
    }});
  }
  const std::vector<std::pair<std::string, std::function<void(fastconv::ConvTransposeOptions&, int64_t)>>>
      transpose_params = {
          {"stride", [](auto& o, int64_t v) { o.stride = {v}; }},
          {"padding", [](auto& o, int64_t v) { o.padding = {v}; }},
          {"output_padding", [](auto& o, int64_t v) { o.stride = {2}, o.output_padding = {v}; }},
          {"dilation", [](auto& o, int64_t v) { o.dilation = {v}; }},
          {"groups", [](auto& o, int64_t v) { o.groups = v; }},
      };
  for (const auto& [name, set] : transpose_params) {
    slots.push_back({"conv_transpose " + name, [=](int64_t v) {
      fastconv::ConvTransposeOptions o;
      set(o, v);
      return fastconv::make_conv_transpose_problem(2, x, {4, 3, 3, 3}, std::nullopt, o)
          .input_shape();
    }});
  }
  for (auto kind : {fastconv::PoolKind::max, fastconv::PoolKind::avg}) {
    const std::string k = kind == fastconv::PoolKind::max ? "max_pool " : "avg_pool ";
    const std::vector<std::pair<std::string, std::function<void(fastconv::PoolOptions&, int64_t)>>>
        pool_params = {
            {"kernel_size", [](auto& o, int64_t v) { o.kernel_size = {v}; }},
            {"stride", [](auto& o, int64_t v) { o.stride = {v}; }},
            {"stride, padding 1", [](auto& o, int64_t v) { o.stride = {v}, o.padding = {1}; }},
            {"padding", [](auto& o, int64_t v) { o.padding = {v}; }},
            {"dilation", [](auto& o, int64_t v) { o.dilation = {v}; }},
            {"ceil stride", [](auto& o, int64_t v) { o.stride = {v}, o.ceil_mode = true; }},
            {"divisor_override", [](auto& o, int64_t v) { o.divisor_override = v; }},
        };
    for (const auto& [name, set] : pool_params) {
      slots.push_back({k + name, [=](int64_t v) {
        fastconv::PoolOptions o;
        o.kernel_size = {3};
        set(o, v);
        return fastconv::make_pool_problem(kind, 2, x, o, "pool").output_shape();
      }});
    }
    for (size_t i = 0; i < 4; ++i) {
      slots.push_back({k + "input[" + std::to_string(i) + "]", [=](int64_t v) {
        fastconv::PoolOptions o;
        o.kernel_size = {2};
        return fastconv::make_pool_problem(kind, 2, each(x, i, v), o, "pool").output_shape();
      }});
    }
  }
  slots.push_back({"adaptive output_size", [=](int64_t v) {
    return fastconv::make_adaptive_pool_problem(fastconv::PoolKind::adaptive_avg, 2, x, {v}, "ap")
        .output_shape();
  }});
  slots.push_back({"group_norm groups", [=](int64_t v) {
    fastconv::make_norm_problem(fastconv::NormKind::group, x, v, {}, "gn");
    return x;
  }});
  slots.push_back({"layer_norm normalized_shape", [=](int64_t v) {
    fastconv::make_norm_problem(fastconv::NormKind::layer, x, 1, {9, v}, "ln");
    return x;
  }});
  for (size_t i = 0; i < 2; ++i) {
    slots.push_back({"linear weight[" + std::to_string(i) + "]", [=](int64_t v) {
      return fastconv::make_linear_problem({3, 5}, each({4, 5}, i, v), std::nullopt).output_shape();
    }});
  }
  slots.push_back({"softmax dim", [=](int64_t v) {
    fastconv::softmax_shape(x, v, "softmax");
    return x;
  }});
  int cases = 0;
  double slowest = 0;
  std::string slowest_case;
  for (const Slot& slot : slots) {
    for (int64_t v : kValues) {
      const std::string what = "bad-argument sweep: " + slot.name + " = " + std::to_string(v);
      const auto start = std::chrono::steady_clock::now();
      try {
        const Sizes shape = slot.run(v);
        int64_t n = 1;
        bool fits = true;
        for (int64_t d : shape) fits &= d >= 0 && !__builtin_mul_overflow(n, d, &n);
        check(fits, what + ": validated, but the output's size does not fit in int64");
      } catch (const fastconv::InvalidArgument&) {
      } catch (const fastconv::OverflowError&) {
      } catch (const std::exception& e) {
        check(false, what + ": " + typeid(e).name() + ": " + e.what());
      }
      const double ms = std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now() - start).count();
      if (ms > slowest) slowest = ms, slowest_case = what;
      ++cases;
    }
  }
  check(cases > 0, "bad-argument sweep ran");
  std::printf("bad-argument sweep: %d cases, slowest %.3f ms (%s)\n", cases, slowest,
              slowest_case.c_str());
}

// ThreadShare: threads computing at once split the thread setting, counted as each joins.
void test_thread_share() {
  const int saved = fastconv::num_threads();
  fastconv::set_num_threads(8);
  std::mutex m;
  std::condition_variable cv;
  int joined = 0;
  bool release = false;
  std::vector<int> seen(4);
  std::vector<std::thread> callers;
  for (int i = 0; i < 4; ++i) {
    callers.emplace_back([&, i] {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return joined == i; });  // join one after another
      const fastconv::ThreadShare share;
      const fastconv::ThreadShare nested;  // counts once
      seen[i] = fastconv::num_threads();
      ++joined;
      cv.notify_all();
      cv.wait(lock, [&] { return release; });  // hold the share until all have joined
    });
  }
  {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return joined == 4; });
    release = true;
    cv.notify_all();
  }
  for (auto& t : callers) t.join();
  check(seen == std::vector<int>({8, 4, 2, 2}), "ThreadShare: 8 threads shared by 1, 2, 3, 4 callers");
  {
    const fastconv::ThreadShare alone;
    check(fastconv::num_threads() == 8, "ThreadShare: a caller alone again gets every thread");
  }
  check(fastconv::num_threads() == 8, "ThreadShare: the setting outside a share");
  fastconv::set_num_threads(saved);
}

// The array-level API (tensor.hpp) gives the problem-level results, bit for bit, and checks its
// outputs and dtypes.
void test_tensor_api() {
  using fastconv::View;
  const auto f32 = fastconv::DType::f32;
  const auto x = random(2 * 3 * 9 * 9, 31), w = random(4 * 3 * 3 * 3, 32), b = random(4, 33);
  const View xv{x.data(), f32, {2, 3, 9, 9}}, wv{w.data(), f32, {4, 3, 3, 3}}, bv{b.data(), f32, {4}};
  fastconv::ConvOptions o;
  o.padding.values = {1};
  const auto p = fastconv::make_conv_problem(2, xv.shape, wv.shape, Shape{4}, o);
  std::vector<float> want(static_cast<size_t>(numel(p.output_shape())));
  fastconv::conv_fwd(p, f32, x.data(), w.data(), b.data(), want.data());
  fastconv::Tensor y = fastconv::conv(xv, wv, &bv, o);
  check(y.shape() == p.output_shape() && std::memcmp(y.data(), want.data(), want.size() * 4) == 0,
        "tensor conv equals conv_fwd");
  Guarded out(numel(p.output_shape()));
  fastconv::conv(xv, wv, &bv, fastconv::MutableView{out.data(), f32, p.output_shape()}, o);
  check(std::memcmp(out.data(), want.data(), want.size() * 4) == 0 && out.intact(),
        "tensor conv into a caller's array");
  expect_error<fastconv::InvalidArgument>(
      [&] { fastconv::conv(xv, wv, &bv, fastconv::MutableView{out.data(), f32, {2, 4, 9, 8}}, o); },
      "tensor conv: an output of the wrong shape is InvalidArgument");
  const std::vector<double> wd(w.begin(), w.end());
  expect_error<fastconv::DTypeError>(
      [&] { fastconv::conv(xv, View{wd.data(), fastconv::DType::f64, wv.shape}, nullptr, o); },
      "tensor conv: mixed dtypes are DTypeError");
  const auto g = random(numel(p.output_shape()), 34);
  const View gv{g.data(), f32, p.output_shape()};
  const auto dx = fastconv::conv_input_grad(xv.shape, wv, gv, o);
  const auto dw = fastconv::conv_weight_grad(xv, wv.shape, gv, o);
  std::vector<float> dx_want(x.size()), dw_want(w.size());
  fastconv::conv_bwd_data(p, f32, w.data(), g.data(), dx_want.data());
  fastconv::conv_bwd_weights(p, f32, x.data(), g.data(), dw_want.data());
  check(std::memcmp(dx.data(), dx_want.data(), dx_want.size() * 4) == 0, "tensor conv_input_grad");
  check(std::memcmp(dw.data(), dw_want.data(), dw_want.size() * 4) == 0, "tensor conv_weight_grad");
  fastconv::ConvTransposeOptions to;
  to.stride = {2};
  const auto up = fastconv::conv_transpose(View{want.data(), f32, p.output_shape()},
                                           View{w.data(), f32, {4, 3, 3, 3}}, nullptr, to);
  check(up.shape() == Shape({2, 3, 19, 19}), "tensor conv_transpose shape");
  fastconv::PoolOptions po;
  po.kernel_size = {2};
  std::vector<int64_t> idx(2 * 3 * 4 * 4);
  const auto pooled = fastconv::pool(fastconv::PoolKind::max, 2, xv, po, idx.data());
  check(pooled.shape() == Shape({2, 3, 4, 4}) && idx[0] >= 0 && idx[0] < 81, "tensor pool");
  const auto ln = fastconv::layer_norm(xv, {9, 9}, nullptr, nullptr);
  double m = 0;
  for (int i = 0; i < 81; ++i) m += ln.as<float>()[i];
  check(std::fabs(m) < 1e-4, "tensor layer_norm centres each row");
  const auto r = fastconv::activation(fastconv::Activation::relu, xv);
  check(r.as<float>()[0] == std::max(x[0], 0.0f), "tensor activation");
  const auto sm = fastconv::softmax(View{b.data(), f32, {4}}, 0);
  check(std::fabs(sm.as<float>()[0] + sm.as<float>()[1] + sm.as<float>()[2] + sm.as<float>()[3] - 1) < 1e-6,
        "tensor softmax");
  // normalisations, gradients: the array forms equal the problem-level calls
  {
    const auto bp = fastconv::make_norm_problem(fastconv::NormKind::batch, xv.shape, 1, {}, "bn");
    std::vector<double> rm{0.1, -0.2, 0.3}, rv{0.5, 1.5, 2.0};
    const std::vector<float> rmf(rm.begin(), rm.end()), rvf(rv.begin(), rv.end());
    std::vector<float> bn_want(x.size());
    fastconv::norm_fwd(bp, f32, x.data(), nullptr, nullptr, false, 1e-5, rm.data(), rv.data(),
                       bn_want.data());
    const auto bn = fastconv::batch_norm(xv, View{rmf.data(), f32, {3}}, View{rvf.data(), f32, {3}},
                                         nullptr, nullptr);
    check(std::memcmp(bn.data(), bn_want.data(), x.size() * 4) == 0, "tensor batch_norm");
    const auto gp = fastconv::make_norm_problem(fastconv::NormKind::group, xv.shape, 3, {}, "gn");
    std::vector<double> gm(6), gvar(6);
    std::vector<float> gn_want(x.size());
    fastconv::norm_fwd(gp, f32, x.data(), nullptr, nullptr, true, 1e-5, gm.data(), gvar.data(),
                       gn_want.data());
    const auto gn = fastconv::group_norm(xv, 3, nullptr, nullptr);
    check(std::memcmp(gn.data(), gn_want.data(), x.size() * 4) == 0, "tensor group_norm");
    const auto gx = random(x.size(), 35);
    const View gxv{gx.data(), f32, xv.shape};
    std::vector<float> act_want(x.size());
    fastconv::activation_bwd(fastconv::Activation::silu, 0, 0, f32, int64_t(x.size()), x.data(),
                             gx.data(), act_want.data());
    const auto act = fastconv::activation_input_grad(fastconv::Activation::silu, xv, gxv);
    check(std::memcmp(act.data(), act_want.data(), x.size() * 4) == 0, "tensor activation_input_grad");
    const auto smy = fastconv::softmax(xv, 1);
    const auto smg = fastconv::softmax_input_grad(smy.view(), gxv, 1);
    std::vector<float> smg_want(x.size());
    fastconv::softmax_bwd(f32, 2, 3, 81, smy.data(), gx.data(), smg_want.data(), false);
    check(std::memcmp(smg.data(), smg_want.data(), x.size() * 4) == 0, "tensor softmax_input_grad");
    fastconv::Tensor dbias;
    const auto lw = fastconv::linear_weight_grad(View{x.data(), f32, {6, 81}}, View{gx.data(), f32, {6, 5}}, &dbias);
    const auto w5 = random(5 * 81, 36);
    const auto li = fastconv::linear_input_grad(View{w5.data(), f32, {5, 81}}, View{gx.data(), f32, {6, 5}});
    const auto lp = fastconv::make_linear_problem({6, 81}, {5, 81}, std::nullopt);
    std::vector<float> lw_want(5 * 81), lb_want(5), li_want(6 * 81);
    fastconv::linear_bwd_weights(lp, f32, x.data(), gx.data(), lw_want.data(), lb_want.data());
    fastconv::linear_bwd_data(lp, f32, w5.data(), gx.data(), li_want.data());
    check(std::memcmp(lw.data(), lw_want.data(), lw_want.size() * 4) == 0 &&
              std::memcmp(dbias.data(), lb_want.data(), 5 * 4) == 0 && dbias.shape() == Shape({5}),
          "tensor linear_weight_grad");
    check(std::memcmp(li.data(), li_want.data(), li_want.size() * 4) == 0 && li.shape() == Shape({6, 81}),
          "tensor linear_input_grad");
    const auto mg = fastconv::max_pool_input_grad(2, xv.shape, View{gx.data(), f32, {2, 3, 4, 4}}, idx.data());
    double total = 0;
    for (int64_t i = 0; i < mg.numel(); ++i) total += mg.as<float>()[i];
    double want_total = 0;
    for (int i = 0; i < 96; ++i) want_total += gx[i];
    check(std::fabs(total - want_total) < 1e-4, "tensor max_pool_input_grad conserves the sum");
    const auto ag = fastconv::avg_pool_input_grad(2, xv.shape, View{gx.data(), f32, {2, 3, 4, 4}}, po);
    check(ag.shape() == xv.shape && std::fabs(ag.as<float>()[0] - gx[0] / 4) < 1e-6,
          "tensor avg_pool_input_grad");
  }
  // training-mode batch norm, the normalisations' gradients: against the problem-level calls
  {
    const auto bp = fastconv::make_norm_problem(fastconv::NormKind::batch, xv.shape, 1, {}, "bn");
    const auto wn = random(3, 37), bn_b = random(3, 38), gy = random(x.size(), 39);
    const View wnv{wn.data(), f32, {3}}, bnv{bn_b.data(), f32, {3}}, gyv{gy.data(), f32, xv.shape};
    std::vector<double> mean(3), var(3);
    std::vector<float> want(x.size());
    fastconv::norm_fwd(bp, f32, x.data(), wn.data(), bn_b.data(), true, 1e-5, mean.data(),
                       var.data(), want.data());
    std::vector<float> rm{0.5f, 0.f, -1.f}, rv{1.f, 2.f, 0.25f};
    const std::vector<float> rm0 = rm, rv0 = rv;
    fastconv::MutableView rmv{rm.data(), f32, {3}}, rvv{rv.data(), f32, {3}};
    fastconv::NormStats stats;
    const auto y = fastconv::batch_norm_train(xv, &wnv, &bnv, 1e-5, 0.25, &rmv, &rvv, &stats);
    check(std::memcmp(y.data(), want.data(), x.size() * 4) == 0 && stats.mean == mean &&
              stats.var == var, "tensor batch_norm_train");
    bool moved = true;
    for (int c = 0; c < 3; ++c) {
      moved &= rm[c] == rm0[c] * 0.75f + float(0.25 * mean[c]);
      moved &= rv[c] == rv0[c] * 0.75f + float(0.25 * (var[c] * (162.0 / 161.0)));
    }
    check(moved, "tensor batch_norm_train moves the running statistics (variance unbiased)");
    expect_error<fastconv::InvalidArgument>(
        [&] { fastconv::batch_norm_train(xv, nullptr, nullptr, 1e-5, 0.1, &rmv, nullptr); },
        "tensor batch_norm_train: running_mean without running_var is InvalidArgument");
    std::vector<float> dx(x.size()), dw(3), db(3);
    fastconv::norm_bwd(bp, f32, x.data(), gy.data(), wn.data(), true, 1e-5, mean.data(),
                       var.data(), dx.data(), dw.data(), db.data());
    const auto g = fastconv::batch_norm_grad(xv, gyv, &wnv);
    check(std::memcmp(g.input.data(), dx.data(), x.size() * 4) == 0 &&
              std::memcmp(g.weight.data(), dw.data(), 12) == 0 &&
              std::memcmp(g.bias.data(), db.data(), 12) == 0 && g.weight.shape() == Shape({3}),
          "tensor batch_norm_grad (training)");
    const std::vector<double> rmd(rm0.begin(), rm0.end()), rvd(rv0.begin(), rv0.end());
    fastconv::norm_bwd(bp, f32, x.data(), gy.data(), wn.data(), false, 1e-5, rmd.data(),
                       rvd.data(), dx.data(), dw.data(), db.data());
    const View rm0v{rm0.data(), f32, {3}}, rv0v{rv0.data(), f32, {3}};
    const auto ge = fastconv::batch_norm_grad(xv, gyv, &wnv, 1e-5, &rm0v, &rv0v);
    check(std::memcmp(ge.input.data(), dx.data(), x.size() * 4) == 0 &&
              std::memcmp(ge.weight.data(), dw.data(), 12) == 0,
          "tensor batch_norm_grad (evaluation)");
    const auto gp = fastconv::make_norm_problem(fastconv::NormKind::group, xv.shape, 3, {}, "gn");
    std::vector<double> gm(6), gvar(6);
    fastconv::norm_stats(gp, f32, x.data(), gm.data(), gvar.data());
    fastconv::norm_bwd(gp, f32, x.data(), gy.data(), nullptr, true, 1e-5, gm.data(), gvar.data(),
                       dx.data(), dw.data(), db.data());
    const auto gg = fastconv::group_norm_grad(xv, gyv, 3, nullptr);
    check(std::memcmp(gg.input.data(), dx.data(), x.size() * 4) == 0 &&
              std::memcmp(gg.bias.data(), db.data(), 12) == 0,
          "tensor group_norm_grad");
    const auto lp = fastconv::make_norm_problem(fastconv::NormKind::layer, xv.shape, 1, {9, 9}, "ln");
    std::vector<double> lm(6), lv(6);
    std::vector<float> ldw(81), ldb(81);
    fastconv::norm_stats(lp, f32, x.data(), lm.data(), lv.data());
    fastconv::norm_bwd(lp, f32, x.data(), gy.data(), nullptr, true, 1e-5, lm.data(), lv.data(),
                       dx.data(), ldw.data(), ldb.data());
    const auto lg = fastconv::layer_norm_grad(xv, gyv, {9, 9}, nullptr);
    check(std::memcmp(lg.input.data(), dx.data(), x.size() * 4) == 0 &&
              std::memcmp(lg.weight.data(), ldw.data(), 81 * 4) == 0 &&
              lg.weight.shape() == Shape({9, 9}),
          "tensor layer_norm_grad");
  }
  // transposed convolution's gradients and adaptive pooling: against the problem level
  {
    fastconv::ConvTransposeOptions t;
    t.stride = {2};
    const View tw{w.data(), f32, {4, 3, 3, 3}};
    const Shape tin{2, 4, 5, 5};
    const auto tp = fastconv::make_conv_transpose_problem(2, tin, tw.shape, std::nullopt, t);
    const auto tx = random(numel(tin), 41), tdy = random(numel(tp.input_shape()), 42);
    const View txv{tx.data(), f32, tin}, tdyv{tdy.data(), f32, tp.input_shape()};
    std::vector<float> dx(tx.size()), dw(4 * 27);
    fastconv::conv_transpose_bwd_data(tp, f32, w.data(), tdy.data(), dx.data());
    fastconv::conv_transpose_bwd_weights(tp, f32, tx.data(), tdy.data(), dw.data());
    const auto gx = fastconv::conv_transpose_input_grad(tin, tw, tdyv, t);
    const auto gw = fastconv::conv_transpose_weight_grad(txv, tw.shape, tdyv, t);
    check(gx.shape() == tin && std::memcmp(gx.data(), dx.data(), dx.size() * 4) == 0,
          "tensor conv_transpose_input_grad");
    check(gw.shape() == tw.shape && std::memcmp(gw.data(), dw.data(), dw.size() * 4) == 0,
          "tensor conv_transpose_weight_grad");
    const auto ap = fastconv::make_adaptive_pool_problem(fastconv::PoolKind::adaptive_max, 2,
                                                         xv.shape, {4, std::nullopt}, "amp");
    std::vector<float> am(static_cast<size_t>(numel(ap.output_shape())));
    std::vector<int64_t> ai(am.size()), ai2(am.size());
    fastconv::pool_fwd(ap, f32, x.data(), am.data(), ai.data());
    const auto a = fastconv::adaptive_pool(fastconv::PoolKind::adaptive_max, 2, xv,
                                           {4, std::nullopt}, ai2.data());
    check(a.shape() == Shape({2, 3, 4, 9}) && std::memcmp(a.data(), am.data(), am.size() * 4) == 0 &&
              ai == ai2, "tensor adaptive_pool");
    const auto gp = fastconv::make_adaptive_pool_problem(fastconv::PoolKind::adaptive_avg, 2,
                                                         xv.shape, {4, 5}, "aap");
    const auto ag = random(numel(gp.output_shape()), 43);
    std::vector<float> ag_want(x.size());
    fastconv::pool_avg_bwd(gp, f32, ag.data(), ag_want.data());
    const auto agx = fastconv::adaptive_avg_pool_input_grad(2, xv.shape,
                                                            View{ag.data(), f32, gp.output_shape()});
    check(agx.shape() == xv.shape && std::memcmp(agx.data(), ag_want.data(), x.size() * 4) == 0,
          "tensor adaptive_avg_pool_input_grad");
  }
  // plans on arrays: the same numbers as the plan made from the problem
  {
    fastconv::ConvOptions po2;
    po2.padding.values = {1};
    const auto plan = fastconv::conv_plan(xv.shape, wv, &bv, po2, "auto", fastconv::Activation::relu);
    const fastconv::ConvPlan same_plan(plan.problem(), f32, w.data(), b.data(), plan.algorithm(),
                                       fastconv::Activation::relu);
    std::vector<float> want(static_cast<size_t>(numel(plan.problem().output_shape())));
    same_plan.forward(x.data(), want.data());
    const auto y = fastconv::forward(plan, xv);
    check(y.shape() == plan.problem().output_shape() &&
              std::memcmp(y.data(), want.data(), want.size() * 4) == 0, "tensor plan forward");
    const auto res = random(want.size(), 40);
    const View resv{res.data(), f32, plan.problem().output_shape()};
    same_plan.forward(x.data(), want.data(), res.data());
    const auto yr = fastconv::forward(plan, xv, &resv);
    check(std::memcmp(yr.data(), want.data(), want.size() * 4) == 0, "tensor plan forward with residual");
    expect_error<fastconv::InvalidArgument>(
        [&] { fastconv::forward(plan, View{x.data(), f32, {1, 3, 9, 9}}); },
        "tensor plan forward: an input of another shape is InvalidArgument");
    expect_error<fastconv::InvalidArgument>(
        [&] { fastconv::forward(plan, View{nullptr, f32, xv.shape}); },
        "tensor plan forward: a view without data is InvalidArgument");
    // through the caches: the same values, for an output over 512 KiB (streamed by default)
    // by GEMM (1x1) and by the direct algorithm's blocked path (3x3 / 2), with a residual too
    for (const int64_t k : {1, 3}) {
      const Shape xs{2, 64, 56, 56}, ws{256, 64, k, k};
      const auto xl = random(numel(xs), 50), wl = random(numel(ws), 51);
      fastconv::ConvOptions ol;
      ol.stride = {k == 1 ? 1 : 2};
      ol.padding.values = {k / 2};
      const View xlv{xl.data(), f32, xs}, wlv{wl.data(), f32, ws};
      const auto streamed = fastconv::conv_plan(xs, wlv, nullptr, ol, "auto", fastconv::Activation::relu);
      const auto cached = fastconv::conv_plan(xs, wlv, nullptr, ol, "auto", fastconv::Activation::relu,
                                              fastconv::OutputStores::cache);
      const auto ys = fastconv::forward(streamed, xlv), yc = fastconv::forward(cached, xlv);
      const auto rl = random(static_cast<size_t>(numel(ys.shape())), 52);
      const View rlv{rl.data(), f32, ys.shape()};
      const auto rs = fastconv::forward(streamed, xlv, &rlv), rc = fastconv::forward(cached, xlv, &rlv);
      check(streamed.output_stores() == fastconv::OutputStores::stream &&
                cached.output_stores() == fastconv::OutputStores::cache &&
                ys.shape() == yc.shape() && numel(ys.shape()) * 4 > (512 << 10) &&
                std::memcmp(ys.data(), yc.data(), static_cast<size_t>(numel(ys.shape())) * 4) == 0 &&
                std::memcmp(rs.data(), rc.data(), static_cast<size_t>(numel(ys.shape())) * 4) == 0,
            "plan output_stores cache: the values of stream (" + cached.algorithm() + ")");
    }
  }
  expect_error<fastconv::InvalidArgument>(
      [&] { fastconv::activation(fastconv::Activation::relu, View{nullptr, f32, {4}}); },
      "tensor activation: a view without data is InvalidArgument");
  const auto lin = fastconv::linear(View{x.data(), f32, {6, 81}}, View{w.data(), f32, {1, 81}}, nullptr);
  double s = 0;
  for (int k = 0; k < 81; ++k) s += double(x[k]) * w[k];
  check(lin.shape() == Shape({6, 1}) && std::fabs(lin.as<float>()[0] - s) < 1e-4, "tensor linear");
}

// Arrays: 64-byte aligned, writable to their last byte; a freed large array's block serves the
// next array that fits (glibc: the per-thread cache, so no fresh pages to fault in), and
// release_memory() hands the cached blocks back.
void test_array_memory() {
  const std::size_t big = std::size_t(3) << 20;
  fastconv::release_memory();  // an empty cache: no other block can fit first
  auto* a = static_cast<unsigned char*>(fastconv::allocate_array(big));
  check(reinterpret_cast<std::uintptr_t>(a) % 64 == 0, "allocate_array: 64-byte aligned");
  a[0] = 1;
  a[big - 1] = 2;
  fastconv::free_array(a);
  void* b = fastconv::allocate_array(big - 4096);
#if defined(__GLIBC__)
  check(b == a, "allocate_array: a freed block is reused");
#endif
  fastconv::free_array(b);
  fastconv::free_array(nullptr);
  void* tiny = fastconv::allocate_array(0);
  check(tiny != nullptr && reinterpret_cast<std::uintptr_t>(tiny) % 64 == 0,
        "allocate_array(0): an aligned pointer");
  fastconv::free_array(tiny);
#if defined(__GLIBC__)
  check(fastconv::release_memory() >= big, "release_memory: the freed array's block");
#endif
}

}  // namespace

int main() {
  for (const std::string& isa : fastconv::available_isas()) {
    fastconv::set_isa(isa);
    for (int threads : {1, 2}) {
      fastconv::set_num_threads(threads);
      test_convolution(isa + " " + std::to_string(threads) + "T");
      test_pooling_norm_linear(isa + " " + std::to_string(threads) + "T");
    }
  }
  test_errors();
  test_bad_argument_sweep();
  test_thread_share();
  test_tensor_api();
  test_array_memory();
  std::printf("%d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
