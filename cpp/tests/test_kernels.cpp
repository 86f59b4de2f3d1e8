// cpp/tests/test_kernels.cpp — the microkernels of every available ISA's table, float32 and
// float64, called directly (XNNPACK-style), run by ctest: every output sits in a buffer whose
// guard regions and unused lanes hold canaries that must come back untouched (kernel_test.hpp).
// The tables' families are split over three executables:
//
//   test_kernels.cpp (this file)
//     GEMM tile:  every m <= MR, n <= NR, a few depths; bias, accumulate, the ReLU6 clamp and
//                 NaN kept by the clamp; C rows ldc apart with a gap after n columns; B rows
//                 ldb apart (run) or at uneven offsets (run_rows)
//     pack_rows:  1, W - 1 and W rows (null rows among them) into records of count, count + 3
//                 and 2W elements, and of count elements from the last one back
//     pack_runs:  runs of steps 1, 2, 3, 4, 7 and past the gathers' limit, lengths 0 to 2W + 3
//     pooling:    rows (max, sum) and windows (max, sum; strides 1 and 2, dilation, scaling)
//   test_kernels_conv.cpp: the direct row kernels (forward, both backward directions, depthwise
//     planes and channel-blocked depthwise) and the channel-blocked direct convolution (tiles,
//     layout changes, weight gradient)
//   test_kernels_transform.cpp: the Winograd transforms and the FFT kernels
//
// Reference sums in double; float32 within 1e-5 of the largest term sum, float64 within 1e-12.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernel_test.hpp"

