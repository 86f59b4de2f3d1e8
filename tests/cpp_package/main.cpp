// Convolves ones with ones through the installed public API, normalises and applies a linear
// layer; prints what it got so the test can check it.
#include <cstdio>
#include <vector>

#include "fastconv/fastconv.hpp"

int main() {
  fastconv::ConvOptions options;
  options.padding.values = {1};
  const auto problem = fastconv::make_conv_problem(2, {1, 3, 8, 8}, {4, 3, 3, 3}, std::nullopt,
                                                   options);
  std::vector<float> x(3 * 8 * 8, 1.0f), w(4 * 3 * 3 * 3, 1.0f), y(4 * 8 * 8);
  fastconv::conv_fwd(problem, fastconv::DType::f32, x.data(), w.data(), nullptr, y.data());
  std::printf("conv centre %.1f corner %.1f\n", y[4 * 8 + 4], y[0]);

  const auto norm = fastconv::make_norm_problem(fastconv::NormKind::layer, {4, 64}, 1, {64},
                                                "layer_norm");
  std::vector<double> mean(4), var(4);
  std::vector<float> z(y.size());
  fastconv::norm_fwd(norm, fastconv::DType::f32, y.data(), nullptr, nullptr, true, 1e-5,
                     mean.data(), var.data(), z.data());
  std::printf("layer_norm mean %.1f\n", mean[0]);

  const auto lin = fastconv::make_linear_problem({1, 256}, {2, 256}, std::nullopt);
  std::vector<float> ones(2 * 256, 1.0f), out(2);
  fastconv::linear_fwd(lin, fastconv::DType::f32, y.data(), ones.data(), nullptr, out.data());
  std::printf("linear %.1f isa %s\n", out[0], fastconv::active_isa().c_str());
  try {
    fastconv::make_conv_problem(2, {1, 3, 8, 8}, {4, 2, 3, 3}, std::nullopt, options);
  } catch (const fastconv::InvalidArgument& e) {
    std::printf("error: %s\n", e.what());
  }
  return 0;
}
