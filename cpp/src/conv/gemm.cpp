// conv/gemm.cpp — convolution as GEMM (im2col): forward, backward-data, backward-weights.
//
// Per image n and group g, with Kr = Cg*KD*KH*KW, P = OD*OH*OW and X_col = im2col(X_g)
// (Chellapilla et al., "High performance convolutional neural networks for document
// processing", 2006):
//   forward           Y_g [Kg x P]  = W_g [Kg x Kr] * X_col [Kr x P] + b_g
//   backward-data     dX_col [Kr x P] = W_g^T [Kr x Kg] * dY_g [Kg x P];  dX_g = col2im(dX_col)
//   backward-weights  dW_g [Kg x Kr] = sum_n dY_g [Kg x P] * X_col^T [P x Kr]
// All three run the project's packed GEMM (gemm/gemm.hpp); im2col, its transpose and the
// batch are fused into packing. A forward at stride 1 along W with a short reduction (a
// network's first layer) packs nothing: its tiles read the rows of X_col where they lie in the
// padded input (forward_rows, rows_in_place). Where the output positions P fill the GEMM's
// vectors badly (a 7x7 image: 49 of 64 lanes) and the output channels fill them well, the
// forward computes the product transposed, Y_g^T [P x Kg] = X_col^T [P x Kr] * W_g^T [Kr x Kg]
// (W_g^T packed once), into a scratch block transposed back with bias and clamp. A 1x1 layer's
// data gradient without stride or padding is the forward by W_g^T (backward_data_by_forward).
// Work is split into tiles that write disjoint outputs, each reduced in a fixed order, so
// results do not depend on the thread count:
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

// Rows of dX_col computed (and scattered by col2im) per GEMM call in backward-data, and of
// Y^T per task in the transposed forward.
constexpr int64_t kRowChunk = 256;
// Row stride of that scratch block: kNC and a cache line more, so that reading a column of it
// (the transposed forward's pass back) does not fall on a few cache sets.
constexpr int64_t kChunkStride = gemm::kNC + 16;

// Split `rows` (in multiples of mr) only as far as needed to give every thread a task: each
// row block packs its own copy of the B blocks, so splitting is not free.
int64_t row_blocks_for(int64_t rows, int mr, int64_t tasks, int threads) {
  if (tasks >= threads) return 1;
  return std::min(ceil_div(threads, tasks), ceil_div(rows, mr));
}

// Task t of a (batch) x groups x column blocks x row blocks grid, row blocks fastest.
struct Tile {
  int64_t n, g, cb, rb;
};
Tile tile_of(int64_t t, int64_t groups, int64_t col_blocks, int64_t row_blocks) {
  return {t / (row_blocks * col_blocks * groups), t / (row_blocks * col_blocks) % groups,
          t / row_blocks % col_blocks, t % row_blocks};
}

// Per-thread scratch of each use: A (one panel, or for the transposed forward a block of
// kRowChunk rows), B (a block, none where B is prepacked) and C (a chunk of dX_col, or the
// transposed forward's Y^T block).
enum class Use { forward, forward_transposed, backward_data, backward_weights };

struct ScratchSizes {
  int64_t a, b, c;
  ScratchSizes(Use use, int mr)
      : a(use == Use::forward_transposed ? kRowChunk * gemm::kKC : gemm::a_panel_size(mr)),
        b(use == Use::forward_transposed ? 0 : gemm::b_block_size()),
        c(use == Use::forward_transposed || use == Use::backward_data ? kRowChunk * kChunkStride
                                                                       : 0) {}
  int64_t total() const { return a + b + c; }
};

template <typename T>
struct Scratch {
  T* a;
  T* b;
  T* c;
};

template <typename T>
Scratch<T> scratch(T* base, Use use, int mr) {
  const ScratchSizes n(use, mr);
  T* a = base + thread_index() * n.total();
  return {a, a + n.a, a + n.a + n.b};
}

