// pool/fixed_pool.cpp — max and average pooling with fixed windows: forward and backward.
//
//   max:  y[o] = max over the window of x (NaN propagates), indices[o] = flat index of the first
//         maximum within the plane (a later NaN takes its place, as in PyTorch). With dilation a
//         window can lie entirely in the padding: its value is -inf and its index -1.
//   avg:  y[o] = sum over the window of x * (1 / divisor) (the division for border outputs),
//         divisor = divisor_override, or the window
//         clipped to the padded input (count_include_pad), or to the input
//   avg backward: dx[i] += dy[o] / divisor(o) for every i in window(o)
// Without indices the window reduces separably (kernels/generic/pool_ukernel.hpp): the rows a
// window covers collapse into one row, then windows along it reduce, both vectorised; only the
// few border outputs whose window crosses the padding are reduced scalar. With indices each
// output scans its window in order. Tasks are output rows (forward) or planes (backward), so
// every result has one writer and a fixed order.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "fixed_pool.hpp"
#include "window.hpp"

#include "util/parallel.hpp"

namespace fastconv::pool {

namespace {

using util::thread_index;

// One step of a window's reduction; branch-free (the bitwise `|` keeps the compiler from
// branching on data, which mispredicts on every other element of random input).
// c ? a : b through the bits (no branch on c).
template <typename T>
T select(bool c, T a, T b) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  U ua, ub;
  std::memcpy(&ua, &a, sizeof(T));
  std::memcpy(&ub, &b, sizeof(T));
  const U m = U(0) - U(c);
  const U r = (ua & m) | (ub & ~m);
  T out;
  std::memcpy(&out, &r, sizeof(T));
  return out;
}

template <typename T>
T reduce(bool is_max, T a, T b) {
  if (is_max) return (b > a) | (b != b) ? b : a;  // takes_max(b, a)
  return a + b;
}

}  // namespace

