// pool/adaptive_pool.cpp — adaptive average and max pooling: forward and backward.
//
// Output o along an axis covers [floor(o*in/out), ceil((o+1)*in/out)) (PyTorch's
// adaptive_*_pool): windows may overlap and differ in size. avg: y = window mean; max: window
// maximum (NaN propagates; indices = flat index of the first maximum, a later NaN taking its
// place). Without indices, the rows a window covers first collapse into one row with the
// vectorised pooling pass (global average pooling is one such pass and a row sum); with indices
// each output scans its window in order. Backward of avg spreads dy / window size over the
// window, one task per plane (fixed order).
#include <algorithm>
#include <vector>

#include "adaptive_pool.hpp"
#include "window.hpp"

#include "util/parallel.hpp"

namespace fastconv::pool {

using util::thread_index;

template <typename T>
void adaptive_forward(const PoolProblem& p, const T* x, T* y, int64_t* indices,
                      const kernels::PoolKernels<T>& pk, int threads) {
  const bool is_max = p.kind == PoolKind::adaptive_max;
  const AdaptiveAxis ad(p, 0), ah(p, 1), aw(p, 2);
  const int64_t H = p.in[1], W = p.in[2], HW = H * W, plane_in = p.in_spatial();
  const int64_t OH = p.out[1], OW = p.out[2], plane_out = p.out_spatial();
  // The largest window along D and H: ceil(in/out) + 1 rows at most.
  const int64_t rows_max = std::min(p.in[0], p.in[0] / std::max<int64_t>(p.out[0], 1) + 2) *
                           std::min(p.in[1], p.in[1] / std::max<int64_t>(p.out[1], 1) + 2);
  const int64_t off_stride = util::scratch_stride(rows_max, sizeof(int64_t));
  const int64_t row_stride = util::scratch_stride(W, sizeof(T));
  std::vector<int64_t> offsets(indices ? 0 : static_cast<size_t>(threads * off_stride));
  std::vector<T> rows(indices ? 0 : static_cast<size_t>(threads * row_stride));

#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t t = 0; t < p.planes() * p.out[0] * OH; ++t) {
    const int64_t plane = t / (p.out[0] * OH), od = t / OH % p.out[0], oh = t % OH;
    const T* xp = x + plane * plane_in;
    const int64_t o_row = plane * plane_out + (od * OH + oh) * OW;
    const int64_t d0 = ad.begin(od), d1 = ad.end(od), h0 = ah.begin(oh), h1 = ah.end(oh);
    if (indices) {  // max with argmax: scan each window in order
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t best = -1;
        T val = T(0);
        for (int64_t id = d0; id < d1; ++id)
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = aw.begin(ow); iw < aw.end(ow); ++iw) {
              const int64_t i = (id * H + ih) * W + iw;
              if (best < 0 || takes_max(xp[i], val)) best = i, val = xp[i];
            }
        y[o_row + ow] = val;
        indices[o_row + ow] = best;
      }
      continue;
    }
    int64_t* off = offsets.data() + thread_index() * off_stride;
    int64_t n = 0;
    for (int64_t id = d0; id < d1; ++id)
      for (int64_t ih = h0; ih < h1; ++ih) off[n++] = id * HW + ih * W;
    const T* v = xp + off[0];
    if (n > 1) {
      T* buf = rows.data() + thread_index() * row_stride;
      (is_max ? pk.rows_max : pk.rows_sum)(xp, off, n, W, buf);
      v = buf;
    }
    for (int64_t ow = 0; ow < OW; ++ow) {
      const int64_t w0 = aw.begin(ow), w1 = aw.end(ow);
      T acc = v[w0];
      if (is_max) {
        for (int64_t iw = w0 + 1; iw < w1; ++iw) acc = takes_max(v[iw], acc) ? v[iw] : acc;
      } else {
        for (int64_t iw = w0 + 1; iw < w1; ++iw) acc += v[iw];
        acc /= static_cast<T>(n * (w1 - w0));
      }
      y[o_row + ow] = acc;
    }
  }
}

template <typename T>
void adaptive_avg_backward(const PoolProblem& p, const T* dy, T* dx, int threads) {
  const AdaptiveAxis ad(p, 0), ah(p, 1), aw(p, 2);
  spread_boxes(p, dy, dx, threads, [&](int64_t od, int64_t oh, int64_t ow) {
    Box b{ad.begin(od), ad.end(od), ah.begin(oh), ah.end(oh), aw.begin(ow), aw.end(ow), 0};
    b.divisor = (b.d1 - b.d0) * (b.h1 - b.h0) * (b.w1 - b.w0);
    return b;
  });
}

template void adaptive_forward<float>(const PoolProblem&, const float*, float*, int64_t*,
                                      const kernels::PoolKernels<float>&, int);
template void adaptive_forward<double>(const PoolProblem&, const double*, double*, int64_t*,
                                       const kernels::PoolKernels<double>&, int);
template void adaptive_avg_backward<float>(const PoolProblem&, const float*, float*, int);
template void adaptive_avg_backward<double>(const PoolProblem&, const double*, double*, int);

}  // namespace fastconv::pool
