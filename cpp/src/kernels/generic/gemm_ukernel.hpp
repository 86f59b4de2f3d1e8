// kernels/generic/gemm_ukernel.hpp — register-tiled GEMM microkernel, written once over a
// vector wrapper V (vec_<isa>.hpp) and instantiated per ISA.
//
// Tile: MR rows x NR = NV vectors of V::W lanes. Per k step it loads NV vectors of the B panel
// (packed, a row of a matrix read in place, or a row at its own offset: an im2col row in the
// padded input, run_rows), broadcasts MR values of the packed A panel and issues MR*NV FMAs
// (Goto & van de Geijn, "Anatomy of high-performance matrix multiplication", 2008). A partial
// tile (m < MR or n < NR: the last panel of a 7x7 or 14x14 image) runs an instantiation for
// just its rows and vectors, so its cost follows its size; its last vector is stored under a
// mask. Every loop that indexes the accumulators has a compile-time count and is unrolled
// whole (FASTCONV_UNROLL), so they stay in registers; a partial tile's stores, whose counts are
// known at run time, go through a buffer.
#pragma once

#include <array>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "unroll.hpp"

namespace fastconv::kernels {

// Where the tile's B rows are: ldb apart from b (a packed panel, or the rows of a matrix read
// in place) ...
template <typename T>
struct StridedRows {
  static constexpr bool exact = false;  // reads whole vectors (a packed panel's are padded)
  const T* b;
  int64_t ldb;
  // Rows read in place: each row is also fetched this many elements ahead (0: a packed panel,
  // not fetched ahead), see gemm_ukernel.
  int64_t ahead = 0;
  const T* operator()(int64_t k) const { return b + k * ldb; }
};

// ... or at offsets from b (the rows of an im2col matrix, read where they lie in the padded
// input: conv/gemm.cpp's forward_rows). Such rows end where the data does: a partial tile
// loads its last vector under a mask.
template <typename T>
struct OffsetRows {
  static constexpr bool exact = true;
  const T* b;
  const int64_t* offset;
  const T* operator()(int64_t k) const { return b + offset[k]; }
};

// Rows [0, ROWS) and vectors [0, VECS) of a tile whose A panel has MR lanes: the kernel of a
// whole tile (ROWS = MR, VECS = NV) or of a partial one, m <= ROWS rows and n <= VECS * W
// columns of which are stored.
template <typename V, int MR, int ROWS, int VECS, typename Rows>
void gemm_tile(int64_t kc, const typename V::T* a, const Rows& rows, typename V::T* c,
               int64_t ldc, int m, int n, const TileStore<typename V::T>& st) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int W = V::W;
  const int last = n - (VECS - 1) * W;  // lanes of the last vector that are read and stored
  R acc[ROWS][VECS];
  FASTCONV_UNROLL
  for (int i = 0; i < ROWS; ++i)
    FASTCONV_UNROLL
    for (int v = 0; v < VECS; ++v) acc[i][v] = V::zero();

  // The k loop; with Ahead, the lines of row k `rows.ahead` elements on are fetched too.
  const auto product = [&](auto ahead) {
    for (int64_t k = 0; k < kc; ++k) {
      const T* b = rows(k);
      if constexpr (decltype(ahead)::value) {
        FASTCONV_UNROLL
        for (int64_t byte = 0; byte < int64_t(VECS * W * sizeof(T)); byte += 64)
          __builtin_prefetch(reinterpret_cast<const char*>(b + rows.ahead) + byte);
      }
      R bv[VECS];
      for (int v = 0; v < VECS; ++v)
        bv[v] = Rows::exact && v == VECS - 1 && last < W ? V::load_partial(b + v * W, last)
                                                         : V::loadu(b + v * W);
      for (int i = 0; i < ROWS; ++i) {
        const R ai = V::set1(a[i]);
        for (int v = 0; v < VECS; ++v) acc[i][v] = V::fmadd(ai, bv[v], acc[i][v]);
      }
      a += MR;
    }
  };
  if constexpr (Rows::exact) {
    product(std::false_type{});
  } else if (rows.ahead != 0) {
    product(std::true_type{});
  } else {
    product(std::false_type{});
  }

