// conv/gemm.cpp — convolution as GEMM (im2col): forward, backward-data, backward-weights.
//
// Per image n and group g, with Kr = Cg*KD*KH*KW, P = OD*OH*OW and X_col = im2col(X_g)
// (Chellapilla et al., "High performance convolutional neural networks for document
// processing", 2006):
//   forward           Y_g [Kg x P]  = W_g [Kg x Kr] * X_col [Kr x P] + b_g
//   backward-data     dX_col [Kr x P] = W_g^T [Kr x Kg] * dY_g [Kg x P];  dX_g = col2im(dX_col)
//   backward-weights  dW_g [Kg x Kr] = sum_n dY_g [Kg x P] * X_col^T [P x Kr]
// All three run the project's packed GEMM (gemm/gemm.hpp); im2col, its transpose and the
// batch are fused into packing. Work is split into tiles that write disjoint outputs, each
// reduced in a fixed order, so results do not depend on the thread count:
//   forward:  (n, g, column block, row block);  backward-data: (n, g, block of input
//   channels), whose col2im touches only those channels;  backward-weights: (g, row block,
//   column block), each summing over the whole batch. The input arrives padded.
#include <algorithm>

#include "activation.hpp"
#include "algorithm.hpp"
#include "gemm/gemm.hpp"
#include "im2col.hpp"

#include "util/dtype.hpp"
#include "util/parallel.hpp"

namespace fastconv::conv {

namespace {

using util::ceil_div;
using util::round_up;
using util::thread_index;

// Rows of the im2col matrix of one group: Cg x kernel.
int64_t reduction_size(const ConvProblem& p) { return p.C_per_group() * p.kernel_spatial(); }

// Rows of dX_col computed (and scattered by col2im) per GEMM call in backward-data.
constexpr int64_t kRowChunk = 256;

// Split `rows` (in multiples of mr) only as far as needed to give every thread a task: each
// row block packs its own copy of the B blocks, so splitting is not free.
int64_t row_blocks_for(int64_t rows, int mr, int64_t tasks, int threads) {
  if (tasks >= threads) return 1;
  return std::min(ceil_div(threads, tasks), ceil_div(rows, mr));
}

// Per-thread scratch: one A panel and one B block (and, for backward-data, a dX_col chunk).
template <typename T>
struct Scratch {
  T* a;
  T* b;
  T* c;
};

template <typename T>
int64_t scratch_size(int mr, bool with_c) {
  return gemm::a_panel_size(mr) + gemm::b_block_size() + (with_c ? kRowChunk * gemm::kNC : 0);
}

template <typename T>
Scratch<T> scratch(T* base, int mr, bool with_c) {
  T* a = base + thread_index() * scratch_size<T>(mr, with_c);
  T* b = a + gemm::a_panel_size(mr);
  return {a, b, b + gemm::b_block_size()};
}

// Packed forward weights: W_g in MR-row panels over the whole reduction, for every group.
int64_t group_pack_size(const ConvProblem& p, int mr) {
  return gemm::prepacked_a_size(p.K_per_group(), reduction_size(p), mr);
}

// w K x Kr -> packed (groups x group_pack_size).
template <typename T>
void pack_weights(const ConvArgs& a, void* packed) {
  const ConvProblem& p = a.problem;
  const int mr = a.kernels.get<T>().gemm.mr;
  const int64_t Kg = p.K_per_group(), Kr = reduction_size(p), size = group_pack_size(p, mr);
  const auto* w = static_cast<const T*>(a.w);
  auto* dst = static_cast<T*>(packed);
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1)
  for (int64_t g = 0; g < p.groups; ++g)
    gemm::PrepackedA<T>::pack(w + g * Kg * Kr, Kg, Kr, Kr, mr, dst + g * size);
}

// ---- forward:  x N x C x in (padded), packed W (pack_weights), y N x K x P.
// Workspace: per-thread scratch.
template <typename T>
void forward(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& uk = a.kernels.get<T>().gemm;
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), Kr = reduction_size(p);
  const int64_t P = p.out_spatial(), in_plane = p.in_spatial();
  const auto* x = static_cast<const T*>(a.x);
  const auto* b = static_cast<const T*>(a.b);
  auto* y = static_cast<T*>(a.out);
  const auto* wpack = static_cast<const T*>(a.packed_w);
  const int64_t group_pack = group_pack_size(p, uk.mr);
  auto* scratch_base = static_cast<T*>(a.workspace);

