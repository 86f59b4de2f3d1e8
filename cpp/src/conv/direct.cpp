// conv/direct.cpp — direct convolution, forward.
//
//   y[n][k][od][oh][ow] = b[k] + sum_{c in group, kd, kh, kw}
//       w[k][c][kd][kh][kw] * x[n][c][od*sd + kd*dd][oh*sh + kh*dh][ow*sw + kw*dw]
// (x padded). Work is split into output rows (n, g, block of KB output channels, od, oh); each
// row is one call of the ISA's direct-row microkernel, vectorised along ow. The (c, kd, kh)
// "taps" of a row are offsets into x shared by every row; weights are packed per block of KB
// channels as [tap][kw][KB] so the kernel reads them sequentially. Blocks of a group with fewer
// than KB channels (depthwise) run the single-channel kernel. No workspace beyond the tap table
// and packed weights; handles every stride, dilation and group count.
#include <algorithm>

#include "algorithm.hpp"
#include "util/checked.hpp"

namespace fastconv::conv {

namespace {

using util::ceil_div;

int64_t taps(const ConvProblem& p) { return p.C_per_group() * p.kernel[0] * p.kernel[1]; }

// Elements of packed weights: groups x blocks x taps x KW x KB.
int64_t packed_weight_size(const ConvProblem& p, int kb) {
  return p.groups * ceil_div(p.K_per_group(), kb) * taps(p) * p.kernel[2] * kb;
}

// w: K x Cg x KD x KH x KW -> wp[g][block][tap][kw][kb], zero beyond the group's channels.
template <typename T>
void pack_weights(const ConvProblem& p, const T* w, int kb, T* wp) {
  const int64_t Kg = p.K_per_group(), ntaps = taps(p), KW = p.kernel[2];
  const int64_t blocks = ceil_div(Kg, kb);
  for (int64_t g = 0; g < p.groups; ++g)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      T* dst = wp + (g * blocks + blk) * ntaps * KW * kb;
      for (int64_t t = 0; t < ntaps; ++t)
        for (int64_t s = 0; s < KW; ++s)
          for (int k = 0; k < kb; ++k) {
            const int64_t kk = blk * kb + k;
            dst[(t * KW + s) * kb + k] =
                kk < Kg ? w[((g * Kg + kk) * ntaps + t) * KW + s] : T(0);
          }
    }
}

template <typename T>
void forward_typed(const ConvFwdArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& uk = a.kernels.get<T>().direct_row;
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), ntaps = taps(p);
  const int kb = Kg < uk.kb ? 1 : uk.kb;
  const int64_t blocks = ceil_div(Kg, kb);
  const auto& in = p.in;
  const int64_t HW = in[1] * in[2], DHW = in[0] * HW, P = p.out_spatial();
  const auto* x = static_cast<const T*>(a.x);
  const auto* w = static_cast<const T*>(a.w);
  const auto* b = static_cast<const T*>(a.b);
  auto* y = static_cast<T*>(a.y);

  auto* tap_offset = static_cast<int64_t*>(a.workspace);
  auto* wp = reinterpret_cast<T*>(tap_offset + ntaps);
  for (int64_t c = 0, t = 0; c < Cg; ++c)
    for (int64_t kd = 0; kd < p.kernel[0]; ++kd)
      for (int64_t kh = 0; kh < p.kernel[1]; ++kh, ++t)
        tap_offset[t] = c * DHW + kd * p.dilation[0] * HW + kh * p.dilation[1] * in[2];
  pack_weights(p, w, kb, wp);

  const int64_t rows = p.out[0] * p.out[1];
  const int64_t tasks = p.N * p.groups * blocks * rows;
  const int64_t block_size = ntaps * p.kernel[2] * kb;
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t r = t % rows, blk = t / rows % blocks, g = t / (rows * blocks) % p.groups;
    const int64_t n = t / (rows * blocks * p.groups);
    const int64_t od = r / p.out[1], oh = r % p.out[1];
    const int64_t k0 = g * Kg + blk * kb;
    kernels::DirectRowArgs<T> args;
    args.x = x + (n * p.C + g * Cg) * DHW + od * p.stride[0] * HW + oh * p.stride[1] * in[2];
    args.tap_offset = tap_offset;
    args.ntaps = ntaps;
    args.kw = p.kernel[2];
    args.stride = p.stride[2];
    args.dilation = p.dilation[2];
    args.w = wp + (g * blocks + blk) * block_size;
    args.bias = b ? b + k0 : nullptr;
    args.y = y + (n * p.K + k0) * P + r * p.out[2];
    args.ldy = P;
    args.kb = static_cast<int>(std::min<int64_t>(kb, Kg - blk * kb));
    args.ow = p.out[2];
    (kb == 1 ? uk.run_single : uk.run)(args);
  }
}

std::string why_not(const ConvProblem&, DType) { return {}; }

std::size_t workspace_bytes(const ConvProblem& p, DType dtype, int,
                            const kernels::KernelTable& kernels) {
  const std::size_t elem = dtype == DType::f32 ? sizeof(float) : sizeof(double);
  const int kb = dtype == DType::f32 ? kernels.f32.direct_row.kb : kernels.f64.direct_row.kb;
  return static_cast<std::size_t>(taps(p)) * sizeof(int64_t) +
         static_cast<std::size_t>(packed_weight_size(p, kb)) * elem;
}

void forward(const ConvFwdArgs& a) {
  if (a.dtype == DType::f32) {
    forward_typed<float>(a);
  } else {
    forward_typed<double>(a);
  }
}

}  // namespace

const ConvAlgorithm& direct_algorithm() {
  static const ConvAlgorithm algo{
      "direct", "sliding window vectorised along output rows; best for depthwise / few channels",
      &why_not, &workspace_bytes, &forward};
  return algo;
}

}  // namespace fastconv::conv
