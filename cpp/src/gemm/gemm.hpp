// gemm/gemm.hpp — packed, cache-blocked GEMM driver over the ISA's register-tiled microkernel.
//
// C[M x N] (ldc) = bias[m] + A[M x Kr] * B[Kr x N]. Goto/BLIS blocking (Goto & van de Geijn,
// "Anatomy of high-performance matrix multiplication", 2008): the reduction is cut into KC
// blocks, the columns into NC blocks; for each (KC, NC) block B is packed once into NR-column
// panels and every MR-row panel of A is multiplied against it, one MR x NR register tile per
// microkernel call. Both operands come from packers, so the convolution drivers fuse im2col,
// transposition and batching into packing and never materialise those matrices. Threading is
// the caller's: gemm_block() computes one (row range, column range) tile and may run
// concurrently on disjoint tiles with distinct buffers.
//
// A packer:  a(m, k0, kc, buf) -> const T* : the kc x MR panel of rows m .. m+MR-1 and reduction
//            indices k0 .. k0+kc-1, laid out panel[k*MR + i], rows beyond M zero. It may fill buf
//            (kc * MR elements) and return it, or return a pointer into prepacked storage.
// B packer:  b(k0, kc, n0, nc, dst) -> const T* : the kc x nc block of B[k0+kk][n0+j] at
//            [(j/NR)*kc*NR + kk*NR + j%NR] for kk < kc, j < nc, zeros for j in
//            [nc, round_up(nc, NR)). It may fill dst (b_block_size() elements) and return it,
//            or return a pointer into prepacked storage (PrepackedB). A B whose rows are
//            contiguous is read in place instead: the packer returns a BBlock (RowMajorB).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/kernel_table.hpp"
#include "util/checked.hpp"