// Whether the forward computes the product transposed (see the header). A partial tile costs
// its rows and its vectors (gemm_ukernel.hpp), so what the lanes waste is the share of useful
// lanes in whole vectors: P / round_up(P, W) computing Y, Kg / round_up(Kg, W) computing Y^T.
// Transposed when that share grows by more than the pass back costs, about 96 / Kr of the
// product (one more write and read of each output against Kr multiply-adds). Measured through
// plans, 1 thread, avx512: on 7x7 (49 of 64 lanes) 512 -> 2048, 2048 -> 512 and 1024 -> 2048
// run 13-15 % faster transposed; on 14x14 (196 of 208) 256 -> 1024, 1024 -> 256, 1024 -> 512
// and 512 -> 1024 2-5 % slower, 64 -> 64 on 7x7 (Kr 64) 5 % slower, 96 -> 96 on 10x10 10 %.
template <typename T>
bool transposed_product(const ConvProblem& p, const kernels::GemmUkernel<T>& uk) {
  const int64_t P = p.out_spatial(), Kg = p.K_per_group(), Kr = reduction_size(p);
  if (P == 0 || Kg == 0 || Kr == 0) return false;
  const auto share = [&](int64_t n) { return double(n) / double(round_up(n, uk.w)); };
  return share(Kg) > (1.0 + 96.0 / double(Kr)) * share(P);
}

bool transposed_product(const ConvProblem& p, DType dtype, const kernels::KernelTable& k) {
  return dtype == DType::f32 ? transposed_product(p, k.f32.gemm) : transposed_product(p, k.f64.gemm);
}

// Whether the forward reads a 1x1 layer's input (B, row-major) in place rather than packing
// its blocks: unless its rows are not whole cache lines apart and it is too large to stay in
// cache between calls, where each B panel's rows straddle lines the prefetchers do not fetch
// ahead. Measured on 1x1 layers through plans, 1 thread, packed / in place: on 14 x 14 (rows
// of 784 bytes) 0.92-0.95 at batch 8, 0.98-1.04 at batch 1; on 28 x 28 and 56 x 56 (whole
// lines) 0.96-1.06 at batch 8, 1.04-1.11 at batch 1. (The data gradient reads dY in place.)
// On the Xeon (two FMA pipes: kernels' fma_pipes) a panel read in place is slower once it has
// more than 64 rows (its rows, P apart, fall on few L1 sets: on 56 x 56 every 4th set):
// packed / in place, 1 thread, plans: 256 -> 64 on 56 x 56 0.82, 512 -> 128 on 28 x 28 0.87,
// 128 -> 512 0.93-0.96, 256 -> 1024 on 14 x 14 0.95, 1024 -> 256 0.96, MobileNetV2's
// 144 -> 24 0.90-0.98; with 64 rows 64 -> 64 and 64 -> 256 on 56 x 56 1.02-1.07.
// Under at most kInPlacePanels A panels (few output channels), in place whatever the rows: each
// B block then serves too few tiles to pay for its packing, a pass over the input as long as
// the product (MobileNetV2's 144 -> 24 on 56 x 56, 1 thread: packing took half the call), and
// the microkernel fetches the rows read in place ahead (gemm_ukernel.hpp). Stateless calls,
// 1 thread, packed -> in place: 144 -> 24 on 56 x 56 0.21 -> 0.15 ms (batch 8: 1.80 ->
// 1.33), 192 -> 32 on 28 x 28 0.079 -> 0.060; avx2 (4 panels of 6 rows) 0.26 -> 0.22, batch 8
// 2.36-2.43 -> 2.46.
constexpr int64_t kInPlacePanels = 4;
constexpr int64_t kInPlaceColdBytes = int64_t(2) << 20;
bool in_place_b(int64_t b_bytes, int64_t row_bytes, int64_t rows, int64_t a_panels,
                int fma_pipes) {
  if (a_panels <= kInPlacePanels) return true;
  if (fma_pipes >= 2) return rows <= 64;
  return row_bytes % 64 == 0 || b_bytes <= kInPlaceColdBytes;
}

// Packed forward weights, for every group: W_g in MR-row panels over the whole reduction, or
// for the transposed product W_g^T in NR-column panels (gemm::PrepackedB).
template <typename T>
int64_t group_pack_size(const ConvProblem& p, const kernels::GemmUkernel<T>& uk) {
  if (transposed_product(p, uk))
    return gemm::PrepackedB<T>::size(reduction_size(p), p.K_per_group(), uk.nr);
  return gemm::prepacked_a_size(p.K_per_group(), reduction_size(p), uk.mr);
}

