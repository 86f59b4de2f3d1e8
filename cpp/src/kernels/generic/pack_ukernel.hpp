// kernels/generic/pack_ukernel.hpp — packing, written once over a vector wrapper V and
// instantiated per ISA: GEMM B blocks from runs of columns (im2col), and rows moved into lanes
// (weights into GEMM panels, channels into the blocked layout).
//
// A run is a stretch of packed columns whose sources step by a constant: 1 (a stride-1 output
// row) is copied with vector loads, 2 (stride-2 convolutions) with even-lane loads, any other
// step with gathers (V::load_strided; element by element past kMaxGatherStep). Masked loads
// and stores handle the ends of runs, so nothing outside a run is read or written. Rows into
// lanes go W x W at a time through a transpose in registers. Arguments: PackRunsFn /
// ColumnRunsView / PackRowsFn in kernel_table.hpp.
#pragma once

#include <cstdint>

#include "../kernel_table.hpp"

namespace fastconv::kernels {

// W x W transpose in registers: log2(W) rounds of even / odd lane selection over row pairs
// (round: row k <- even(r[2k], r[2k+1]), row W/2 + k <- odd(r[2k], r[2k+1])).
template <typename V>
void transpose_square(typename V::R* r) {
  using R = typename V::R;
  constexpr int W = V::W;
  for (int step = 1; step < W; step *= 2) {
    R t[W];
    for (int k = 0; k < W / 2; ++k) {
      t[k] = V::even(r[2 * k], r[2 * k + 1]);
      t[W / 2 + k] = V::odd(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < W; ++k) r[k] = t[k];
  }
}

// dst[i*ldd + c] = rows[c][i] (0 where rows[c] is null) for i < n, c < count <= W (ldd >= count,
// or negative: records from the last one back): W x W tiles transposed in registers, count lanes
// stored per destination record (Full: count == W, whole vectors).
template <typename V, bool Full>
void pack_rows_of(const typename V::T* const* rows, int count, int64_t n, typename V::T* dst,
                  int64_t ldd) {
  using R = typename V::R;
  constexpr int W = V::W;
  bool all = true;
  for (int c = 0; c < count; ++c) all = all && rows[c];
  const auto store = [&](int64_t i, const R& v) {
    if constexpr (Full) {
      V::storeu(dst + i * ldd, v);
    } else {
      V::store_partial(dst + i * ldd, v, count);
    }
  };
  int64_t i = 0;
  if (all) {  // whole vectors from every row
    for (; i + W <= n; i += W) {
      R r[W];
      for (int c = 0; c < W; ++c) r[c] = Full || c < count ? V::loadu(rows[c] + i) : V::zero();
      transpose_square<V>(r);
      for (int j = 0; j < W; ++j) store(i + j, r[j]);
    }
  }
  for (; i < n; i += W) {
    const int lanes = n - i < W ? static_cast<int>(n - i) : W;
    R r[W];
    for (int c = 0; c < W; ++c)
      r[c] = (Full || c < count) && rows[c] ? V::load_partial(rows[c] + i, lanes) : V::zero();
    transpose_square<V>(r);
    for (int j = 0; j < lanes; ++j) store(i + j, r[j]);
  }
}

template <typename V>
void pack_rows(const typename V::T* const* rows, int count, int64_t n, typename V::T* dst,
               int64_t ldd) {
  if (count == V::W) {
    pack_rows_of<V, true>(rows, count, n, dst, ldd);
  } else {
    pack_rows_of<V, false>(rows, count, n, dst, ldd);
  }
}

// Each run copies its columns for all kc rows before the next run: the run's step, vector count
// and tail mask are decoded once, not once per row.
template <typename V>
void pack_runs(const typename V::T* x, const int64_t* row, int64_t kc, int nr,
               const ColumnRunsView& runs, typename V::T* dst) {
  using T = typename V::T;
  constexpr int W = V::W;
  for (int64_t r = 0; r < runs.count; ++r) {
    const T* s = x + runs.src[r];
    T* o = dst + runs.dst[r];
    const int64_t n = runs.len[r], step = runs.step[r];
    const int64_t whole = n / W * W;
    const int tail = static_cast<int>(n - whole);
    // The run for every row: vec(sk, i) loads columns i .. i + W - 1 of the row's source sk,
    // part(sk, i, lanes) the first `lanes` of them.
    const auto copy = [&](auto vec, auto part) {
      for (int64_t kk = 0; kk < kc; ++kk) {
        const T* sk = s + row[kk];
        T* ok = o + kk * nr;
        for (int64_t i = 0; i < whole; i += W) V::storeu(ok + i, vec(sk, i));
        if (tail) V::store_partial(ok + whole, part(sk, whole, tail), tail);
      }
    };
    if (step == 1) {
      copy([](const T* sk, int64_t i) { return V::loadu(sk + i); },
           [](const T* sk, int64_t i, int lanes) { return V::load_partial(sk + i, lanes); });
    } else if (step == 2) {
      copy([](const T* sk, int64_t i) { return V::load_even(sk + 2 * i); },
           [](const T* sk, int64_t i, int lanes) {
             return V::load_even_partial(sk + 2 * i, lanes);
           });
    } else if (step > 0 && step <= kMaxGatherStep) {  // one gather per vector
      const int st = static_cast<int>(step);
      copy([st](const T* sk, int64_t i) { return V::load_strided(sk + i * st, st); },
           [st](const T* sk, int64_t i, int lanes) {
             return V::load_strided_partial(sk + i * st, st, lanes);
           });
    } else {
      for (int64_t kk = 0; kk < kc; ++kk) {
        const T* sk = s + row[kk];
        T* ok = o + kk * nr;
        for (int64_t i = 0; i < n; ++i) ok[i] = sk[i * step];
      }
    }
  }
}

}  // namespace fastconv::kernels
