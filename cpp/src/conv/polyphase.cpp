// conv/polyphase.cpp — see polyphase.hpp.
#include "polyphase.hpp"

#include <algorithm>
#include <limits>
#include <vector>

namespace fastconv::conv {

bool is_strided(const ConvProblem& p) {
  return p.stride[0] > 1 || p.stride[1] > 1 || p.stride[2] > 1;
}

std::array<int64_t, 3> polyphase_phases(const ConvProblem& p) {
  std::array<int64_t, 3> phases{1, 1, 1};
  for (int d = 0; d < 3; ++d)
    if (p.stride[d] > 1) phases[d] = std::min(p.stride[d], p.kernel[d]);
  return phases;
}

ConvProblem polyphase_problem(const ConvProblem& p) {
  if (!is_strided(p)) return p;
  const auto phases = polyphase_phases(p);
  ConvProblem q = p;
  q.C = p.C * phases[0] * phases[1] * phases[2];
  for (int d = 0; d < 3; ++d) {
    if (p.stride[d] == 1) continue;
    q.kernel[d] = (p.kernel[d] + p.stride[d] - 1) / p.stride[d];
    q.stride[d] = 1;
    q.dilation[d] = 1;
    q.pad_lo[d] = q.pad_hi[d] = 0;
    q.in[d] = p.out[d] + q.kernel[d] - 1;
  }
  return q;
}

// xq [n][c][r0][r1][r2][i0][i1][i2] = x[n][c][s0 i0 + r0 - lo0][s1 i1 + r1 - lo1][s2 i2 + r2 - lo2]
// (stride-1 axes: s = 1, r = 0 and lo = 0: the axis as it is, padded by the stride-1 problem).
// Each source row goes to its S2 destination rows by the GEMM packer's runs (a run per phase
// r2 of constant step s2: vector loads, even-lane loads or gathers), zeros around them.
template <typename T>
void polyphase_input(const ConvProblem& p, const kernels::KernelSet<T>& ks, const T* x, T* xq,
                     int threads) {
  const ConvProblem q = polyphase_problem(p);
  const auto S = polyphase_phases(p);
  std::array<int64_t, 3> s, lo;
  for (int d = 0; d < 3; ++d) {
    s[d] = p.stride[d] > 1 ? p.stride[d] : 1;
    lo[d] = p.stride[d] > 1 ? p.pad_lo[d] : 0;
  }
  const int64_t phases = S[0] * S[1] * S[2];
  const int64_t in_plane = p.in_spatial(), q_plane = q.in_spatial();
  const int64_t rows = q.in[0] * q.in[1], W = q.in[2];
  // Along the last axis, phase r2 takes the positions [first, last) whose source s2 i + r2 - lo2
  // lies in the input: a run from source column s2 first + r2 - lo2.
  std::vector<int64_t> first(S[2]), last(S[2]), src(S[2]), step(S[2], s[2]), dst(S[2]), len(S[2]);
  // The least i with s2 i + r2 - lo2 >= column.
  const auto least = [&](int64_t r2, int64_t column) {
    const int64_t n = column + lo[2] - r2;
    return std::clamp<int64_t>(n <= 0 ? 0 : (n + s[2] - 1) / s[2], 0, W);
  };
  for (int64_t r2 = 0; r2 < S[2]; ++r2) {
    first[r2] = least(r2, 0);
    last[r2] = std::max(first[r2], least(r2, p.in[2]));
    src[r2] = s[2] * first[r2] + r2 - lo[2];
    dst[r2] = r2 * q_plane + first[r2];
    len[r2] = last[r2] - first[r2];
  }
  const kernels::ColumnRunsView runs{S[2], src.data(), step.data(), dst.data(), len.data()};
  // One task per image, channel and phase of the first two axes (S2 destination planes).
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<int64_t> offset(rows);  // of each destination row's source row, -1: none
#pragma omp for schedule(static)
    for (int64_t task = 0; task < p.N * p.C * S[0] * S[1]; ++task) {
      const int64_t r01 = task % (S[0] * S[1]), src_plane = task / (S[0] * S[1]);
      const int64_t r0 = r01 / S[1], r1 = r01 % S[1];
      T* planes = xq + (src_plane * phases + r01 * S[2]) * q_plane;
      for (int64_t i0 = 0, row = 0; i0 < q.in[0]; ++i0) {
        const int64_t h0 = s[0] * i0 + r0 - lo[0];
        for (int64_t i1 = 0; i1 < q.in[1]; ++i1, ++row) {
          const int64_t h1 = s[1] * i1 + r1 - lo[1];
          const bool inside = h0 >= 0 && h0 < p.in[0] && h1 >= 0 && h1 < p.in[1];
          offset[row] = inside ? (h0 * p.in[1] + h1) * p.in[2] : -1;
          for (int64_t r2 = 0; r2 < S[2]; ++r2) {  // zeros where no source is
            T* d = planes + r2 * q_plane + row * W;
            const int64_t z0 = inside ? first[r2] : W, z1 = inside ? last[r2] : W;
            for (int64_t i = 0; i < z0; ++i) d[i] = T(0);
            for (int64_t i = z1; i < W; ++i) d[i] = T(0);
          }
        }
      }
      // The runs of rows with a source, several rows per packer call while their stride W
      // fits its int (one at a time past it).
      const T* plane = x + src_plane * in_plane;
      const int64_t most = W <= std::numeric_limits<int>::max() ? rows : 1;
      for (int64_t row = 0; row < rows;) {
        if (offset[row] < 0) {
          ++row;
          continue;
        }
        int64_t end = row + 1;
        while (end < rows && end - row < most && offset[end] >= 0) ++end;
        ks.gemm.pack_runs(plane, &offset[row], end - row, static_cast<int>(most > 1 ? W : 0), runs,
                          planes + row * W);
        row = end;
      }
    }
  }
}