// w K x Kr -> packed (groups x group_pack_size), threads taking panels of A (KC blocks of the
// transposed product's B) of any group.
template <typename T>
void pack_weights(const ConvArgs& a, void* packed) {
  const ConvProblem& p = a.problem;
  const auto& uk = a.kernels.get<T>().gemm;
  const int64_t Kg = p.K_per_group(), Kr = reduction_size(p), size = group_pack_size(p, uk);
  const bool transposed = transposed_product(p, uk);
  const auto* w = static_cast<const T*>(a.w);
  auto* dst = static_cast<T*>(packed);
  const int64_t units = transposed ? gemm::PrepackedB<T>::blocks(Kr)
                                   : gemm::PrepackedA<T>::panels(Kg, uk.mr);
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1)
  for (int64_t task = 0; task < p.groups * units; ++task) {
    const int64_t g = task / units, u = task % units;
    if (transposed) {
      gemm::PrepackedB<T>::pack(uk, w + g * Kg * Kr, Kr, Kr, Kg, dst + g * size, u, u + 1);
    } else {
      gemm::PrepackedA<T>::pack(uk, w + g * Kg * Kr, Kg, Kr, Kr, dst + g * size, u, u + 1);
    }
  }
}

// ---- forward, transposed product:  x N x C x in (padded), packed W^T, y N x K x P.
// Tasks (n, g, block of <= kRowChunk positions, run of blocks of kNC output channels); each
// computes its Y^T blocks into the thread's scratch C and writes them transposed, with bias and
// clamp. A task whose A (its positions x the whole reduction) fits the A scratch packs it once
// for all its column blocks, and takes as many of them as the threads leave it (im2col^T of a
// stride-2 layer is a gather: ResNet-50's 1024 -> 2048 on 14x14 / 2 packed it 8 times);
// otherwise a task has one column block and packs A a reduction block at a time.
template <typename T>
void forward_transposed(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& uk = a.kernels.get<T>().gemm;
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), Kr = reduction_size(p);
  const int64_t P = p.out_spatial(), in_plane = p.in_spatial();
  const auto* x = static_cast<const T*>(a.x);
  const auto* b = static_cast<const T*>(a.b);
  auto* y = static_cast<T*>(a.out);
  const auto* wpack = static_cast<const T*>(a.packed_w);
  const int64_t group_pack = group_pack_size(p, uk);
  auto* scratch_base = static_cast<T*>(a.workspace);
  const auto& blk = a.kernels.get<T>().blocked;  // its transposes

  const int64_t col_blocks = ceil_div(Kg, gemm::kNC);
  const int64_t max_rows = kRowChunk / uk.mr * uk.mr;  // a block's rows, whole panels
  const int64_t row_blocks = std::max(ceil_div(P, max_rows),
                                      row_blocks_for(P, uk.mr, p.N * p.groups * col_blocks, a.threads));
  const int64_t rows_per_block = round_up(ceil_div(P, row_blocks), uk.mr);
  const bool whole_a = rows_per_block * Kr <= ScratchSizes(Use::forward_transposed, uk.mr).a;
  const int64_t col_runs =
      whole_a ? std::min(col_blocks, ceil_div(a.threads, p.N * p.groups * row_blocks)) : col_blocks;
  const int64_t tasks = p.N * p.groups * col_runs * row_blocks;
