// nn/linear.cpp — the linear layer (fastconv/linear.hpp) as three GEMMs on gemm/gemm.hpp:
//
//   forward           Y  [M x N] = X [M x K] * W^T [K x N]   (+ b per column, one pass after)
//   backward-data     dX [M x K] = dY [M x N] * W [N x K]
//   backward-weights  dW [N x K] = dY^T [N x M] * X [M x K];  db[n] = sum_m dY[m][n]
//
// C is cut into tiles of whole MR-row blocks by 256 columns, one per OpenMP task, each reduced
// over the full depth in fixed KC blocks: the results do not depend on the thread count.
#include <algorithm>
#include <vector>

#include "fastconv/conv.hpp"
#include "fastconv/errors.hpp"
#include "fastconv/linear.hpp"
#include "fastconv/runtime.hpp"
#include "gemm/gemm.hpp"
#include "kernels/kernel_table.hpp"
#include "util/buffer.hpp"
#include "util/checked.hpp"
#include "util/dtype.hpp"
#include "util/format.hpp"
#include "util/parallel.hpp"

namespace fastconv {

namespace {

using util::ceil_div;

// C [M x N] (ldc) = A [M x Kr] * B [Kr x N] by tiles over the threads.
template <typename T, typename PackA, typename PackB>
void multiply(int64_t M, int64_t N, int64_t Kr, const PackA& pack_a, const PackB& pack_b, T* c,
          int64_t ldc, const kernels::GemmUkernel<T>& uk) {
  if (M == 0 || N == 0) return;
  kernels::TileStore<T> store;
  if (Kr == 0) {  // an empty reduction: zeros
    for (int64_t m = 0; m < M; ++m) std::fill(c + m * ldc, c + m * ldc + N, T(0));
    return;
  }
  const int threads = util::threads_for(M * N * Kr, int64_t(1) << 16, num_threads());
  const int64_t col_tiles = ceil_div(N, gemm::kNC);
  // rows per tile: whole MR blocks, enough tiles for every thread
  const int64_t row_tile = util::round_up(
      std::max<int64_t>(uk.mr, ceil_div(M, std::max<int64_t>(1, ceil_div(threads, col_tiles)))),
      uk.mr);
  const int64_t row_tiles = ceil_div(M, row_tile), tiles = row_tiles * col_tiles;
  const int64_t per_thread = gemm::a_panel_size(uk.mr) + gemm::b_block_size();
  util::AlignedBuffer scratch(static_cast<size_t>(per_thread * threads) * sizeof(T),
                              "linear: GEMM scratch");
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t t = 0; t < tiles; ++t) {
    T* buf = scratch.as<T>() + util::thread_index() * per_thread;
    const int64_t m0 = (t / col_tiles) * row_tile, n0 = (t % col_tiles) * gemm::kNC;
    const int64_t m1 = std::min(M, m0 + row_tile), n1 = std::min(N, n0 + gemm::kNC);
    gemm::gemm_block(uk, Kr, m0, m1, n0, n1, pack_a, pack_b, c + m0 * ldc + n0, ldc, store, buf,
                     buf + gemm::a_panel_size(uk.mr));
  }
}

template <typename T>
const kernels::GemmUkernel<T>& ukernel() {
  return kernels::active_kernels().get<T>().gemm;
}

}  // namespace

std::vector<int64_t> LinearProblem::output_shape() const {
  std::vector<int64_t> s(input_shape.begin(), input_shape.end() - 1);
  s.push_back(N);
  return s;
}

LinearProblem make_linear_problem(const std::vector<int64_t>& input_shape,
                                  const std::vector<int64_t>& weight_shape,
                                  const std::optional<std::vector<int64_t>>& bias_shape,
                                  const std::string& op) {
  using util::shape_str;
  if (weight_shape.size() != 2) {
    throw InvalidArgument(op + ": expected weight to be 2-D (out_features, in_features), but got " +
                          shape_str(weight_shape));
  }
  if (input_shape.empty()) throw InvalidArgument(op + ": expected input with at least 1 dim");
  for (int64_t d : input_shape)
    if (d < 0) throw InvalidArgument(op + ": input has a negative dimension");
  if (weight_shape[0] < 0) throw InvalidArgument(op + ": weight has a negative dimension");
  LinearProblem p;
  p.op = op;
  p.input_shape = input_shape;
  p.K = input_shape.back();
  p.N = weight_shape[0];
  p.M = 1;
  for (size_t i = 0; i + 1 < input_shape.size(); ++i)
    p.M = util::checked_mul(p.M, input_shape[i], op + ": input size");
  if (weight_shape[1] != p.K) {
    throw InvalidArgument(op + ": mat1 and mat2 shapes cannot be multiplied (" +
                          std::to_string(p.M) + "x" +
                          std::to_string(p.K) + " and " + std::to_string(weight_shape[1]) + "x" +
                          std::to_string(weight_shape[0]) + ")");
  }
  if (bias_shape && (bias_shape->size() != 1 || (*bias_shape)[0] != p.N)) {
    throw InvalidArgument(op + ": expected bias of size [" + std::to_string(p.N) + "], but got " +
                          shape_str(*bias_shape));
  }
  util::checked_mul(util::checked_mul(p.M, std::max<int64_t>(p.N, 1), op + ": output size"),
                    std::max<int64_t>(p.K, 1), op + ": work");
  return p;
}

void linear_fwd(const LinearProblem& p, DType dtype, const void* x, const void* w, const void* b,
                void* y) {
  util::with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    const auto& uk = ukernel<T>();
    T* out = static_cast<T*>(y);
    multiply(p.M, p.N, p.K, gemm::StridedA<T>{static_cast<const T*>(x), p.M, p.K, 1, uk},
         gemm::ColumnMajorB<T>{static_cast<const T*>(w), p.K, uk}, out, p.N, uk);
    if (b) {
      const T* bias = static_cast<const T*>(b);
      for (int64_t m = 0; m < p.M; ++m)
        for (int64_t n = 0; n < p.N; ++n) out[m * p.N + n] += bias[n];
    }
  });
}

void linear_bwd_data(const LinearProblem& p, DType dtype, const void* w, const void* dy, void* dx) {
  util::with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    const auto& uk = ukernel<T>();
    multiply(p.M, p.K, p.N, gemm::StridedA<T>{static_cast<const T*>(dy), p.M, p.N, 1, uk},
         gemm::RowMajorB<T>{static_cast<const T*>(w), p.K, uk.nr}, static_cast<T*>(dx), p.K, uk);
  });
}

void linear_bwd_weights(const LinearProblem& p, DType dtype, const void* x, const void* dy,
                        void* dw, void* db) {
  util::with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    const auto& uk = ukernel<T>();
    const T* g = static_cast<const T*>(dy);
    multiply(p.N, p.K, p.M, gemm::StridedA<T>{g, p.N, 1, p.N, uk},
         gemm::RowMajorB<T>{static_cast<const T*>(x), p.K, uk.nr}, static_cast<T*>(dw), p.K, uk);
    if (db) {
      T* out = static_cast<T*>(db);
      for (int64_t n = 0; n < p.N; ++n) {
        double s = 0;
        for (int64_t m = 0; m < p.M; ++m) s += double(g[m * p.N + n]);
        out[n] = T(s);
      }
    }
  });
}

}  // namespace fastconv