template <typename T>
void fixed_forward(const PoolProblem& p, const T* x, T* y, const kernels::PoolKernels<T>& pk,
                   int threads) {
  const bool is_max = p.kind == PoolKind::max;
  const FixedAxis ad(p, 0), ah(p, 1), aw(p, 2);
  const AxisTable td(ad), th(ah), tw(aw);
  const int64_t W = p.in[2], HW = p.in[1] * W, plane_in = p.in_spatial();
  const int64_t OH = p.out[1], OW = p.out[2], plane_out = p.out_spatial();
  const int64_t rows_max = std::min(p.kernel[0], p.in[0]) * std::min(p.kernel[1], p.in[1]);
  const int64_t w_lo = aw.interior_begin(), w_hi = aw.interior_end();
  const int64_t h_lo = ah.interior_begin(), h_hi = ah.interior_end();
  const auto rows_fn = is_max ? pk.rows_max : pk.rows_sum;
  const auto window_fn = is_max ? pk.window_max : pk.window_sum;
  // Average pooling's divisor of output (od, oh, ow) = row factor x w_divisor[ow]; with
  // divisor_override the row factor is 1 (every factor stays exact in T).
  std::vector<T> w_divisor(static_cast<size_t>(OW), T(1));
  for (int64_t ow = 0; ow < OW && !is_max; ++ow)
    w_divisor[ow] = static_cast<T>(p.divisor_override ? p.divisor_override : aw.count(ow, p.count_include_pad));
  // Per-thread scratch: row offsets, one reduced row, one row of divisors.
  const int64_t off_stride = util::scratch_stride(rows_max, sizeof(int64_t));
  const int64_t row_stride = util::scratch_stride(W, sizeof(T));
  const int64_t div_stride = util::scratch_stride(OW, sizeof(T));
  std::vector<int64_t> offsets(static_cast<size_t>(threads * off_stride));
  std::vector<T> rows(static_cast<size_t>(threads * row_stride));
  std::vector<T> divisors(is_max ? 0 : static_cast<size_t>(threads * div_stride));
  const RowSplit split(p.planes(), p.out[0] * OH, threads);

#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t t = 0; t < split.tasks(); ++t) {
    const int64_t plane = split.plane(t), r_end = split.row_end(t);
    const T* xp = x + plane * plane_in;
    int64_t* off = offsets.data() + thread_index() * off_stride;
    T* buf = rows.data() + thread_index() * row_stride;
    T* div_row = is_max ? nullptr : divisors.data() + thread_index() * div_stride;  // 1 / divisor
    T scale_dh = T(0);  // the row factor div_row was computed for
    for (int64_t r = split.row_begin(t); r < r_end; ++r) {
      const int64_t od = r / OH, oh = r % OH;
      T* yr = y + plane * plane_out + r * OW;
      int64_t n = 0;
      for (int64_t kd = td.k_begin[od]; kd < td.k_end[od]; ++kd)
        for (int64_t kh = th.k_begin[oh]; kh < th.k_end[oh]; ++kh)
          off[n++] = (td.start[od] + kd * ad.dilation) * HW + (th.start[oh] + kh * ah.dilation) * W;
      if (n == 0) {  // (max, dilated) every window of this row lies in the padding
        std::fill(yr, yr + OW, -std::numeric_limits<T>::infinity());
        continue;
      }
      const T dh = is_max || p.divisor_override
                       ? T(1)
                       : static_cast<T>(ad.count(od, p.count_include_pad) *
                                        ah.count(oh, p.count_include_pad));
      if (div_row && dh != scale_dh) {  // the row factor changes only near borders
        for (int64_t ow = w_lo; ow < w_hi; ++ow) div_row[ow] = T(1) / (dh * w_divisor[ow]);
        scale_dh = dh;
      }
      if (w_hi > w_lo) {  // outputs whose window lies inside the input along W
        const T* scale = div_row ? div_row + w_lo : nullptr;  // 1 / divisor
        // Small windows, and stride-2 windows of 2 or 3 taps (the pooling of most CNNs): one
        // pass.
        if (n * aw.kernel <= 4 || (aw.stride == 2 && aw.dilation == 1 && aw.kernel <= 3)) {
          // Rows whose windows lie inside the input along H (same offsets, same divisor) run
          // as one batch; so do those after it in this task and this od.
          int64_t batch = 1;
          if (w_lo == 0 && w_hi == OW && oh >= h_lo && oh < h_hi)
            batch = std::min({h_hi - oh, r_end - r, OH - oh});
          window_fn(xp + tw.start[w_lo], batch, ah.stride * W, off, n, w_hi - w_lo, aw.stride,
                    aw.dilation, aw.kernel, scale, yr + w_lo, OW);
          r += batch - 1;
          if (w_lo == 0 && w_hi == OW) continue;  // no border outputs (batch is 1 otherwise)
        } else {  // rows collapse into one, then windows along it
          const T* v = xp + off[0];
          if (n > 1) {
            rows_fn(xp, off, n, W, buf);
            v = buf;
          }
          const int64_t origin = 0;
          window_fn(v + tw.start[w_lo], 1, 0, &origin, 1, w_hi - w_lo, aw.stride, aw.dilation,
                    aw.kernel, scale, yr + w_lo, OW);
        }
      }
      for (int64_t ow = 0; ow < OW; ++ow) {  // border outputs, whose window crosses the padding
        if (ow == w_lo) ow = std::max(w_lo, w_hi);
        if (ow >= OW) break;
        if (tw.k_begin[ow] >= tw.k_end[ow]) {  // (max, dilated) the window lies in the padding
          yr[ow] = -std::numeric_limits<T>::infinity();
          continue;
        }
        const T* xw = xp + tw.start[ow];
        T acc = xw[off[0] + tw.k_begin[ow] * aw.dilation];
        for (int64_t r = 0; r < n; ++r)
          for (int64_t k = tw.k_begin[ow] + (r == 0); k < tw.k_end[ow]; ++k)
            acc = reduce(is_max, acc, xw[off[r] + k * aw.dilation]);
        yr[ow] = is_max ? acc : acc / (dh * w_divisor[ow]);
      }
    }
  }
}

