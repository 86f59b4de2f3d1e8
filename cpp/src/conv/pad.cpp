// conv/pad.cpp — see pad.hpp.
#include "pad.hpp"

#include <algorithm>
#include <vector>

namespace fastconv::conv {

namespace {

// Source index along one dimension for padded position i, or -1 for a zero.
int64_t source_index(int64_t i, int64_t lo, int64_t n, PaddingMode mode) {
  int64_t s = i - lo;
  if (s >= 0 && s < n) return s;
  switch (mode) {
    case PaddingMode::zeros:
      return -1;
    case PaddingMode::reflect:  // validated: lo, hi < n
      return s < 0 ? -s : 2 * (n - 1) - s;
    case PaddingMode::replicate:
      return s < 0 ? 0 : n - 1;
    case PaddingMode::circular:  // validated: lo, hi <= n
      return s < 0 ? s + n : s - n;
  }
  return -1;
}

std::vector<int64_t> index_map(int64_t padded, int64_t lo, int64_t n, PaddingMode mode) {
  std::vector<int64_t> m(padded);
  for (int64_t i = 0; i < padded; ++i) m[i] = source_index(i, lo, n, mode);
  return m;
}

}  // namespace

std::array<int64_t, 3> padded_extent(const ConvProblem& p) {
  return {p.in[0] + p.pad_lo[0] + p.pad_hi[0], p.in[1] + p.pad_lo[1] + p.pad_hi[1],
          p.in[2] + p.pad_lo[2] + p.pad_hi[2]};
}

ConvProblem unpadded_view(const ConvProblem& p) {
  ConvProblem q = p;
  q.in = padded_extent(p);
  q.pad_lo = q.pad_hi = {0, 0, 0};
  q.padding_mode = PaddingMode::zeros;
  return q;
}

ConvProblem data_gradient_problem(const ConvProblem& p) {
  ConvProblem q = p;
  q.C = p.K;
  q.K = p.C;
  q.out = p.in;
  for (int d = 0; d < 3; ++d) q.in[d] = p.out[d] + 2 * (p.kernel[d] - 1) * p.dilation[d];
  return q;
}

// x: N*C planes of D x H x W -> xp: N*C planes of Dp x Hp x Wp.
template <typename T>
void pad_input(const ConvProblem& p, const T* x, T* xp, int threads) {
  const auto ext = padded_extent(p);
  const auto md = index_map(ext[0], p.pad_lo[0], p.in[0], p.padding_mode);
  const auto mh = index_map(ext[1], p.pad_lo[1], p.in[1], p.padding_mode);
  const auto mw = index_map(ext[2], p.pad_lo[2], p.in[2], p.padding_mode);
  const int64_t H = p.in[1], W = p.in[2];
  const int64_t planes = p.N * p.C, rows = ext[0] * ext[1];
  const int64_t in_plane = p.in_spatial(), out_plane = rows * ext[2];
  // Tasks: runs of rows, whole planes unless there are too few planes for the threads.
  const int64_t chunks = planes >= 4 * threads ? 1 : std::min(rows, (4 * threads + planes - 1) / planes);
  const int64_t chunk = (rows + chunks - 1) / chunks;
  const int64_t lo = p.pad_lo[2];
  // Each row: the padding through the index map (every mode alike), the row itself copied.
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t task = 0; task < planes * chunks; ++task) {
    const int64_t plane = task / chunks, r_end = std::min(rows, (task % chunks + 1) * chunk);
    for (int64_t r = task % chunks * chunk; r < r_end; ++r) {
      const int64_t d = md[r / ext[1]], h = mh[r % ext[1]];
      T* dst = xp + plane * out_plane + r * ext[2];
      if (d < 0 || h < 0) {
        std::fill(dst, dst + ext[2], T(0));
        continue;
      }
      const T* src = x + plane * in_plane + (d * H + h) * W;
      for (int64_t w = 0; w < lo; ++w) dst[w] = mw[w] < 0 ? T(0) : src[mw[w]];
      std::copy(src, src + W, dst + lo);  // the row itself
      for (int64_t w = lo + W; w < ext[2]; ++w) dst[w] = mw[w] < 0 ? T(0) : src[mw[w]];
    }
  }
}

// dxp: N*C planes of Dp x Hp x Wp -> dx: N*C planes of D x H x W.
template <typename T>
void fold_padding(const ConvProblem& p, const T* dxp, T* dx, int threads) {
  const auto ext = padded_extent(p);
  const auto md = index_map(ext[0], p.pad_lo[0], p.in[0], p.padding_mode);
  const auto mh = index_map(ext[1], p.pad_lo[1], p.in[1], p.padding_mode);
  const auto mw = index_map(ext[2], p.pad_lo[2], p.in[2], p.padding_mode);
  const int64_t H = p.in[1], W = p.in[2];
  const int64_t in_plane = p.in_spatial(), out_plane = ext[0] * ext[1] * ext[2];
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t plane = 0; plane < p.N * p.C; ++plane) {
    T* dst = dx + plane * in_plane;
    for (int64_t i = 0; i < in_plane; ++i) dst[i] = T(0);
    const T* src = dxp + plane * out_plane;
    for (int64_t d = 0; d < ext[0]; ++d) {
      if (md[d] < 0) continue;
      for (int64_t h = 0; h < ext[1]; ++h) {
        if (mh[h] < 0) continue;
        const T* row = src + (d * ext[1] + h) * ext[2];
        T* out = dst + (md[d] * H + mh[h]) * W;
        for (int64_t w = 0; w < ext[2]; ++w)
          if (mw[w] >= 0) out[mw[w]] += row[w];
      }
    }
  }
}

template void pad_input<float>(const ConvProblem&, const float*, float*, int);
template void pad_input<double>(const ConvProblem&, const double*, double*, int);
template void fold_padding<float>(const ConvProblem&, const float*, float*, int);
template void fold_padding<double>(const ConvProblem&, const double*, double*, int);

}  // namespace fastconv::conv
