// pool/window.hpp — pooling windows along one spatial axis, shared by the pooling drivers.
//
// Fixed windows (max / average pooling): output o covers input positions start(o) + k*dilation
// for k < kernel, start(o) = o*stride - padding; positions outside [0, in) are padding.
// Adaptive windows: output o covers [floor(o*in/out), ceil((o+1)*in/out)).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "fastconv/pool.hpp"

namespace fastconv::pool {

struct FixedAxis {
  int64_t in, out, kernel, stride, padding, dilation;

  FixedAxis(const PoolProblem& p, int d)
      : in(p.in[d]), out(p.out[d]), kernel(p.kernel[d]), stride(p.stride[d]),
        padding(p.padding[d]), dilation(p.dilation[d]) {}

  int64_t start(int64_t o) const { return o * stride - padding; }
  // Kernel taps [k_begin, k_end) of output o that fall inside the input; empty (k_begin >=
  // k_end) only when dilation makes a max-pool window skip over the whole input.
  int64_t k_begin(int64_t o) const {
    const int64_t s = start(o);
    return s >= 0 ? 0 : -s / dilation + (-s % dilation > 0 ? 1 : 0);  // ceil(-s / dilation)
  }
  int64_t k_end(int64_t o) const {
    const int64_t last = in - 1 - start(o);  // largest k*dilation inside the input
    if (last < 0) return 0;
    const int64_t e = last / dilation + 1;
    return e < kernel ? e : kernel;
  }
  // Outputs whose whole window lies inside the input: [interior_begin(), interior_end()).
  int64_t interior_begin() const {
    const int64_t b = padding / stride + (padding % stride > 0 ? 1 : 0);  // ceil, no overflow
    return b < out ? b : out;
  }
  int64_t interior_end() const {
    const int64_t last = in - 1 - (kernel - 1) * dilation + padding;  // largest valid o*stride
    if (last < 0) return interior_begin();
    const int64_t e = last / stride + 1;
    const int64_t lo = interior_begin();
    return e < lo ? lo : (e < out ? e : out);
  }
  // Average pooling's divisor factor: the window clipped to the padded extent
  // (count_include_pad), or to the input.
  int64_t count(int64_t o, bool include_pad) const {
    if (!include_pad) return k_end(o) - k_begin(o);
    const int64_t s = start(o), e = s + kernel;
    return (e < in + padding ? e : in + padding) - s;
  }
};

// FixedAxis's per-output values tabulated once per call (the hot loops do no division).
struct AxisTable {
  std::vector<int64_t> start, k_begin, k_end;
  explicit AxisTable(const FixedAxis& a)
      : start(static_cast<size_t>(a.out)), k_begin(start.size()), k_end(start.size()) {
    for (int64_t o = 0; o < a.out; ++o) {
      start[o] = a.start(o);
      k_begin[o] = a.k_begin(o);
      k_end[o] = a.k_end(o);
    }
  }
};

// Work split of a pooling forward: tasks are (plane, range of output rows), about 8 per thread
// when there are few planes, whole planes otherwise.
struct RowSplit {
  int64_t planes, rows, chunk, chunks;
  RowSplit(int64_t planes_, int64_t rows_, int threads)
      : planes(planes_), rows(rows_), chunk(rows_), chunks(1) {
    const int64_t want = 8 * static_cast<int64_t>(threads);
    if (planes < want && rows > 1) {
      chunks = std::min(rows, (want + planes - 1) / planes);
      chunk = (rows + chunks - 1) / chunks;
      chunks = (rows + chunk - 1) / chunk;
    }
  }
  int64_t tasks() const { return planes * chunks; }
  int64_t plane(int64_t t) const { return t / chunks; }
  int64_t row_begin(int64_t t) const { return t % chunks * chunk; }
  int64_t row_end(int64_t t) const { return std::min(rows, row_begin(t) + chunk); }
};

struct AdaptiveAxis {
  int64_t in, out;
  AdaptiveAxis(const PoolProblem& p, int d) : in(p.in[d]), out(p.out[d]) {}
  int64_t begin(int64_t o) const { return o * in / out; }
  int64_t end(int64_t o) const { return ((o + 1) * in + out - 1) / out; }
};

// An average-pooling window: the input box [d0, d1) x [h0, h1) x [w0, w1) and the divisor.
struct Box {
  int64_t d0, d1, h0, h1, w0, w1, divisor;
};

// Gradient of an average pooling whose output (od, oh, ow) averages box(od, oh, ow):
// dx[i] += dy[o] / divisor(o) for every i in box(o). One task per plane, outputs in order, so
// overlapping windows accumulate deterministically; dx is fully written.
template <typename T, typename BoxOf>
void spread_boxes(const PoolProblem& p, const T* dy, T* dx, int threads, const BoxOf& box_of) {
  const int64_t H = p.in[1], W = p.in[2], plane_in = p.in_spatial();
  const int64_t OH = p.out[1], OW = p.out[2], plane_out = p.out_spatial();
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t plane = 0; plane < p.planes(); ++plane) {
    T* g = dx + plane * plane_in;
    std::fill(g, g + plane_in, T(0));
    const T* gy = dy + plane * plane_out;
    for (int64_t od = 0; od < p.out[0]; ++od)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const Box b = box_of(od, oh, ow);
          const T v = gy[(od * OH + oh) * OW + ow] / static_cast<T>(b.divisor);
          for (int64_t id = b.d0; id < b.d1; ++id)
            for (int64_t ih = b.h0; ih < b.h1; ++ih) {
              T* row = g + (id * H + ih) * W;
              for (int64_t iw = b.w0; iw < b.w1; ++iw) row[iw] += v;
            }
        }
  }
}

// PyTorch's max update: a larger value or any NaN takes the place (the first maximum wins ties).
template <typename T>
inline bool takes_max(T candidate, T current) {
  return candidate > current || candidate != candidate;
}

}  // namespace fastconv::pool