template <typename T>
void fixed_max_forward_indices(const PoolProblem& p, const T* x, T* y, int64_t* indices,
                               int threads) {
  const FixedAxis ad(p, 0), ah(p, 1), aw(p, 2);
  const AxisTable td(ad), th(ah), tw(aw);
  const int64_t H = p.in[1], W = p.in[2], plane_in = p.in_spatial();
  const int64_t OH = p.out[1], OW = p.out[2], plane_out = p.out_spatial();
  const int64_t dw = aw.dilation;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t t = 0; t < p.planes() * p.out[0] * OH; ++t) {
    const int64_t plane = t / (p.out[0] * OH), od = t / OH % p.out[0], oh = t % OH;
    const T* xp = x + plane * plane_in;
    const int64_t o_row = plane * plane_out + (od * OH + oh) * OW;
    // the window's rows (flat offsets of their first column), the same for the whole row
    int64_t rows[64];
    int64_t n = 0;
    const int64_t kd_n = td.k_end[od] - td.k_begin[od], kh_n = th.k_end[oh] - th.k_begin[oh];
    const bool table = kd_n * kh_n <= 64;
    for (int64_t kd = td.k_begin[od]; table && kd < td.k_end[od]; ++kd)
      for (int64_t kh = th.k_begin[oh]; kh < th.k_end[oh]; ++kh)
        rows[n++] = ((td.start[od] + kd * ad.dilation) * H + th.start[oh] + kh * ah.dilation) * W;
    constexpr int kLanes = 4;  // independent windows scanned together (their chains overlap)
    for (int64_t ow = 0; ow < OW; ++ow) {
      const int64_t k0 = tw.k_begin[ow], k1 = tw.k_end[ow], w0 = tw.start[ow];
      if (table && n > 0 && k1 > k0 && ow + kLanes <= OW &&
          tw.k_begin[ow + kLanes - 1] == k0 && tw.k_end[ow + kLanes - 1] == k1) {
        // kLanes windows with the same taps, a fixed step apart: branch-free, interleaved
        const int64_t step = tw.start[ow + 1] - w0;
        int64_t best[kLanes];
        T val[kLanes];
        for (int l = 0; l < kLanes; ++l) {
          best[l] = rows[0] + w0 + l * step + k0 * dw;
          val[l] = xp[best[l]];
        }
        for (int64_t r = 0; r < n; ++r) {
          for (int64_t k = (r == 0 ? k0 + 1 : k0); k < k1; ++k) {
            const int64_t i0 = rows[r] + w0 + k * dw;
            for (int l = 0; l < kLanes; ++l) {
              const T v = xp[i0 + l * step];
              // takes_max as masks, so that no branch depends on the data
              const int64_t take = -int64_t((v > val[l]) | (v != v));
              best[l] = ((i0 + l * step) & take) | (best[l] & ~take);
              val[l] = select(take != 0, v, val[l]);
            }
          }
        }
        for (int l = 0; l < kLanes; ++l) {
          y[o_row + ow + l] = val[l];
          indices[o_row + ow + l] = best[l];
        }
        ow += kLanes - 1;
        continue;
      }
      int64_t best = -1;  // stays -1 when the window lies in the padding (value -inf)
      T val = -std::numeric_limits<T>::infinity();
      // the windows left over (borders, a row's last few): the scan in order
      for (int64_t kd = ad.k_begin(od); kd < ad.k_end(od); ++kd) {
        const int64_t id = ad.start(od) + kd * ad.dilation;
        for (int64_t kh = ah.k_begin(oh); kh < ah.k_end(oh); ++kh) {
          const int64_t row = (id * H + ah.start(oh) + kh * ah.dilation) * W;
          for (int64_t kw = k0; kw < k1; ++kw) {
            const int64_t i = row + w0 + kw * dw;
            if (best < 0 || takes_max(xp[i], val)) best = i, val = xp[i];
          }
        }
      }
      y[o_row + ow] = val;
      indices[o_row + ow] = best;
    }
  }
}

template <typename T>
void fixed_avg_backward(const PoolProblem& p, const T* dy, T* dx, int threads) {
  const FixedAxis ad(p, 0), ah(p, 1), aw(p, 2);  // average pooling: dilation 1
  const bool inc = p.count_include_pad;
  spread_boxes(p, dy, dx, threads, [&](int64_t od, int64_t oh, int64_t ow) {
    return Box{ad.start(od) + ad.k_begin(od), ad.start(od) + ad.k_end(od),
               ah.start(oh) + ah.k_begin(oh), ah.start(oh) + ah.k_end(oh),
               aw.start(ow) + aw.k_begin(ow), aw.start(ow) + aw.k_end(ow),
               p.divisor_override ? p.divisor_override
                                  : ad.count(od, inc) * ah.count(oh, inc) * aw.count(ow, inc)};
  });
}

#define FASTCONV_INSTANTIATE(T)                                                             \
  template void fixed_forward<T>(const PoolProblem&, const T*, T*,                          \
                                 const kernels::PoolKernels<T>&, int);                      \
  template void fixed_max_forward_indices<T>(const PoolProblem&, const T*, T*, int64_t*, int); \
  template void fixed_avg_backward<T>(const PoolProblem&, const T*, T*, int);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::pool