  const R lo = V::set1(st.lo), hi = V::set1(st.hi);
  // S + base, plus the residual's element at offset `at` of the tile (`lanes` of them), clamped.
  const auto finish = [&](R sum, R base, int64_t at, int lanes) {
    sum = V::add(sum, base);
    if (st.residual)
      sum = V::add(sum, lanes == W ? V::loadu(st.residual + at) : V::load_partial(st.residual + at, lanes));
    return st.clamp ? V::min(V::max(sum, lo), hi) : sum;
  };
  if (m == ROWS && n == VECS * W) {
    if (st.stream && !st.accumulate &&
        (reinterpret_cast<std::uintptr_t>(c) | ldc * sizeof(T)) % (W * sizeof(T)) == 0) {
      FASTCONV_UNROLL
      for (int i = 0; i < ROWS; ++i)
        FASTCONV_UNROLL
        for (int v = 0; v < VECS; ++v)
          V::stream(c + i * ldc + v * W, finish(acc[i][v], V::set1(st.bias ? st.bias[i] : T(0)),
                                                i * ldc + v * W, W));
      return;
    }
    FASTCONV_UNROLL
    for (int i = 0; i < ROWS; ++i) {
      T* ci = c + i * ldc;
      FASTCONV_UNROLL
      for (int v = 0; v < VECS; ++v) {
        R base = st.accumulate ? V::loadu(ci + v * W) : V::set1(st.bias ? st.bias[i] : T(0));
        V::storeu(ci + v * W, finish(acc[i][v], base, i * ldc + v * W, W));
      }
    }
    return;
  }
  // A partial tile: its sums go through a buffer, so that the loops over the rows and vectors
  // it stores (run-time counts) do not index the accumulators.
  alignas(64) T sums[ROWS][VECS * W];
  FASTCONV_UNROLL
  for (int i = 0; i < ROWS; ++i)
    FASTCONV_UNROLL
    for (int v = 0; v < VECS; ++v) V::storeu(sums[i] + v * W, acc[i][v]);
  for (int i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    for (int v = 0; v * W < n; ++v) {
      const R sum = V::loadu(sums[i] + v * W);
      const int lanes = n - v * W;
      if (lanes >= W) {
        R base = st.accumulate ? V::loadu(ci + v * W) : V::set1(st.bias ? st.bias[i] : T(0));
        V::storeu(ci + v * W, finish(sum, base, i * ldc + v * W, W));
      } else {
        R base = st.accumulate ? V::load_partial(ci + v * W, lanes)
                               : V::set1(st.bias ? st.bias[i] : T(0));
        V::store_partial(ci + v * W, finish(sum, base, i * ldc + v * W, lanes), lanes);
      }
    }
  }
}

// A tile of NJ <= kNarrowCols columns (the last of a row of B whose length leaves a few past
// its whole panels: 196 = 6 x 32 + 4 on 14 x 14), vectorised along the A panel's MR <= W rows
// instead: per k one load of the panel's row and NJ broadcasts of B, against MR broadcasts and
// a load for the partial tile's one vector. Stateless calls, avx512, 1 thread: 1x1 1024 -> 256
// on 14 x 14 at batch 8 5.47 -> 5.27 ms, 256 -> 1024 at batch 1 0.708 -> 0.677. Two chains
// (even and odd k) hide the FMA latency; each column goes through a buffer.
constexpr int kNarrowCols = 4;

template <typename V, int MR, int NJ, typename Rows>
void gemm_tile_narrow(int64_t kc, const typename V::T* a, const Rows& rows, typename V::T* c,
                      int64_t ldc, int m, const TileStore<typename V::T>& st) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int W = V::W;
  static_assert(MR <= W, "the A panel's rows fill one vector");
  R even[NJ], odd[NJ];
  FASTCONV_UNROLL
  for (int j = 0; j < NJ; ++j) even[j] = V::zero(), odd[j] = V::zero();
  int64_t k = 0;
  for (; k + 2 <= kc; k += 2) {
    const T* b0 = rows(k);
    const T* b1 = rows(k + 1);
    const R a0 = V::load_partial(a + k * MR, MR), a1 = V::load_partial(a + (k + 1) * MR, MR);
    FASTCONV_UNROLL
    for (int j = 0; j < NJ; ++j) {
      even[j] = V::fmadd(a0, V::set1(b0[j]), even[j]);
      odd[j] = V::fmadd(a1, V::set1(b1[j]), odd[j]);
    }
  }
  if (k < kc) {
    const T* b0 = rows(k);
    const R a0 = V::load_partial(a + k * MR, MR);
    FASTCONV_UNROLL
    for (int j = 0; j < NJ; ++j) even[j] = V::fmadd(a0, V::set1(b0[j]), even[j]);
  }
  // Column j's rows gathered into a vector of bases (C's values, or the bias) and one of the
  // residual's, added and clamped as gemm_tile stores, then written back down the column.
  const R lo = V::set1(st.lo), hi = V::set1(st.hi);
  alignas(64) T lanes[W] = {};
  FASTCONV_UNROLL
  for (int j = 0; j < NJ; ++j) {
    for (int i = 0; i < m; ++i) lanes[i] = st.accumulate ? c[i * ldc + j] : st.bias ? st.bias[i] : T(0);
    R sum = V::add(V::add(even[j], odd[j]), V::loadu(lanes));
    if (st.residual) {
      for (int i = 0; i < m; ++i) lanes[i] = st.residual[i * ldc + j];
      sum = V::add(sum, V::loadu(lanes));
    }
    if (st.clamp) sum = V::min(V::max(sum, lo), hi);
    V::storeu(lanes, sum);
    for (int i = 0; i < m; ++i) c[i * ldc + j] = lanes[i];
  }
}