namespace fastconv::gemm {

constexpr int64_t kKC = 256;  // reduction block: one A panel (KC x MR) stays in L1
constexpr int64_t kNC = 256;  // columns per B block (KC x NC in L2); a multiple of every NR

/// Elements of one packed B block and of one A panel buffer.
inline int64_t b_block_size() { return kKC * kNC; }
inline int64_t a_panel_size(int mr) { return kKC * mr; }

/// Elements of A prepacked in MR-row panels over the whole reduction (PrepackedA).
inline int64_t prepacked_a_size(int64_t M, int64_t Kr, int mr) { return util::round_up(M, mr) * Kr; }

// dst[i * lanes + r] = src[r * lds + i] for i < n and r < lanes, zero for r >= rows: `rows`
// rows of a row-major matrix into the lanes of a panel, W at a time by the kernels' transposing
// packer.
template <typename T>
void rows_into_lanes(const kernels::GemmUkernel<T>& uk, const T* src, int64_t lds, int64_t rows,
                     int lanes, int64_t n, T* dst) {
  constexpr int kMaxLanes = 64;
  const T* ptr[kMaxLanes];
  for (int r0 = 0; r0 < lanes; r0 += uk.w) {
    const int count = lanes - r0 < uk.w ? lanes - r0 : uk.w;
    for (int c = 0; c < count; ++c) ptr[c] = r0 + c < rows ? src + (r0 + c) * lds : nullptr;
    uk.pack_rows(ptr, count, n, dst + r0, lanes);
  }
}

// A with element (m, k) at a[m * row_stride + k * col_stride], packed on the fly.
template <typename T>
struct StridedA {
  const T* a;
  int64_t M, row_stride, col_stride;
  const kernels::GemmUkernel<T>& uk;
  const T* operator()(int64_t m, int64_t k0, int64_t kc, T* buf) const {
    const int mr = uk.mr;
    if (col_stride == 1) {  // rows contiguous
      rows_into_lanes(uk, a + m * row_stride + k0, row_stride, M - m, mr, kc, buf);
      return buf;
    }
    const int rows = M - m < mr ? static_cast<int>(M - m) : mr;
    if (row_stride == 1) {  // columns contiguous (a transposed matrix): a copy per k
      for (int64_t k = 0; k < kc; ++k) {
        std::memcpy(buf + k * mr, a + m + (k0 + k) * col_stride, sizeof(T) * rows);
        std::fill(buf + k * mr + rows, buf + (k + 1) * mr, T(0));
      }
      return buf;
    }
    for (int64_t k = 0; k < kc; ++k)
      for (int i = 0; i < mr; ++i)
        buf[k * mr + i] = i < rows ? a[(m + i) * row_stride + (k0 + k) * col_stride] : T(0);
    return buf;
  }
};

// A packed once, in full: panel of rows m at packed[(m / mr) * Kr * mr], m a multiple of mr.
template <typename T>
struct PrepackedA {
  const T* packed;
  int64_t Kr;
  int mr;
  const T* operator()(int64_t m, int64_t k0, int64_t, T*) const {
    return packed + (m / mr) * Kr * mr + k0 * mr;
  }
  // Fill `packed` from a row-major M x Kr matrix a (rows lda apart), in panels of uk.mr rows
  // (panels [first, end) of them, all by default: callers may split them among threads); lanes
  // beyond M are zero.
  static int64_t panels(int64_t M, int mr) { return util::ceil_div(M, mr); }
  static void pack(const kernels::GemmUkernel<T>& uk, const T* a, int64_t M, int64_t Kr,
                   int64_t lda, T* packed, int64_t first = 0, int64_t end = -1) {
    if (end < 0) end = panels(M, uk.mr);
    for (int64_t m0 = first * uk.mr; m0 < M && m0 < end * uk.mr; m0 += uk.mr)
      rows_into_lanes(uk, a + m0 * lda, lda, M - m0, uk.mr, Kr, packed + (m0 / uk.mr) * Kr * uk.mr);
  }
};

// A whose reduction index runs over a batch of row-major M x P matrices: element (m, q) with
// q = n * P + p at a[n * batch_stride + m * P + p]. Each image's run of the reduction goes into
// the panel's lanes by the transposing packer.
template <typename T>
struct BatchedA {
  const T* a;
  int64_t M, P, batch_stride;
  const kernels::GemmUkernel<T>& uk;
  const T* operator()(int64_t m, int64_t k0, int64_t kc, T* buf) const {
    int64_t n = k0 / P, p = k0 % P;
    for (int64_t k = 0; k < kc;) {
      const int64_t run = kc - k < P - p ? kc - k : P - p;
      rows_into_lanes(uk, a + n * batch_stride + m * P + p, P, M - m, uk.mr, run, buf + k * uk.mr);
      k += run;
      p = 0;
      ++n;
    }
    return buf;
  }
};

// A block of B as gemm_block reads it: the kc x NR panel of its columns j .. j+NR-1 (j a
// multiple of NR from the block's first column) has rows `ld` apart from data + (j/NR) * step,
// except the panel numbered `packed_panel`, packed (rows NR apart) at `packed`. A packed block
// is {dst, NR, kc * NR}; a block read in place is {first element, row stride, NR}, with a
// partial last panel packed so that every row the microkernel reads holds NR values.
template <typename T>
struct BBlock {
  const T* data;
  int64_t ld, step;
  const T* packed = nullptr;
  int64_t packed_panel = -1;
};

template <typename T>
BBlock<T> as_block(const T* packed, int64_t kc, int nr) {
  return {packed, nr, kc * nr};
}
template <typename T>
BBlock<T> as_block(const BBlock<T>& block, int64_t, int) {
  return block;
}

// B with element (k, n) at b[k * ldb + n] (rows contiguous), read in place: the microkernel
// loads its rows' vectors where they are, so the only copy is a partial last panel's. Measured
// against packing on 1x1 convolutions (1 thread, avx512), 16x16 to 64x64 images: equal or up
// to 12 % faster, row strides that are multiples of 4 KiB included.
template <typename T>
struct RowMajorB {
  const T* b;
  int64_t ldb;
  int nr;
  BBlock<T> operator()(int64_t k0, int64_t kc, int64_t n0, int64_t nc, T* dst) const {
    const int64_t full = nc / nr, tail = nc - full * nr;
    if (tail == 0) return {b + k0 * ldb + n0, ldb, nr};
    pack(k0, kc, n0 + full * nr, tail, dst);
    return {b + k0 * ldb + n0, ldb, nr, dst, full};
  }
  // The kc x nc block from column n0 into NR-column panels at dst, zero beyond nc.
  void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, T* dst) const {
    for (int64_t j0 = 0; j0 < nc; j0 += nr) {
      const int64_t n = nc - j0 < nr ? nc - j0 : nr;
      for (int64_t kk = 0; kk < kc; ++kk) {
        T* d = dst + (j0 / nr) * kc * nr + kk * nr;
        std::memcpy(d, b + (k0 + kk) * ldb + n0 + j0, static_cast<size_t>(n) * sizeof(T));
        for (int64_t j = n; j < nr; ++j) d[j] = T(0);
      }
    }
  }
};

