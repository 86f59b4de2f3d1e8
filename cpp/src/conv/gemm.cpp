// conv/gemm.cpp — convolution as GEMM (im2col), forward.
//
// Per image n and group g:  Y_g[Kg x P] = W_g[Kg x Kd] * im2col(X_g)[Kd x P] + b_g,
// Kd = Cg*KD*KH*KW, P = OD*OH*OW (Chellapilla et al., "High performance convolutional neural
// networks for document processing", 2006). W_g is exactly the weight rows of group g. float32
// runs the project's packed GEMM (gemm/gemm.hpp) with im2col fused into B packing
// (im2col.hpp); tasks are (n, g, column block, row block) so batch 1 scales over threads.
// float64 packs im2col blocks the same way and multiplies them with Eigen (generic code is enough for
// the reference-precision path). Handles every stride, dilation, group count and padding (the
// input arrives padded).
#include <algorithm>

#include <Eigen/Core>

#include "algorithm.hpp"
#include "gemm/gemm.hpp"
#include "im2col.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastconv::conv {

namespace {

using util::ceil_div;
using util::round_up;

int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int64_t reduction_size(const ConvProblem& p) { return p.C_per_group() * p.kernel_spatial(); }

// Work split of the float32 path: column blocks of kNC, and rows split further when there are
// too few column blocks to keep every thread busy.
struct Split {
  int64_t col_blocks, row_blocks, rows_per_block;
};

Split split(const ConvProblem& p, int mr, int threads) {
  const int64_t Kg = p.K_per_group(), P = p.out_spatial();
  const int64_t col_blocks = ceil_div(P, gemm::kNC);
  const int64_t tasks = p.N * p.groups * col_blocks;
  int64_t row_blocks = 1;
  if (tasks < 4 * threads) {
    row_blocks = ceil_div(4 * threads, tasks);
    const int64_t max_blocks = ceil_div(Kg, mr);
    if (row_blocks > max_blocks) row_blocks = max_blocks;
  }
  return {col_blocks, row_blocks, round_up(ceil_div(Kg, row_blocks), mr)};
}

// ---- float32: packed GEMM, im2col inside B packing
//   x: N x C x in (padded), w: K x Kd, y: N x K x P; workspace: packed A for every group, then
//   one B block per thread.
void forward_packed(const ConvFwdArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& uk = a.kernels.f32.gemm;
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), Kd = reduction_size(p);
  const int64_t P = p.out_spatial(), in_plane = p.in_spatial();
  const auto* x = static_cast<const float*>(a.x);
  const auto* w = static_cast<const float*>(a.w);
  const auto* b = static_cast<const float*>(a.b);
  auto* y = static_cast<float*>(a.y);
  auto* apack = static_cast<float*>(a.workspace);
  const int64_t a_group = gemm::packed_a_size(Kg, Kd, uk.mr);
  float* bbufs = apack + p.groups * a_group;

#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1)
  for (int64_t g = 0; g < p.groups; ++g) gemm::pack_a(Kg, Kd, w + g * Kg * Kd, Kd, uk.mr, apack + g * a_group);

  const Split s = split(p, uk.mr, a.threads);
  const int64_t tasks = p.N * p.groups * s.col_blocks * s.row_blocks;
#pragma omp parallel for schedule(dynamic, 1) num_threads(a.threads) if (a.threads > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t rb = t % s.row_blocks, cb = t / s.row_blocks % s.col_blocks;
    const int64_t g = t / (s.row_blocks * s.col_blocks) % p.groups;
    const int64_t n = t / (s.row_blocks * s.col_blocks * p.groups);
    const int64_t m0 = rb * s.rows_per_block, m1 = std::min(Kg, m0 + s.rows_per_block);
    if (m0 >= m1) continue;
    const int64_t n0 = cb * gemm::kNC, n1 = std::min(P, n0 + gemm::kNC);
    const Im2colPacker<float> pack_b(p, x + (n * p.C + g * Cg) * in_plane, uk.nr);
    gemm::gemm_block(uk, Kg, Kd, m0, m1, n0, n1, apack + g * a_group, pack_b,
                     y + (n * p.K + g * Kg) * P, P, b ? b + g * Kg : nullptr,
                     bbufs + thread_index() * gemm::packed_b_block_size());
  }
}

// ---- float64: im2col by column blocks + Eigen product
//   Y_g[:, n0:n0+nc] = W_g * im2col block (Kd x nc); workspace: one block per thread.
void forward_eigen(const ConvFwdArgs& a) {
  using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  const ConvProblem& p = a.problem;
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), Kd = reduction_size(p);
  const int64_t P = p.out_spatial(), in_plane = p.in_spatial();
  const auto* x = static_cast<const double*>(a.x);
  const auto* w = static_cast<const double*>(a.w);
  const auto* b = static_cast<const double*>(a.b);
  auto* y = static_cast<double*>(a.y);
  auto* cols = static_cast<double*>(a.workspace);
  const int64_t col_blocks = ceil_div(P, gemm::kNC);

#pragma omp parallel for schedule(dynamic, 1) num_threads(a.threads) if (a.threads > 1)
  for (int64_t t = 0; t < p.N * p.groups * col_blocks; ++t) {
    const int64_t cb = t % col_blocks, g = t / col_blocks % p.groups, n = t / (col_blocks * p.groups);
    const int64_t n0 = cb * gemm::kNC, nc = std::min(gemm::kNC, P - n0);
    double* col = cols + thread_index() * Kd * gemm::kNC;
    // A single B panel nc wide is the row-major Kd x nc block of the im2col matrix.
    const Im2colPacker<double> im2col(p, x + (n * p.C + g * Cg) * in_plane, static_cast<int>(nc));
    im2col(0, Kd, n0, nc, col);
    Eigen::Map<const Mat> W(w + g * Kg * Kd, Kg, Kd);
    Eigen::Map<const Mat> B(col, Kd, nc);
    Eigen::Map<Mat, 0, Stride> Y(y + (n * p.K + g * Kg) * P + n0, Kg, nc, Stride(P));
    Y.noalias() = W * B;
    if (b)
      for (int64_t k = 0; k < Kg; ++k) Y.row(k).array() += b[g * Kg + k];
  }
}

std::string why_not(const ConvProblem&, DType) { return {}; }

std::size_t workspace_bytes(const ConvProblem& p, DType dtype, int threads,
                            const kernels::KernelTable& kernels) {
  const int64_t Kd = reduction_size(p);
  if (dtype == DType::f64) return static_cast<std::size_t>(threads * Kd * gemm::kNC) * sizeof(double);
  const int mr = kernels.f32.gemm.mr;
  return static_cast<std::size_t>(p.groups * gemm::packed_a_size(p.K_per_group(), Kd, mr) +
                                  threads * gemm::packed_b_block_size()) *
         sizeof(float);
}

void forward(const ConvFwdArgs& a) {
  if (a.dtype == DType::f32) {
    forward_packed(a);
  } else {
    forward_eigen(a);
  }
}

}  // namespace

const ConvAlgorithm& gemm_algorithm() {
  static const ConvAlgorithm algo{
      "gemm", "im2col fused into the packing of a register-tiled GEMM; any parameters",
      &why_not, &workspace_bytes, &forward};
  return algo;
}

}  // namespace fastconv::conv
