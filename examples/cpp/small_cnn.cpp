// small_cnn — a small CNN on fastconv's C++ API:
//
//   image (1, 1, H, W) -> conv 3x3, 8 channels, ReLU -> max pool 2x2
//                      -> conv 3x3, 16 channels, ReLU -> global average pool -> linear 16 -> 10
//                      -> softmax
//
// The convolutions are ConvPlans (weights packed once, bias and ReLU fused); weights are fixed
// pseudo-random numbers (this shows the API and its speed, not a trained model). The input is a
// binary greyscale PGM (P5) given on the command line, or a generated 64 x 64 pattern. Prints
// the class probabilities and the median time of one inference.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "fastconv/fastconv.hpp"

namespace {

using Shape = std::vector<int64_t>;

// Deterministic weights: a linear congruential generator mapped to [-scale, scale].
std::vector<float> weights(size_t n, float scale, uint32_t seed) {
  std::vector<float> w(n);
  for (float& v : w) {
    seed = seed * 1664525u + 1013904223u;
    v = scale * (float(seed >> 8) / float(1u << 24) * 2.0f - 1.0f);
  }
  return w;
}

// A binary PGM (P5, maxval < 256) as floats in [0, 1]; throws std::runtime_error otherwise.
std::vector<float> read_pgm(const std::string& path, int64_t& h, int64_t& w) {
  std::ifstream f(path, std::ios::binary);
  std::string magic;
  int maxval = 0;
  f >> magic >> w >> h >> maxval;
  if (!f || magic != "P5" || w <= 0 || h <= 0 || maxval <= 0 || maxval > 255)
    throw std::runtime_error(path + ": not a binary 8-bit PGM (P5)");
  f.get();  // the single whitespace before the pixels
  std::vector<unsigned char> bytes(static_cast<size_t>(w * h));
  f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error(path + ": truncated");
  std::vector<float> img(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) img[i] = bytes[i] / float(maxval);
  return img;
}

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int64_t H = 64, W = 64;
    std::vector<float> image;
    if (argc > 1) {
      image = read_pgm(argv[1], H, W);
    } else {  // a generated pattern: concentric rings
      image.resize(static_cast<size_t>(H * W));
      for (int64_t i = 0; i < H; ++i)
        for (int64_t j = 0; j < W; ++j)
          image[i * W + j] = 0.5f + 0.5f * std::sin(0.3f * std::hypot(i - H / 2.0f, j - W / 2.0f));
    }
    const fastconv::DType f32 = fastconv::DType::f32;
    fastconv::ConvOptions same;
    same.padding = fastconv::PaddingSpec::from_string("same");

    // conv1: 1 -> 8, 3x3, ReLU fused
    const auto p1 = fastconv::make_conv_problem(2, {1, 1, H, W}, {8, 1, 3, 3}, Shape{8}, same);
    const fastconv::ConvPlan conv1(p1, f32, weights(8 * 9, 0.5f, 1).data(),
                                   weights(8, 0.1f, 2).data(), "auto", fastconv::Activation::relu);
    // max pool 2x2
    fastconv::PoolOptions pool_options;
    pool_options.kernel_size = {2};
    const auto pool = fastconv::make_pool_problem(fastconv::PoolKind::max, 2, p1.output_shape(),
                                                  pool_options, "max_pool2d");
    // conv2: 8 -> 16, 3x3, ReLU fused
    const auto p2 = fastconv::make_conv_problem(2, pool.output_shape(), {16, 8, 3, 3}, Shape{16},
                                                same);
    const fastconv::ConvPlan conv2(p2, f32, weights(16 * 8 * 9, 0.2f, 3).data(),
                                   weights(16, 0.1f, 4).data(), "auto",
                                   fastconv::Activation::relu);
    // global average pool, linear 16 -> 10
    const auto gap = fastconv::make_adaptive_pool_problem(
        fastconv::PoolKind::adaptive_avg, 2, p2.output_shape(), {int64_t(1)}, "adaptive_avg_pool2d");
    const auto fc = fastconv::make_linear_problem({1, 16}, {10, 16}, Shape{10});
    const auto fc_w = weights(10 * 16, 0.5f, 5), fc_b = weights(10, 0.1f, 6);

    std::vector<float> a1(numel(p1.output_shape())), a2(numel(pool.output_shape())),
        a3(numel(p2.output_shape())), a4(16), logits(10), probs(10);
    auto infer = [&] {
      conv1.forward(image.data(), a1.data());
      fastconv::pool_fwd(pool, f32, a1.data(), a2.data(), nullptr);
      conv2.forward(a2.data(), a3.data());
      fastconv::pool_fwd(gap, f32, a3.data(), a4.data(), nullptr);
      fastconv::linear_fwd(fc, f32, a4.data(), fc_w.data(), fc_b.data(), logits.data());
      fastconv::softmax_fwd(f32, 1, 10, 1, logits.data(), probs.data(), false);
    };

    infer();  // warm-up
    std::vector<double> ms;
    for (int r = 0; r < 50; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      infer();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());

    std::printf("input %lld x %lld, fastconv %s, ISA %s, %d threads; conv1 runs %s, conv2 %s\n",
                static_cast<long long>(H), static_cast<long long>(W), fastconv::version,
                fastconv::active_isa().c_str(), fastconv::num_threads(),
                conv1.algorithm().c_str(), conv2.algorithm().c_str());
    std::printf("class probabilities:");
    for (float p : probs) std::printf(" %.3f", p);
    const int best = static_cast<int>(std::max_element(probs.begin(), probs.end()) - probs.begin());
    std::printf("\npredicted class %d; %.3f ms per inference (median of %zu)\n", best,
                ms[ms.size() / 2], ms.size());
    return 0;
  } catch (const fastconv::Error& e) {
    std::fprintf(stderr, "fastconv error: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  }
  return 1;
}