// B with element (k, n) at b[n * ldb + k] (columns contiguous: a row-major matrix used
// transposed, such as the weights of a linear layer).
template <typename T>
struct ColumnMajorB {
  const T* b;
  int64_t ldb;
  const kernels::GemmUkernel<T>& uk;
  const T* operator()(int64_t k0, int64_t kc, int64_t n0, int64_t nc, T* dst) const {
    const int nr = uk.nr;
    for (int64_t j0 = 0; j0 < nc; j0 += nr)
      rows_into_lanes(uk, b + (n0 + j0) * ldb + k0, ldb, nc - j0, nr, kc, dst + (j0 / nr) * kc * nr);
    return dst;
  }
};

// B packed once, in full, in the layout gemm_block reads: for each KC block of the reduction
// (k0 a multiple of kKC, kc rows), NR-column panels of kc x NR, the block at packed[k0 * Nr]
// (Nr = round_up(N, NR)) and its panel of columns n at [n * kc]; n0 must be a multiple of NR.
template <typename T>
struct PrepackedB {
  const T* packed;
  int64_t Nr;
  const T* operator()(int64_t k0, int64_t kc, int64_t n0, int64_t, T*) const {
    return packed + k0 * Nr + n0 * kc;
  }
  static int64_t size(int64_t Kr, int64_t N, int nr) { return Kr * util::round_up(N, nr); }
  // Fill `packed` (size() elements) from B with element (k, n) at b[n * ldb + k] (a row-major
  // N x Kr matrix used transposed, such as convolution weights), its KC blocks [first, end)
  // (all by default); columns beyond N are zero.
  static int64_t blocks(int64_t Kr) { return util::ceil_div(Kr, kKC); }
  static void pack(const kernels::GemmUkernel<T>& uk, const T* b, int64_t ldb, int64_t Kr,
                   int64_t N, T* packed, int64_t first = 0, int64_t end = -1) {
    const int64_t Nr = util::round_up(N, uk.nr);
    if (end < 0) end = blocks(Kr);
    for (int64_t k0 = first * kKC; k0 < Kr && k0 < end * kKC; k0 += kKC) {
      const int64_t kc = Kr - k0 < kKC ? Kr - k0 : kKC;
      ColumnMajorB<T>{b, ldb, uk}(k0, kc, 0, N, packed + k0 * Nr);
    }
  }
};

// Rows [m0, m1) and columns [n0, n1) of C, with c pointing at C[m0][n0]. m0 must suit the A
// packer (a multiple of MR for PrepackedA), n0 the B packer (a multiple of NR for PrepackedB).
// a_buf: a_panel_size(mr) elements; b_buf: b_block_size() elements. `store` says what the
// result is: its bias is indexed by absolute row, its residual (laid out as C, from the
// element c points at) and clamp apply after the last reduction block, and with `accumulate`
// the products add to C.
template <typename T, typename APacker, typename BPacker>
void gemm_block(const kernels::GemmUkernel<T>& uk, int64_t Kr, int64_t m0, int64_t m1,
                int64_t n0, int64_t n1, const APacker& pack_a, const BPacker& pack_b, T* c,
                int64_t ldc, const kernels::TileStore<T>& store, T* a_buf, T* b_buf) {
  const int mr = uk.mr, nr = uk.nr;
  for (int64_t nb = n0; nb < n1; nb += kNC) {
    const int64_t nc = n1 - nb < kNC ? n1 - nb : kNC;
    for (int64_t k0 = 0; k0 < Kr; k0 += kKC) {
      const int64_t kc = Kr - k0 < kKC ? Kr - k0 : kKC;
      kernels::TileStore<T> st = store;
      st.accumulate = store.accumulate || k0 > 0;
      st.clamp = store.clamp && k0 + kc == Kr;
      if (k0 + kc < Kr) st.residual = nullptr;
      const BBlock<T> b = as_block(pack_b(k0, kc, nb, nc, b_buf), kc, nr);
      for (int64_t m = m0; m < m1; m += mr) {
        const T* a = pack_a(m, k0, kc, a_buf);  // packed once, used for every B panel
        const int rows = static_cast<int>(m1 - m < mr ? m1 - m : mr);
        kernels::TileStore<T> tile_st = st;
        tile_st.bias = store.bias ? store.bias + m : nullptr;
        for (int64_t j = 0; j < nc; j += nr) {
          const int cols = static_cast<int>(nc - j < nr ? nc - j : nr);
          const int64_t at = (m - m0) * ldc + nb - n0 + j;  // the tile's offset in C
          T* tile = c + at;
          if (st.residual) tile_st.residual = st.residual + at;
          if (j / nr == b.packed_panel)
            uk.run(kc, a, b.packed, nr, tile, ldc, rows, cols, tile_st);
          else
            uk.run(kc, a, b.data + (j / nr) * b.step, b.ld, tile, ldc, rows, cols, tile_st);
        }
      }
    }
  }
}

}  // namespace fastconv::gemm