#pragma omp parallel for schedule(dynamic, 1) num_threads(a.threads) if (a.threads > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const auto [n, g, cr, rb] = tile_of(t, p.groups, col_runs, row_blocks);
    const int64_t m0 = rb * rows_per_block, m1 = std::min(P, m0 + rows_per_block);
    if (m0 >= m1) continue;
    const Scratch<T> s = scratch(scratch_base, Use::forward_transposed, uk.mr);
    // Per reduction block, the A block of the task's positions at once: im2col^T in MR-row
    // panels is im2col in panels of MR lanes, each input row read once for all of them. Block
    // k0 at s.a + k0 * rows (whole_a) or at s.a.
    const Im2colB<T> a_block(p, x + (n * p.C + g * Cg) * in_plane, uk, uk.mr);
    const int64_t rows = round_up(m1 - m0, uk.mr);
    const auto a_at = [&](int64_t k0) { return whole_a ? s.a + k0 * rows : s.a; };
    if (whole_a)
      for (int64_t k0 = 0; k0 < Kr; k0 += gemm::kKC)
        a_block(k0, std::min(gemm::kKC, Kr - k0), m0, m1 - m0, a_at(k0));
    const int64_t Nr = round_up(Kg, uk.nr);
    const int64_t cb0 = cr * col_blocks / col_runs, cb1 = (cr + 1) * col_blocks / col_runs;
    for (int64_t cb = cb0; cb < cb1; ++cb) {
      const int64_t n0 = cb * gemm::kNC, n1 = std::min(Kg, n0 + gemm::kNC);
      for (int64_t k0 = 0; k0 < Kr; k0 += gemm::kKC) {
        const int64_t kc = std::min(gemm::kKC, Kr - k0);
        if (!whole_a) a_block(k0, kc, m0, m1 - m0, s.a);
        const auto panel = [&](int64_t m, int64_t, int64_t, T*) -> const T* {
          return a_at(k0) + (m - m0) / uk.mr * kc * uk.mr;
        };
        kernels::TileStore<T> st;
        st.accumulate = k0 > 0;
        gemm::gemm_block(uk, kc, m0, m1, n0, n1, panel,
                         gemm::PrepackedB<T>{wpack + g * group_pack + k0 * Nr, Nr}, s.c,
                         kChunkStride, st, static_cast<T*>(nullptr), s.b);
      }
      // Bias and clamp (a plan's ReLU / ReLU6) along the block's rows, then W x W transposes
      // into the rows of y.
      const T* bias = b ? b + g * Kg + n0 : nullptr;
      for (int64_t q = 0; q < m1 - m0; ++q) {
        T* row = s.c + q * kChunkStride;
        if (bias)
          for (int64_t k = 0; k < n1 - n0; ++k) row[k] += bias[k];
        activate(a.activation, row, n1 - n0);
      }
      T* out_rows[64];
      for (int64_t k0 = n0; k0 < n1; k0 += blk.w) {
        const int count = static_cast<int>(std::min<int64_t>(blk.w, n1 - k0));
        for (int c = 0; c < count; ++c) out_rows[c] = y + (n * p.K + g * Kg + k0 + c) * P + m0;
        blk.deinterleave(s.c + (k0 - n0), kChunkStride, m1 - m0, out_rows, count);
      }
    }
  }
}

// Whether the forward reads im2col(x_g) where it lies (forward_rows): stride 1 along W, so
// that an output row's positions are consecutive in every im2col row; a reduction of one block
// (a network's first layer: 3 x 3 x 3 = 27); output rows of at least one whole panel; and
// where the packing it saves outweighs the lanes its tiles leave idle at the rows' ends (the
// packed path's panels run across rows). Packing costs about 16 / Kg of the product (each B
// element is packed once and multiplied by Kg weights), the rows' ends 1 - OW / round_up(OW, W).
// Measured through plans, 1 thread, avx512, packed -> in place: VGG-16 conv1_1 (3 -> 64 on
// 224 x 224) 1.58 -> 1.20 ms, 5 x 5 3 -> 32 on 224 x 224 2.26 -> 1.45, 3 x 3 16 -> 64 on
// 56 x 56 0.45 -> 0.41; 28 -> 256 on 56 x 56 (rows of 56: 1/8 of the lanes idle) 2.51 -> 2.86,
// which the rule leaves packed. Not for a 1x1 layer, read in place already.
template <typename T>
bool rows_in_place(const ConvProblem& p, const kernels::GemmUkernel<T>& uk) {
  const int64_t OW = p.out[2];
  const double idle = 1.0 - double(OW) / double(round_up(OW, uk.w));
  return !transposed_product(p, uk) && p.stride[2] == 1 && reduction_size(p) <= gemm::kKC &&
         p.kernel_spatial() > 1 && OW >= uk.nr && idle * double(p.K_per_group()) < 16.0;
}

bool rows_in_place(const ConvProblem& p, DType dtype, const kernels::KernelTable& k) {
  return dtype == DType::f32 ? rows_in_place(p, k.f32.gemm) : rows_in_place(p, k.f64.gemm);
}

