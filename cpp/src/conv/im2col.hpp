// conv/im2col.hpp — the im2col matrix of one group, never materialised: GEMM packers that read
// blocks of it (or of its transpose) straight from the padded input, and col2im, its adjoint.
//
// For a padded input x of one group (Cg x Dp x Hp x Wp), row r = ((c*KD + kd)*KH + kh)*KW + kw
// and column p = (od*OH + oh)*OW + ow of the im2col matrix hold
//   x[c][od*sd + kd*dd][oh*sh + kh*dh][ow*sw + kw*dw] = x[row_offset(r) + col_offset(p)].
// The offsets are separable, so a block is a gather through two small offset tables; where
// consecutive entries of a table are consecutive offsets (stride 1 along a row, dilation 1 along
// the kernel) the packers copy runs.
#pragma once

#include <cstdint>

#include "fastconv/conv.hpp"
#include "gemm/gemm.hpp"

namespace fastconv::conv {

// Offsets of im2col rows and columns for an unpadded view p (in = padded extents).
class Im2colGeometry {
 public:
  explicit Im2colGeometry(const ConvProblem& p) : p_(p) {}

  int64_t rows() const { return p_.C_per_group() * p_.kernel_spatial(); }
  int64_t cols() const { return p_.out_spatial(); }

  // out[i] = row_offset(r0 + i), i < count.
  void row_offsets(int64_t r0, int64_t count, int64_t* out) const {
    const auto& K = p_.kernel;
    const int64_t W = p_.in[2], HW = p_.in[1] * W, DHW = p_.in[0] * HW;
    int64_t kw = r0 % K[2], kh = r0 / K[2] % K[1], kd = r0 / (K[1] * K[2]) % K[0],
            c = r0 / (K[0] * K[1] * K[2]);
    for (int64_t i = 0; i < count; ++i) {
      out[i] = c * DHW + kd * p_.dilation[0] * HW + kh * p_.dilation[1] * W + kw * p_.dilation[2];
      if (++kw == K[2]) {
        kw = 0;
        if (++kh == K[1]) {
          kh = 0;
          if (++kd == K[0]) kd = 0, ++c;
        }
      }
    }
  }

  // out[i] = col_offset(c0 + i), i < count.
  void col_offsets(int64_t c0, int64_t count, int64_t* out) const {
    const auto& O = p_.out;
    const int64_t W = p_.in[2], HW = p_.in[1] * W;
    int64_t od = c0 / (O[1] * O[2]), oh = c0 / O[2] % O[1], ow = c0 % O[2];
    for (int64_t i = 0; i < count; ++i) {
      out[i] = od * p_.stride[0] * HW + oh * p_.stride[1] * W + ow * p_.stride[2];
      if (++ow == O[2]) {
        ow = 0;
        if (++oh == O[1]) oh = 0, ++od;
      }
    }
  }

 private:
  const ConvProblem& p_;
};

// The columns of a packed B block as runs: maximal ranges of columns whose source offsets step
// by one constant (1 for a stride-1 row, the stride along W otherwise), cut at NR-panel
// boundaries. Found once per block from the column offsets (the same for every reduction row),
// then every row of the block copies the runs.
struct ColumnRuns {
  int64_t count = 0;
  int64_t src[gemm::kNC];   // source offset of the run's first column
  int64_t step[gemm::kNC];  // between its columns' sources
  int64_t dst[gemm::kNC];   // its place in a packed row: panel * (kc * NR) + lane
  int64_t len[gemm::kNC];

  ColumnRuns(const int64_t* off, int64_t nc, int64_t kc, int nr) {
    int64_t j = 0;
    while (j < nc) {
      const int64_t panel_end = (j / nr + 1) * nr;
      const int64_t d = j + 1 < nc && j + 1 < panel_end ? off[j + 1] - off[j] : 1;
      int64_t e = j + 1;
      while (e < nc && e < panel_end && off[e] == off[e - 1] + d) ++e;
      src[count] = off[j];
      step[count] = d;
      dst[count] = (j / nr) * kc * nr + j % nr;
      len[count] = e - j;
      ++count;
      j = e;
    }
  }

  kernels::ColumnRunsView view() const { return {count, src, step, dst, len}; }
};

// Zero columns [nc, round_up(nc, nr)) of the last panel of a packed B block (kc rows).
template <typename T>
void zero_pad_columns(int64_t kc, int64_t nc, int nr, T* dst) {
  const int64_t tail = nc % nr;
  if (tail == 0) return;
  T* panel = dst + (nc / nr) * kc * nr;
  for (int64_t kk = 0; kk < kc; ++kk)
    for (int64_t j = tail; j < nr; ++j) panel[kk * nr + j] = T(0);
}

// B = im2col(x): B(r, p), reduction over rows r (forward convolution), in panels of `lanes`
// columns: NR for a B block, or MR for a block of MR-row panels of A = im2col(x)^T (the
// forward product transposed, conv/gemm.cpp; nc <= kNC columns either way). x: channel 0 of the
// group. The rows are copied by the ISA's pack_runs kernel.
template <typename T>
class Im2colB {
 public:
  Im2colB(const ConvProblem& p, const T* x, const kernels::GemmUkernel<T>& uk, int lanes)
      : geo_(p), x_(x), nr_(lanes), pack_(uk.pack_runs) {}