  const int64_t col_blocks = ceil_div(P, gemm::kNC);
  const int64_t row_blocks = row_blocks_for(Kg, uk.mr, p.N * p.groups * col_blocks, a.threads);
  const int64_t rows_per_block = round_up(ceil_div(Kg, row_blocks), uk.mr);
  const int64_t tasks = p.N * p.groups * col_blocks * row_blocks;
  // One reduction block: each tile is written once, so a large output can bypass the caches.
  kernels::TileStore<T> store_base = output_store<T>(nullptr, a.activation);
  store_base.stream = Kr <= gemm::kKC && p.N * p.K * P * int64_t(sizeof(T)) > kStreamOutputBytes;
#pragma omp parallel for schedule(dynamic, 1) num_threads(a.threads) if (a.threads > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t rb = t % row_blocks, cb = t / row_blocks % col_blocks;
    const int64_t g = t / (row_blocks * col_blocks) % p.groups;
    const int64_t n = t / (row_blocks * col_blocks * p.groups);
    const int64_t m0 = rb * rows_per_block, m1 = std::min(Kg, m0 + rows_per_block);
    if (m0 >= m1) continue;
    const int64_t n0 = cb * gemm::kNC, n1 = std::min(P, n0 + gemm::kNC);
    const Scratch<T> s = scratch(scratch_base, uk.mr, false);
    kernels::TileStore<T> st = store_base;
    st.bias = b ? b + g * Kg : nullptr;
    gemm::gemm_block(uk, Kr, m0, m1, n0, n1, gemm::PrepackedA<T>{wpack + g * group_pack, Kr, uk.mr},
                     Im2colB<T>(p, x + (n * p.C + g * Cg) * in_plane, uk),
                     y + (n * p.K + g * Kg + m0) * P + n0, P, st, s.a, s.b);
    if (store_base.stream) uk.store_fence();
  }
}

// ---- backward-data:  w K x Kr, dy N x K x P -> dx N x C x in (padded, zeroed by the caller).
// Workspace: per-thread scratch with a dX_col chunk.
template <typename T>
void backward_data(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& uk = a.kernels.get<T>().gemm;
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), Kr = reduction_size(p);
  const int64_t KK = p.kernel_spatial(), P = p.out_spatial(), in_plane = p.in_spatial();
  const auto* w = static_cast<const T*>(a.w);
  const auto* dy = static_cast<const T*>(a.dy);
  auto* dx = static_cast<T*>(a.out);
  auto* scratch_base = static_cast<T*>(a.workspace);
  const Im2colGeometry geo(p);

  const int64_t base_tasks = p.N * p.groups;
  const int64_t channel_blocks =
      base_tasks >= 4 * a.threads ? 1 : std::min(Cg, ceil_div(4 * a.threads, base_tasks));
  const int64_t channels_per_block = ceil_div(Cg, channel_blocks);
#pragma omp parallel for schedule(dynamic, 1) num_threads(a.threads) if (a.threads > 1)
  for (int64_t t = 0; t < base_tasks * channel_blocks; ++t) {
    const int64_t cb = t % channel_blocks, g = t / channel_blocks % p.groups;
    const int64_t n = t / (channel_blocks * p.groups);
    const int64_t r_begin = cb * channels_per_block * KK;
    const int64_t r_end = std::min(Cg, (cb + 1) * channels_per_block) * KK;
    const Scratch<T> s = scratch(scratch_base, uk.mr, true);
    const gemm::StridedA<T> wt{w + g * Kg * Kr, Kr, 1, Kr, uk.mr};  // W_g^T
    const gemm::RowMajorB<T> dyg{dy + (n * p.K + g * Kg) * P, P, uk.nr};
    T* dxg = dx + (n * p.C + g * Cg) * in_plane;
    for (int64_t n0 = 0; n0 < P; n0 += gemm::kNC) {
      const int64_t n1 = std::min(P, n0 + gemm::kNC);
      for (int64_t m0 = r_begin; m0 < r_end; m0 += kRowChunk) {
        const int64_t m1 = std::min(r_end, m0 + kRowChunk);
        gemm::gemm_block(uk, Kg, m0, m1, n0, n1, wt, dyg, s.c, gemm::kNC,
                         kernels::TileStore<T>{}, s.a, s.b);
        col2im_add(geo, s.c, gemm::kNC, m0, m1 - m0, n0, n1 - n0, dxg);
      }
    }
  }
}