// ---- forward, B in place:  x N x C x in (padded), packed W, y N x K x P (rows_in_place).
// Each tile is MR output channels x NR positions of one output row; row k of its B panel is
// the padded input at the row's first position plus Im2colGeometry's offset of im2col row k,
// which the microkernel reads there (run_rows): nothing is packed. The rows go in segments of
// at most kNC positions, whose B rows stay in cache while every A panel passes over them (a
// 1-D layer is one long row: WaveNet's 64 channels over 16 000 samples). Tasks (n, g, run of
// segments), every output channel in each.
template <typename T>
void forward_rows(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& uk = a.kernels.get<T>().gemm;
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), Kr = reduction_size(p);
  const int64_t P = p.out_spatial(), in_plane = p.in_spatial(), OW = p.out[2];
  const int64_t segments = ceil_div(OW, gemm::kNC);              // per output row
  const int64_t units = p.out[0] * p.out[1] * segments;           // segments of all rows
  const auto* x = static_cast<const T*>(a.x);
  const auto* b = static_cast<const T*>(a.b);
  auto* y = static_cast<T*>(a.out);
  const auto* wpack = static_cast<const T*>(a.packed_w);
  const auto* residual = static_cast<const T*>(a.residual);
  const int64_t group_pack = group_pack_size(p, uk);
  const Im2colGeometry geo(p);
  int64_t offset[gemm::kKC];  // of the im2col rows, from the group's first channel
  geo.row_offsets(0, Kr, offset);
  const int64_t runs = std::min(units, ceil_div(4 * int64_t(a.threads), p.N * p.groups));
  kernels::TileStore<T> store_base = output_store<T>(nullptr, a.activation);
  store_base.stream = a.stream_output && p.N * p.K * P * int64_t(sizeof(T)) > kStreamOutputBytes;
#pragma omp parallel for schedule(dynamic, 1) num_threads(a.threads) if (a.threads > 1)
  for (int64_t t = 0; t < p.N * p.groups * runs; ++t) {
    const int64_t run = t % runs, g = t / runs % p.groups, n = t / (runs * p.groups);
    const T* xg = x + (n * p.C + g * Cg) * in_plane;
    const T* wg = wpack + g * group_pack;
    for (int64_t u = run * units / runs; u < (run + 1) * units / runs; ++u) {
      const int64_t r = u / segments, j0 = u % segments * gemm::kNC;
      const int64_t j1 = std::min(OW, j0 + gemm::kNC);
      int64_t first;  // the row's first position in the padded input
      geo.col_offsets(r * OW, 1, &first);
      for (int64_t m = 0; m < Kg; m += uk.mr) {
        kernels::TileStore<T> st = store_base;
        st.bias = b ? b + g * Kg + m : nullptr;
        const int count = static_cast<int>(std::min<int64_t>(uk.mr, Kg - m));
        for (int64_t j = j0; j < j1; j += uk.nr) {
          const int64_t at = (n * p.K + g * Kg + m) * P + r * OW + j;  // the tile's place in y
          if (residual) st.residual = residual + at;
          uk.run_rows(Kr, wg + m * Kr, xg + first + j, offset, y + at, P, count,
                      static_cast<int>(std::min<int64_t>(uk.nr, j1 - j)), st);
        }
      }
    }
    if (store_base.stream) uk.store_fence();
  }
}

// ---- forward:  x N x C x in (padded), packed W (pack_weights), y N x K x P.
// Workspace: per-thread scratch.
template <typename T>
void forward(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& uk = a.kernels.get<T>().gemm;
  if (transposed_product(p, uk)) {
    forward_transposed<T>(a);
    return;
  }
  if (rows_in_place(p, uk)) {
    forward_rows<T>(a);
    return;
  }
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), Kr = reduction_size(p);
  const int64_t P = p.out_spatial(), in_plane = p.in_spatial();
  const auto* x = static_cast<const T*>(a.x);
  const auto* b = static_cast<const T*>(a.b);
  auto* y = static_cast<T*>(a.out);
  const auto* wpack = static_cast<const T*>(a.packed_w);
  const int64_t group_pack = group_pack_size(p, uk);
  auto* scratch_base = static_cast<T*>(a.workspace);

  const int64_t col_blocks = ceil_div(P, gemm::kNC);
  const int64_t row_blocks = row_blocks_for(Kg, uk.mr, p.N * p.groups * col_blocks, a.threads);
  const int64_t rows_per_block = round_up(ceil_div(Kg, row_blocks), uk.mr);
  const int64_t tasks = p.N * p.groups * col_blocks * row_blocks;
  // A 1x1 kernel at stride 1 whose output covers the (padded) input: im2col(x_g) is x_g, read
  // in place where in_place_b says so.
  const bool in_place = p.kernel_spatial() == 1 && p.stride == std::array<int64_t, 3>{1, 1, 1} &&
                        p.out == p.in &&
                        in_place_b(p.N * p.C * P * int64_t(sizeof(T)), P * int64_t(sizeof(T)),
                                   Kr, rows_per_block / uk.mr, a.kernels.fma_pipes);
  // One reduction block: each tile is written once, so a large output can bypass the caches.
  kernels::TileStore<T> store_base = output_store<T>(nullptr, a.activation);
  store_base.stream = a.stream_output && Kr <= gemm::kKC &&
                     p.N * p.K * P * int64_t(sizeof(T)) > kStreamOutputBytes;