namespace {

using namespace kernel_test;

template <typename T>
void test_gemm(const std::string& isa, const fastconv::kernels::GemmUkernel<T>& uk) {
  const int mr = uk.mr, nr = uk.nr;
  const int64_t ldc = nr + 5, guard = 32;
  // ldb: a packed panel, rows read in place; 0: rows at uneven offsets (run_rows)
  for (int64_t ldb : {int64_t(nr), int64_t(nr) + 7, int64_t(0)})
  for (int64_t kc : {1, 3, 64}) {
    std::vector<int64_t> offset(static_cast<size_t>(kc));
    for (int64_t k = 0; k < kc; ++k)
      offset[k] = ldb > 0 ? k * ldb : (kc - 1 - k) * (nr + 3) + k % 3;
    const auto a = random<T>(kc * mr, 11), b = random<T>(kc * (nr + 7), 12);
    const auto bias = random<T>(mr, 13);
    const auto residual = random<T>(mr * ldc, 14);  // laid out as the tile
    for (int m = 1; m <= mr; ++m) {
      for (int n = 1; n <= nr; ++n) {
        // plain, bias, accumulate, bias + relu6, bias + residual + relu6, accumulate + residual
        for (int variant = 0; variant < 6; ++variant) {
          fastconv::kernels::TileStore<T> st;
          st.bias = (variant == 1 || variant == 3 || variant == 4) ? bias.data() : nullptr;
          st.accumulate = variant == 2 || variant == 5;
          st.clamp = variant == 3 || variant == 4;
          st.residual = variant >= 4 ? residual.data() : nullptr;
          st.lo = T(0);
          st.hi = T(6) * T(0.1);  // small enough to clamp some sums
          std::vector<T> buf(static_cast<size_t>(2 * guard + mr * ldc), canary<T>());
          T* c = buf.data() + guard;
          const T start = T(0.5);
          for (int i = 0; i < m; ++i)
            for (int j = 0; j < n; ++j) c[i * ldc + j] = st.accumulate ? start : T(99);
          if (ldb > 0)
            uk.run(kc, a.data(), b.data(), ldb, c, ldc, m, n, st);
          else
            uk.run_rows(kc, a.data(), b.data(), offset.data(), c, ldc, m, n, st);
          if (uk.store_fence) uk.store_fence();
          bool values = true, untouched = true;
          for (int64_t idx = 0; idx < static_cast<int64_t>(buf.size()); ++idx) {
            const int64_t off = idx - guard;
            const int64_t i = off >= 0 ? off / ldc : -1, j = off >= 0 ? off % ldc : -1;
            if (off >= 0 && i < m && j < n) {
              double s = st.accumulate ? double(start) : (st.bias ? double(bias[i]) : 0.0);
              double scale = std::fabs(s);
              for (int64_t k = 0; k < kc; ++k) {
                s += double(a[k * mr + i]) * double(b[offset[k] + j]);
                scale += std::fabs(double(a[k * mr + i]) * double(b[offset[k] + j]));
              }
              if (st.residual) {
                s += double(residual[i * ldc + j]);
                scale += std::fabs(double(residual[i * ldc + j]));
              }
              if (st.clamp) s = std::min(std::max(s, double(st.lo)), double(st.hi));
              values &= std::fabs(double(buf[idx]) - s) <= tolerance<T>() * std::max(scale, 1.0);
            } else {
              untouched &= same(buf[idx], canary<T>());
            }
          }
          const std::string where = isa + " gemm " + std::to_string(sizeof(T) * 8) + "-bit m " +
                                    std::to_string(m) + " n " + std::to_string(n) + " kc " +
                                    std::to_string(kc) + " ldb " + std::to_string(ldb) +
                                    " variant " + std::to_string(variant);
          check(values, where + ": wrong values");
          check(untouched, where + ": wrote outside the tile");
        }
      }
    }
  }
  // the clamp keeps NaN (torch.relu does)
  fastconv::kernels::TileStore<T> st;
  st.clamp = true;
  st.hi = std::numeric_limits<T>::infinity();
  std::vector<T> a(static_cast<size_t>(mr), T(1)), b(static_cast<size_t>(nr), T(1));
  a[0] = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> c(static_cast<size_t>(mr * nr), T(0));
  uk.run(1, a.data(), b.data(), nr, c.data(), nr, mr, nr, st);
  check(std::isnan(c[0]) && c[nr] == T(1), isa + " gemm: the clamp keeps NaN");
}

// pack_rows: count <= W rows (some null: zeros) into count lanes of records ldd apart; the
// lanes from count to ldd and everything past the last record keep their contents.
template <typename T>
void test_pack_rows(const std::string& isa, const fastconv::kernels::GemmUkernel<T>& uk) {
  const int W = uk.w;
  for (int count : {1, W - 1, W}) {
    if (count < 1) continue;
    for (int64_t ldd : {int64_t(count), int64_t(count + 3), int64_t(2 * W), -int64_t(count)}) {
      for (int64_t n : {int64_t(1), int64_t(W - 1), int64_t(W), int64_t(2 * W + 3)}) {
        if (n < 1) continue;
        const int64_t step = ldd < 0 ? -ldd : ldd, first = ldd < 0 ? (n - 1) * step : 0;
        std::vector<std::vector<T>> rows;
        std::vector<const T*> in;
        for (int c = 0; c < count; ++c) {
          rows.push_back(random<T>(n, 41 + static_cast<uint32_t>(c)));
          in.push_back(c % 3 == 1 ? nullptr : rows.back().data());
        }
        Guarded<T> dst((n - 1) * step + count);
        dst.snapshot();
        uk.pack_rows(in.data(), count, n, dst.data() + first, ldd);
        Expected e(dst.size());
        for (int64_t i = 0; i < n; ++i)
          for (int c = 0; c < count; ++c)
            e.put(first + i * ldd + c, in[static_cast<size_t>(c)] ? double(rows[static_cast<size_t>(c)][static_cast<size_t>(i)]) : 0.0, 0.0);
        check_output(dst, e, 0.0, label(isa, "pack_rows", bits<T>(), "count", count, "ldd", ldd, "n", n));
      }
    }
  }
}

// pack_runs: kc rows from uneven offsets, each split into runs of steps 1, 2, 3, 4, 7 and one
// past the gathers' limit (element by element), lengths 0 to 2W + 3, into records nr apart;
// the elements no run covers keep their contents.
template <typename T>
void test_pack_runs(const std::string& isa, const fastconv::kernels::GemmUkernel<T>& uk) {
  const int W = uk.w;
  const int64_t far = fastconv::kernels::kMaxGatherStep + 1;
  for (int64_t step : {int64_t(1), int64_t(2), int64_t(3), int64_t(4), int64_t(7), far}) {
    for (int64_t len : {int64_t(0), int64_t(1), int64_t(W - 1), int64_t(W), int64_t(2 * W + 3)}) {
      if (step == far && len > 3) continue;  // (a source of 4 MiB per element)
      // Two runs per row: [0, len) from column 1, then [len + 2, 2 len + 2) from column 0 of
      // the row after the first run's sources.
      const int64_t kc = 3, nr = 2 * len + 5, span = step * std::max<int64_t>(len, 1) + 2;
      const std::vector<int64_t> src{1, span}, steps{step, step}, dst{0, len + 2}, lens{len, len};
      const fastconv::kernels::ColumnRunsView runs{2, src.data(), steps.data(), dst.data(), lens.data()};
      const std::vector<int64_t> row{5, 2 * span + 3, 4 * span + 11};
      const std::vector<T> x = random<T>(static_cast<size_t>(row.back() + 2 * span + 1), 43);
      Guarded<T> out(kc * nr);
      out.snapshot();
      uk.pack_runs(x.data(), row.data(), kc, static_cast<int>(nr), runs, out.data());
      Expected e(out.size());
      for (int64_t kk = 0; kk < kc; ++kk)
        for (int r = 0; r < 2; ++r)
          for (int64_t i = 0; i < len; ++i)
            e.put(kk * nr + dst[r] + i, double(x[static_cast<size_t>(row[kk] + src[r] + i * step)]), 0.0);
      check_output(out, e, 0.0, label(isa, "pack_runs", bits<T>(), "step", step, "len", len));
    }
  }
}

template <typename T>
void test_pool(const std::string& isa, const fastconv::kernels::PoolKernels<T>& pk) {
  const int64_t W = 37, nrows = 3, guard = 16;
  const auto x = random<T>(W * nrows + 64, 21);
  const int64_t offset[] = {0, W, 2 * W};
  for (bool is_max : {true, false}) {
    for (int64_t n : {1, 5, 16, 33}) {
      std::vector<T> buf(static_cast<size_t>(n + 2 * guard), canary<T>());
      (is_max ? pk.rows_max : pk.rows_sum)(x.data(), offset, nrows, n, buf.data() + guard);
      bool ok = true, untouched = true;
      for (int64_t i = 0; i < n; ++i) {
        double r = is_max ? -INFINITY : 0.0;
        for (int64_t k = 0; k < nrows; ++k)
          r = is_max ? std::max(r, double(x[offset[k] + i])) : r + double(x[offset[k] + i]);
        ok &= std::fabs(double(buf[guard + i]) - r) <= tolerance<T>() * 4;
      }
      for (int64_t i = 0; i < guard; ++i)
        untouched &= same(buf[i], canary<T>()) && same(buf[guard + n + i], canary<T>());
      const std::string where = isa + " pool rows " + (is_max ? "max" : "sum") + " n " + std::to_string(n);
      check(ok, where + ": wrong values");
      check(untouched, where + ": wrote outside");
    }
    for (int64_t stride : {1, 2}) {
      for (int64_t dilation : {1, 2}) {
        const int64_t kw = 3, n = 9, rows = 2, ldy = n + 3;
        const std::vector<T> scale(static_cast<size_t>(n), T(0.25));
        std::vector<T> buf(static_cast<size_t>(rows * ldy + 2 * guard), canary<T>());
        T* y = buf.data() + guard;
        (is_max ? pk.window_max : pk.window_sum)(x.data(), rows, W, offset, 2, n, stride, dilation,
                                                 kw, is_max ? nullptr : scale.data(), y, ldy);
        bool ok = true, untouched = true;
        for (int64_t idx = 0; idx < static_cast<int64_t>(buf.size()); ++idx) {
          const int64_t off = idx - guard, r = off >= 0 ? off / ldy : -1, o = off >= 0 ? off % ldy : -1;
          if (off >= 0 && r < rows && o < n) {
            double s = is_max ? -INFINITY : 0.0;
            for (int64_t q = 0; q < 2; ++q)
              for (int64_t k = 0; k < kw; ++k) {
                const double v = double(x[r * W + offset[q] + o * stride + k * dilation]);
                s = is_max ? std::max(s, v) : s + v;
              }
            if (!is_max) s *= 0.25;
            ok &= std::fabs(double(buf[idx]) - s) <= tolerance<T>() * 8;
          } else {
            untouched &= same(buf[idx], canary<T>());
          }
        }
        const std::string where = isa + " pool window " + (is_max ? "max" : "sum") + " stride " +
                                  std::to_string(stride) + " dilation " + std::to_string(dilation);
        check(ok, where + ": wrong values");
        check(untouched, where + ": wrote outside");
      }
    }
  }
}

}  // namespace

int main() {
  for_each_isa([](const std::string& isa, const fastconv::kernels::KernelTable& table) {
    test_gemm<float>(isa, table.f32.gemm);
    test_gemm<double>(isa, table.f64.gemm);
    test_pack_rows<float>(isa, table.f32.gemm);
    test_pack_rows<double>(isa, table.f64.gemm);
    test_pack_runs<float>(isa, table.f32.gemm);
    test_pack_runs<double>(isa, table.f64.gemm);
    test_pool<float>(isa, table.f32.pool);
    test_pool<double>(isa, table.f64.pool);
  });
  return finish();
}