// wq [k][c][r0][r1][r2][a0][a1][a2] = w[k][c][s0 a0 + r0][s1 a1 + r1][s2 a2 + r2], zero past
// the kernel (stride-1 axes: the taps as they are), through a table of each phase's tap sources.
template <typename T>
void polyphase_weights(const ConvProblem& p, const T* w, T* wq, int threads) {
  const ConvProblem q = polyphase_problem(p);
  const auto S = polyphase_phases(p);
  std::array<int64_t, 3> s;
  for (int d = 0; d < 3; ++d) s[d] = p.stride[d] > 1 ? p.stride[d] : 1;
  const int64_t phases = S[0] * S[1] * S[2];
  const int64_t taps = p.kernel_spatial(), q_taps = q.kernel_spatial();
  std::vector<int64_t> source;  // [r][a]: the tap of w, -1 past the kernel
  source.reserve(static_cast<size_t>(phases * q_taps));
  for (int64_t r = 0; r < phases; ++r) {
    const int64_t r0 = r / (S[1] * S[2]), r1 = r / S[2] % S[1], r2 = r % S[2];
    for (int64_t a0 = 0; a0 < q.kernel[0]; ++a0)
      for (int64_t a1 = 0; a1 < q.kernel[1]; ++a1)
        for (int64_t a2 = 0; a2 < q.kernel[2]; ++a2) {
          const int64_t j0 = s[0] * a0 + r0, j1 = s[1] * a1 + r1, j2 = s[2] * a2 + r2;
          const bool inside = j0 < p.kernel[0] && j1 < p.kernel[1] && j2 < p.kernel[2];
          source.push_back(inside ? (j0 * p.kernel[1] + j1) * p.kernel[2] + j2 : -1);
        }
  }
  const int64_t n = phases * q_taps;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t kc = 0; kc < p.K * p.C_per_group(); ++kc) {
    const T* src = w + kc * taps;
    T* dst = wq + kc * n;
    for (int64_t i = 0; i < n; ++i) dst[i] = source[i] < 0 ? T(0) : src[source[i]];
  }
}

template void polyphase_input<float>(const ConvProblem&, const kernels::KernelSet<float>&,
                                     const float*, float*, int);
template void polyphase_input<double>(const ConvProblem&, const kernels::KernelSet<double>&,
                                      const double*, double*, int);
template void polyphase_weights<float>(const ConvProblem&, const float*, float*, int);
template void polyphase_weights<double>(const ConvProblem&, const double*, double*, int);

}  // namespace fastconv::conv