// ---- backward-weights:  x N x C x in (padded), dy N x K x P -> dw K x Kr.
// Workspace: per-thread scratch.
template <typename T>
void backward_weights(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& uk = a.kernels.get<T>().gemm;
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), Kr = reduction_size(p);
  const int64_t P = p.out_spatial(), in_plane = p.in_spatial();
  const auto* x = static_cast<const T*>(a.x);
  const auto* dy = static_cast<const T*>(a.dy);
  auto* dw = static_cast<T*>(a.out);
  auto* scratch_base = static_cast<T*>(a.workspace);

  const int64_t col_blocks = ceil_div(Kr, gemm::kNC);
  const int64_t row_blocks = row_blocks_for(Kg, uk.mr, p.groups * col_blocks, a.threads);
  const int64_t rows_per_block = round_up(ceil_div(Kg, row_blocks), uk.mr);
#pragma omp parallel for schedule(dynamic, 1) num_threads(a.threads) if (a.threads > 1)
  for (int64_t t = 0; t < p.groups * col_blocks * row_blocks; ++t) {
    const int64_t rb = t % row_blocks, cb = t / row_blocks % col_blocks;
    const int64_t g = t / (row_blocks * col_blocks);
    const int64_t m0 = rb * rows_per_block, m1 = std::min(Kg, m0 + rows_per_block);
    if (m0 >= m1) continue;
    const int64_t n0 = cb * gemm::kNC, n1 = std::min(Kr, n0 + gemm::kNC);
    const Scratch<T> s = scratch(scratch_base, uk.mr, false);
    gemm::gemm_block(uk, p.N * P, m0, m1, n0, n1,
                     gemm::BatchedA<T>{dy + g * Kg * P, Kg, P, p.K * P, uk.mr},
                     Im2colTransposedB<T>(p, x + g * Cg * in_plane, p.C * in_plane, uk.nr),
                     dw + (g * Kg + m0) * Kr + n0, Kr, kernels::TileStore<T>{}, s.a, s.b);
  }
}

std::size_t workspace_bytes(const ConvProblem&, DType dtype, ConvDirection direction,
                            int threads, const kernels::KernelTable& kernels) {
  const bool f32 = dtype == DType::f32;
  const int mr = f32 ? kernels.f32.gemm.mr : kernels.f64.gemm.mr;
  const std::size_t elem = util::dtype_size(dtype);
  const bool with_c = direction == ConvDirection::backward_data;
  const int64_t elems =
      threads * (f32 ? scratch_size<float>(mr, with_c) : scratch_size<double>(mr, with_c));
  return static_cast<std::size_t>(elems) * elem;
}

std::size_t packed_weights_bytes(const ConvProblem& p, DType dtype,
                                 const kernels::KernelTable& kernels) {
  if (dtype == DType::f32)
    return p.groups * group_pack_size(p, kernels.f32.gemm.mr) * sizeof(float);
  return p.groups * group_pack_size(p, kernels.f64.gemm.mr) * sizeof(double);
}

}  // namespace

const ConvAlgorithm& gemm_algorithm() {
  static const ConvAlgorithm algo{
      "gemm",
      "im2col fused into the packing of a register-tiled GEMM; any parameters",
      {&by_dtype<forward<float>, forward<double>>,
       &by_dtype<backward_data<float>, backward_data<double>>,
       &by_dtype<backward_weights<float>, backward_weights<double>>},
      nullptr,
      &workspace_bytes,
      &packed_weights_bytes,
      &by_dtype_pack<pack_weights<float>, pack_weights<double>>};
  return algo;
}

}  // namespace fastconv::conv