// The tile kernel of a B-row policy for every tile size, full or partial (entry
// (rows - 1) * NV + vectors - 1 for a partial one; a few columns: gemm_tile_narrow), behind one
// entry point.
template <typename V, int MR, int NV, template <typename> class Rows>
struct GemmTiles {
  using T = typename V::T;
  using Fn = void (*)(int64_t, const T*, const Rows<T>&, T*, int64_t, int, int,
                      const TileStore<T>&);
  using NarrowFn = void (*)(int64_t, const T*, const Rows<T>&, T*, int64_t, int,
                            const TileStore<T>&);
  template <std::size_t... I>
  static constexpr std::array<Fn, sizeof...(I)> partial(std::index_sequence<I...>) {
    return {&gemm_tile<V, MR, static_cast<int>(I) / NV + 1, static_cast<int>(I) % NV + 1,
                       Rows<T>>...};
  }
  template <std::size_t... J>
  static constexpr std::array<NarrowFn, sizeof...(J)> narrow(std::index_sequence<J...>) {
    return {&gemm_tile_narrow<V, MR, static_cast<int>(J) + 1, Rows<T>>...};
  }
  static void run(int64_t kc, const T* a, const Rows<T>& rows, T* c, int64_t ldc, int m, int n,
                  const TileStore<T>& st) {
    constexpr int W = V::W;
    if (m == MR && n == NV * W) {
      gemm_tile<V, MR, MR, NV>(kc, a, rows, c, ldc, m, n, st);
      return;
    }
    if constexpr (MR <= W && MR > kNarrowCols) {
      if (n <= kNarrowCols) {
        static constexpr auto cols = narrow(std::make_index_sequence<kNarrowCols>{});
        cols[n - 1](kc, a, rows, c, ldc, m, st);
        return;
      }
    }
    static constexpr auto tiles = partial(std::make_index_sequence<MR * NV>{});
    tiles[(m - 1) * NV + (n + W - 1) / W - 1](kc, a, rows, c, ldc, m, n, st);
  }
};

// a: kc x MR packed, b: kc x NR (rows ldb apart), c: m x n (ldc). See GemmUkernelFn in
// kernel_table.hpp. Rows read in place (ldb is not NR: rows of a matrix, P apart in a 1x1
// convolution's input) are fetched two panels ahead (2 NR elements on), the panel the caller
// multiplies after the next: such rows are each a stream of their own, more than the hardware
// prefetchers follow, so that otherwise every row's load misses. 1 thread, stateless: ResNet-50's
// 1x1 64 -> 64 on 56 x 56 (its 64 rows read in place before too) 0.174 -> 0.167 ms; with
// MobileNetV2's 144 -> 24 on 56 x 56 now read in place too (conv/gemm.cpp's in_place_b)
// 0.20 -> 0.15 ms, where the same rows read in place without fetching ahead took 0.21. One
// panel ahead was slower (avx2: 0.28 against 0.22 ms), four no faster than two.
template <typename V, int MR, int NV>
void gemm_ukernel(int64_t kc, const typename V::T* a, const typename V::T* b, int64_t ldb,
                  typename V::T* c, int64_t ldc, int m, int n, const TileStore<typename V::T>& st) {
  constexpr int64_t NR = NV * V::W;
  GemmTiles<V, MR, NV, StridedRows>::run(kc, a, {b, ldb, ldb == NR ? 0 : 2 * NR}, c, ldc, m, n,
                                         st);
}

// The same with B's row k at b + offset[k], read exactly (GemmRowsUkernelFn).
template <typename V, int MR, int NV>
void gemm_ukernel_rows(int64_t kc, const typename V::T* a, const typename V::T* b,
                       const int64_t* offset, typename V::T* c, int64_t ldc, int m, int n,
                       const TileStore<typename V::T>& st) {
  GemmTiles<V, MR, NV, OffsetRows>::run(kc, a, {b, offset}, c, ldc, m, n, st);
}

}  // namespace fastconv::kernels