#pragma omp parallel for schedule(dynamic, 1) num_threads(a.threads) if (a.threads > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const auto [n, g, cb, rb] = tile_of(t, p.groups, col_blocks, row_blocks);
    const int64_t m0 = rb * rows_per_block, m1 = std::min(Kg, m0 + rows_per_block);
    if (m0 >= m1) continue;
    const int64_t n0 = cb * gemm::kNC, n1 = std::min(P, n0 + gemm::kNC);
    const Scratch<T> s = scratch(scratch_base, Use::forward, uk.mr);
    const int64_t at = (n * p.K + g * Kg + m0) * P + n0;  // the block's first output
    kernels::TileStore<T> st = store_base;
    st.bias = b ? b + g * Kg : nullptr;
    st.residual = a.residual ? static_cast<const T*>(a.residual) + at : nullptr;
    const T* xg = x + (n * p.C + g * Cg) * in_plane;
    const auto product = [&](const auto& pack_b) {
      gemm::gemm_block(uk, Kr, m0, m1, n0, n1,
                       gemm::PrepackedA<T>{wpack + g * group_pack, Kr, uk.mr}, pack_b, y + at, P,
                       st, s.a, s.b);
    };
    if (in_place)
      product(gemm::RowMajorB<T>{xg, P, uk.nr});
    else
      product(Im2colB<T>(p, xg, uk, uk.nr));
    if (store_base.stream) uk.store_fence();
  }
}

// ---- backward-data of a 1x1 layer at stride 1 without padding (data_gradient_is_forward):
// the forward of dy by W^T (the problem with C and K swapped), rows of dy read like a 1x1
// layer's input, each output written once, instead of dX_col chunks added into a zeroed dx
// (1x1 layers of ResNet-50, 1 thread: 1.3-2.3x faster than the chunks). W^T is packed straight
// from w, as the forward's pack_weights would pack it: its A panels (W_g^T's rows are w's
// columns) or, for the transposed product, B panels (W_g^T transposed is w's rows).
// Workspace: the packed weights, then the forward's.
ConvProblem data_gradient_forward(const ConvProblem& p) {
  ConvProblem q = p;
  std::swap(q.C, q.K);
  return q;
}

template <typename T>
int64_t data_gradient_weights_size(const ConvProblem& p, const kernels::GemmUkernel<T>& uk) {
  return round_up(p.groups * group_pack_size(data_gradient_forward(p), uk), 16);
}

template <typename T>
void backward_data_by_forward(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  const auto& uk = a.kernels.get<T>().gemm;
  const ConvProblem q = data_gradient_forward(p);
  const int64_t Kg = p.K_per_group(), Cg = p.C_per_group(), size = group_pack_size(q, uk);
  const bool transposed = transposed_product(q, uk);
  const auto* w = static_cast<const T*>(a.w);  // per group Kg x Cg: W_g
  T* packed = static_cast<T*>(a.workspace);
#pragma omp parallel for schedule(static) num_threads(a.threads) if (a.threads > 1)
  for (int64_t g = 0; g < p.groups; ++g) {
    const T* wg = w + g * Kg * Cg;
    T* dst = packed + g * size;
    if (transposed) {
      const int64_t Nr = round_up(Cg, uk.nr);
      for (int64_t k0 = 0; k0 < Kg; k0 += gemm::kKC)
        gemm::RowMajorB<T>{wg, Cg, uk.nr}.pack(k0, std::min(gemm::kKC, Kg - k0), 0, Cg,
                                               dst + k0 * Nr);
    } else {
      const gemm::StridedA<T> wt{wg, Cg, 1, Cg, uk};  // W_g^T: element (c, k) at wg[k Cg + c]
      for (int64_t m = 0; m < Cg; m += uk.mr) wt(m, 0, Kg, dst + m * Kg);
    }
  }
  ConvArgs f{q, a.dtype, a.dy, nullptr, nullptr, nullptr, a.out,
             packed + data_gradient_weights_size(p, uk), a.threads, a.kernels};
  f.packed_w = packed;
  forward<T>(f);
}