  const T* operator()(int64_t k0, int64_t kc, int64_t n0, int64_t nc, T* dst) const {
    int64_t col[gemm::kNC], row[gemm::kKC];
    geo_.col_offsets(n0, nc, col);
    geo_.row_offsets(k0, kc, row);
    const ColumnRuns runs(col, nc, kc, nr_);
    pack_(x_, row, kc, nr_, runs.view(), dst);
    zero_pad_columns(kc, nc, nr_, dst);
    return dst;
  }

 private:
  Im2colGeometry geo_;
  const T* x_;
  int nr_;
  kernels::PackRunsFn<T> pack_;
};

// B = im2col(x)^T over a batch: B(q, r) with q = n*P + p, reduction over q (weight gradient).
// x: channel 0 of the group in image 0; batch_stride: elements between images. Stretches of
// positions whose sources follow each other (stride 1 along a row) are, for W im2col rows at a
// time, a transpose (the kernels' pack_rows); other positions copy the im2col rows' runs of
// consecutive sources (a kernel row's taps) into their packed row (pack_runs).
template <typename T>
class Im2colTransposedB {
 public:
  Im2colTransposedB(const ConvProblem& p, const T* x, int64_t batch_stride,
                    const kernels::GemmUkernel<T>& uk)
      : geo_(p), x_(x), batch_stride_(batch_stride), P_(p.out_spatial()), uk_(uk) {}

  const T* operator()(int64_t k0, int64_t kc, int64_t n0, int64_t nc, T* dst) const {
    constexpr int64_t kMinStretch = 4;  // shorter: copied by runs
    const int nr = uk_.nr;
    int64_t row[gemm::kNC], col[gemm::kKC];
    geo_.row_offsets(n0, nc, row);  // the columns of B are im2col rows
    const ColumnRuns runs(row, nc, kc, nr);
    int64_t n = k0 / P_, p = k0 % P_;
    for (int64_t kk = 0; kk < kc;) {  // im2col columns, in runs within one image
      const int64_t run = kc - kk < P_ - p ? kc - kk : P_ - p;
      geo_.col_offsets(p, run, col);
      const T* image = x_ + n * batch_stride_;
      int64_t loose = 0;  // positions [loose, i) wait for pack_runs
      for (int64_t i = 0; i < run;) {
        int64_t e = i + 1;
        while (e < run && col[e] == col[e - 1] + 1) ++e;
        if (e - i >= kMinStretch) {
          uk_.pack_runs(image, col + loose, i - loose, nr, runs.view(), dst + (kk + loose) * nr);
          transpose_stretch(image + col[i], row, nc, e - i, dst + (kk + i) * nr, kc);
          loose = e;
        }
        i = e;
      }
      uk_.pack_runs(image, col + loose, run - loose, nr, runs.view(), dst + (kk + loose) * nr);
      kk += run;
      p = 0;
      ++n;
    }
    zero_pad_columns(kc, nc, nr, dst);
    return dst;
  }

 private:
  // Positions q < len with sources src + q: d[(j / nr) * kc * nr + q * nr + j % nr] =
  // src[row[j] + q] for j < nc.
  void transpose_stretch(const T* src, const int64_t* row, int64_t nc, int64_t len, T* d,
                         int64_t kc) const {
    const int nr = uk_.nr, w = uk_.w;
    constexpr int kMaxLanes = 64;
    const T* ptr[kMaxLanes];
    for (int64_t j0 = 0; j0 < nc; j0 += nr)
      for (int c0 = 0; c0 < nr; c0 += w) {
        const int count = nr - c0 < w ? nr - c0 : w;
        for (int c = 0; c < count; ++c) ptr[c] = j0 + c0 + c < nc ? src + row[j0 + c0 + c] : nullptr;
        uk_.pack_rows(ptr, count, len, d + (j0 / nr) * kc * nr + c0, nr);
      }
  }

  Im2colGeometry geo_;
  const T* x_;
  int64_t batch_stride_, P_;
  const kernels::GemmUkernel<T>& uk_;
};

// col2im, the adjoint of im2col: x[row_offset(r0+i) + col_offset(c0+j)] += cols[i*ld + j] for
// i < nrows, j < ncols. x: channel 0 of the group. Rows of one channel only touch that channel.
template <typename T>
void col2im_add(const Im2colGeometry& geo, const T* cols, int64_t ld, int64_t r0, int64_t nrows,
                int64_t c0, int64_t ncols, T* x) {
  int64_t col[gemm::kNC];
  for (int64_t j0 = 0; j0 < ncols; j0 += gemm::kNC) {
    const int64_t nc = ncols - j0 < gemm::kNC ? ncols - j0 : gemm::kNC;
    geo.col_offsets(c0 + j0, nc, col);
    for (int64_t i = 0; i < nrows; ++i) {
      int64_t r;
      geo.row_offsets(r0 + i, 1, &r);
      T* dst = x + r;
      const T* src = cols + i * ld + j0;
      for (int64_t j = 0; j < nc; ++j) dst[col[j]] += src[j];
    }
  }
}

}  // namespace fastconv::conv
