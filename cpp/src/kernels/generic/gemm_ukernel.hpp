// kernels/generic/gemm_ukernel.hpp — register-tiled GEMM microkernel, written once over a
// vector wrapper V (vec_<isa>.hpp) and instantiated per ISA.
//
// Tile: MR rows x NR = NV vectors of V::W lanes. Per k step it loads NV vectors of the B panel
// (packed, or a row of a matrix read in place), broadcasts MR values of the packed A panel and
// issues MR*NV FMAs (Goto & van de Geijn, "Anatomy of high-performance matrix
// multiplication", 2008). Partial tiles (m < MR or n < NR) are computed in full and stored
// under masks, so the hot loop has no edge cases.
#pragma once

#include <cstdint>

namespace fastconv::kernels {

// a: kc x MR packed, b: kc x NR (rows ldb apart), c: m x n (ldc). See GemmUkernelFn in
// kernel_table.hpp.
template <typename V, int MR, int NV>
void gemm_ukernel(int64_t kc, const typename V::T* a, const typename V::T* b, int64_t ldb,
                  typename V::T* c, int64_t ldc, int m, int n, const TileStore<typename V::T>& st) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int W = V::W;
  constexpr int NR = NV * W;
  R acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();

  for (int64_t k = 0; k < kc; ++k) {
    R bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = V::loadu(b + v * W);
    for (int i = 0; i < MR; ++i) {
      const R ai = V::set1(a[i]);
      for (int v = 0; v < NV; ++v) acc[i][v] = V::fmadd(ai, bv[v], acc[i][v]);
    }
    a += MR;
    b += ldb;
  }

  // Every index of acc below is a constant once the loops over MR and NV unroll, so the
  // accumulators stay in registers; a partial tile masks its rows and lanes.
  const R lo = V::set1(st.lo), hi = V::set1(st.hi);
  const auto finish = [&](R sum) { return st.clamp ? V::min(V::max(sum, lo), hi) : sum; };
  if (m == MR && n == NR) {
    if (st.stream && !st.accumulate &&
        (reinterpret_cast<std::uintptr_t>(c) | ldc * sizeof(T)) % (W * sizeof(T)) == 0) {
      for (int i = 0; i < MR; ++i)
        for (int v = 0; v < NV; ++v)
          V::stream(c + i * ldc + v * W,
                    finish(V::add(acc[i][v], V::set1(st.bias ? st.bias[i] : T(0)))));
      return;
    }
    for (int i = 0; i < MR; ++i) {
      T* ci = c + i * ldc;
      for (int v = 0; v < NV; ++v) {
        R base = st.accumulate ? V::loadu(ci + v * W) : V::set1(st.bias ? st.bias[i] : T(0));
        V::storeu(ci + v * W, finish(V::add(acc[i][v], base)));
      }
    }
    return;
  }
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    T* ci = c + i * ldc;
    for (int v = 0; v < NV; ++v) {
      const int lanes = n - v * W;
      if (lanes <= 0) break;
      if (lanes >= W) {
        R base = st.accumulate ? V::loadu(ci + v * W) : V::set1(st.bias ? st.bias[i] : T(0));
        V::storeu(ci + v * W, finish(V::add(acc[i][v], base)));
      } else {
        R base = st.accumulate ? V::load_partial(ci + v * W, lanes)
                               : V::set1(st.bias ? st.bias[i] : T(0));
        V::store_partial(ci + v * W, finish(V::add(acc[i][v], base)), lanes);
      }
    }
  }
}

}  // namespace fastconv::kernels
