// gemm/gemm.hpp — packed, cache-blocked GEMM driver over the ISA's register-tiled microkernel.
//
// C[M x N] (ldc) = bias[m] + A[M x Kd] * B[Kd x N]. Goto/BLIS blocking: A is packed once into
// MR-row panels covering the whole reduction (pack_a); B is produced block by block, KC rows x
// NC columns, by a caller-supplied packer into NR-column panels (so im2col happens inside the
// packing and never materialises a full matrix); the microkernel multiplies one MR x NR tile
// per call. Threading is the caller's: gemm_block() computes one (M-range, N-range) tile and is
// safe to run concurrently on disjoint tiles with distinct B buffers.
//
// B packer contract: pack(k0, kc, n0, nc, dst) writes B[k0 + kk][n0 + j] for kk < kc, j < nc
// to dst[(j / NR) * kc * NR + kk * NR + j % NR], and zeros for j in [nc, round_up(nc, NR)).
#pragma once

#include <cstdint>

#include "kernels/kernel_table.hpp"
#include "util/checked.hpp"

namespace fastconv::gemm {

constexpr int64_t kKC = 256;  // reduction block: one A panel (KC x MR) stays in L1
constexpr int64_t kNC = 256;  // columns per B block (KC x NC in L2); a multiple of every NR

/// Elements of packed A for an M x Kd matrix with panels of mr rows.
inline int64_t packed_a_size(int64_t M, int64_t Kd, int mr) { return util::round_up(M, mr) * Kd; }

/// Elements of one B block buffer.
inline int64_t packed_b_block_size() { return kKC * kNC; }

// A (M x Kd, row stride lda) -> panels: dst[(m / mr) * Kd * mr + k * mr + m % mr], zero rows
// beyond M.
template <typename T>
void pack_a(int64_t M, int64_t Kd, const T* a, int64_t lda, int mr, T* dst) {
  for (int64_t m0 = 0; m0 < M; m0 += mr) {
    T* panel = dst + (m0 / mr) * Kd * mr;
    for (int64_t k = 0; k < Kd; ++k)
      for (int i = 0; i < mr; ++i) panel[k * mr + i] = m0 + i < M ? a[(m0 + i) * lda + k] : T(0);
  }
}

// Compute rows [m0, m1) and columns [n0, n1) of C. apack from pack_a over all M rows;
// b_buf holds packed_b_block_size() elements; bias (M values) may be null.
template <typename T, typename BPacker>
void gemm_block(const kernels::GemmUkernel<T>& uk, int64_t M, int64_t Kd, int64_t m0, int64_t m1,
                int64_t n0, int64_t n1, const T* apack, const BPacker& pack_b, T* c,
                int64_t ldc, const T* bias, T* b_buf) {
  const int mr = uk.mr, nr = uk.nr;
  for (int64_t nb = n0; nb < n1; nb += kNC) {
    const int64_t nc = n1 - nb < kNC ? n1 - nb : kNC;
    for (int64_t k0 = 0; k0 < Kd; k0 += kKC) {
      const int64_t kc = Kd - k0 < kKC ? Kd - k0 : kKC;
      pack_b(k0, kc, nb, nc, b_buf);
      for (int64_t m = m0; m < m1; m += mr) {
        const T* a = apack + (m / mr) * Kd * mr + k0 * mr;
        const int rows = static_cast<int>(M - m < mr ? M - m : mr);
        for (int64_t j = 0; j < nc; j += nr) {
          const int cols = static_cast<int>(nc - j < nr ? nc - j : nr);
          uk.run(kc, a, b_buf + (j / nr) * kc * nr, c + m * ldc + nb + j, ldc, rows, cols,
                 bias ? bias + m : nullptr, k0 > 0);
        }
      }
    }
  }
}

}  // namespace fastconv::gemm