// ---- backward-data:  w K x Kr, dy N x K x P -> dx N x C x in (padded, zeroed by the caller).
// Workspace: per-thread scratch with a dX_col chunk.
template <typename T>
void backward_data(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  if (data_gradient_is_forward(p)) {
    backward_data_by_forward<T>(a);
    return;
  }
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
    const Scratch<T> s = scratch(scratch_base, Use::backward_data, uk.mr);
    const gemm::StridedA<T> wt{w + g * Kg * Kr, Kr, 1, Kr, uk};  // W_g^T
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
    const auto [n, g, cb, rb] = tile_of(t, p.groups, col_blocks, row_blocks);  // n = 0
    const int64_t m0 = rb * rows_per_block, m1 = std::min(Kg, m0 + rows_per_block);
    if (m0 >= m1) continue;
    const int64_t n0 = cb * gemm::kNC, n1 = std::min(Kr, n0 + gemm::kNC);
    const Scratch<T> s = scratch(scratch_base, Use::backward_weights, uk.mr);
    gemm::gemm_block(uk, p.N * P, m0, m1, n0, n1,
                     gemm::BatchedA<T>{dy + g * Kg * P, Kg, P, p.K * P, uk},
                     Im2colTransposedB<T>(p, x + g * Cg * in_plane, p.C * in_plane, uk),
                     dw + (g * Kg + m0) * Kr + n0, Kr, kernels::TileStore<T>{}, s.a, s.b);
  }
}

std::size_t workspace_bytes(const ConvProblem& p, DType dtype, ConvDirection direction,
                            int threads, const kernels::KernelTable& kernels) {
  const bool f32 = dtype == DType::f32;
  const int mr = f32 ? kernels.f32.gemm.mr : kernels.f64.gemm.mr;
  const std::size_t elem = util::dtype_size(dtype);
  if (direction == ConvDirection::forward && rows_in_place(p, dtype, kernels)) return 0;
  if (direction == ConvDirection::backward_data && data_gradient_is_forward(p)) {
    const int64_t weights = f32 ? data_gradient_weights_size(p, kernels.f32.gemm)
                                : data_gradient_weights_size(p, kernels.f64.gemm);
    return static_cast<std::size_t>(weights) * elem +
           workspace_bytes(data_gradient_forward(p), dtype, ConvDirection::forward, threads,
                           kernels);
  }
  const Use use = direction == ConvDirection::backward_data      ? Use::backward_data
                  : direction == ConvDirection::backward_weights ? Use::backward_weights
                  : transposed_product(p, dtype, kernels)       ? Use::forward_transposed
                                                                 : Use::forward;
  return static_cast<std::size_t>(threads * ScratchSizes(use, mr).total()) * elem;
}

// The data gradient by the forward writes the whole gradient, which is the kept box where the
// layer has no padding (then the entry point leaves dx as it is instead of zeroing it).
bool writes_kept_box(const ConvArgs& a) {
  const ConvProblem& p = a.problem;
  return data_gradient_is_forward(p) && a.keep_lo == std::array<int64_t, 3>{0, 0, 0} &&
         a.keep_hi == p.in;
}

std::size_t packed_weights_bytes(const ConvProblem& p, DType dtype,
                                 const kernels::KernelTable& kernels) {
  if (dtype == DType::f32) return p.groups * group_pack_size(p, kernels.f32.gemm) * sizeof(float);
  return p.groups * group_pack_size(p, kernels.f64.gemm) * sizeof(double);
}

// The forward adds a residual in its stores, but for the transposed product (whose Y^T block
// goes back to NCHW rows through transposes).
bool fuses_residual(const ConvProblem& p, DType dtype, const kernels::KernelTable& k) {
  return !transposed_product(p, dtype, k);
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
      &by_dtype_pack<pack_weights<float>, pack_weights<double>>,
      nullptr,
      &writes_kept_box,
      false,
      nullptr,
      &fuses_residual};
  return algo;
}

}  // namespace fastconv::conv
