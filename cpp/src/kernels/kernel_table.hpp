// kernels/kernel_table.hpp — the table of microkernels that drivers call.
//
// Drivers never name an instruction set: they take the active KernelTable (one per ISA, built
// once, best first in dispatch.cpp) and call through it. A microkernel only sees pointers,
// counts and strides; packing, tiling and threading belong to the drivers.
#pragma once

#include <cstdint>
#include <string>

namespace fastconv::kernels {

// How a GEMM microkernel stores its tile of products S:
//   C = (accumulate ? C : bias[i] or 0) + S, then + residual[i*ldc + j] where residual is not
//   null (a residual block's shortcut, laid out as C), then, when clamp, C = min(max(C, lo), hi)
//   with NaN kept (a fused ReLU is lo = 0, hi = +inf; ReLU6 is hi = 6). bias may be null; it is
//   read only when accumulate is false.
template <typename T>
struct TileStore {
  const T* bias = nullptr;
  const T* residual = nullptr;  // at the tile's first element
  bool accumulate = false;
  bool clamp = false;
  T lo = T(0), hi = T(0);
  // Full tiles whose rows are vector-aligned go to memory with non-temporal stores (the writer
  // fences them, V::store_fence, before anyone reads C); ignored with `accumulate`.
  bool stream = false;
};

// GEMM microkernel, C tile of MR x NR:
//   C[i*ldc + j] = store(sum_k a[k*MR + i] * b[k*ldb + j])   for i < m <= MR, j < n <= NR.
//   a: packed A panel (kc x MR); b: kc rows of NR readable values, ldb apart (NR for a packed
//   panel, the row stride for a panel read in place); `store` offsets bias by the tile's first
//   row.
template <typename T>
using GemmUkernelFn = void (*)(int64_t kc, const T* a, const T* b, int64_t ldb, T* c,
                               int64_t ldc, int m, int n, const TileStore<T>& store);
// The same tile with row k of B at b + offset[k] (any offsets: the rows of an im2col matrix
// where they lie in a padded input), and only the n columns of each row read.
template <typename T>
using GemmRowsUkernelFn = void (*)(int64_t kc, const T* a, const T* b, const int64_t* offset,
                                   T* c, int64_t ldc, int m, int n, const TileStore<T>& store);

// Columns of a packed GEMM B block as runs of a constant source step (conv/im2col.hpp):
// run r copies len[r] elements x[src[r] + i*step[r]] to lanes dst[r] + i of a packed row.
struct ColumnRunsView {
  int64_t count;
  const int64_t* src;
  const int64_t* step;
  const int64_t* dst;
  const int64_t* len;
};

// Packs kc rows of a B block: for kk < kc, every run of `runs` from x + row[kk] into
// dst + kk*nr (generic/pack_ukernel.hpp). Steps above 2 up to kMaxGatherStep are gathered (the
// last lane's offset, 15 steps of at most 2^20 elements, stays inside the gathers' 32-bit byte
// indices); longer ones are copied element by element.
constexpr int64_t kMaxGatherStep = int64_t(1) << 20;
template <typename T>
using PackRunsFn = void (*)(const T* x, const int64_t* row, int64_t kc, int nr,
                            const ColumnRunsView& runs, T* dst);

// Rows into lanes: dst[i*ldd + c] = rows[c][i] (0 for a null row) for i < n, c < count <= W,
// ldd >= count or negative (records from the last one back) (generic/pack_ukernel.hpp):
// row-major weights into GEMM panels of MR or NR lanes, Winograd's taps into lanes.
template <typename T>
using PackRowsFn = void (*)(const T* const* rows, int count, int64_t n, T* dst, int64_t ldd);

template <typename T>
struct GemmUkernel {
  int mr = 0;
  int nr = 0;
  GemmUkernelFn<T> run = nullptr;
  PackRunsFn<T> pack_runs = nullptr;
  void (*store_fence)() = nullptr;  // after TileStore::stream tiles, before C is read
  int w = 0;  // lanes W of pack_rows
  PackRowsFn<T> pack_rows = nullptr;
  GemmRowsUkernelFn<T> run_rows = nullptr;  // the tile of `run`, B rows at offsets
};

// Direct convolution row microkernel: computes `kb` output rows of length `ow` at once.
//   y[k*ldy + o] = bias[k] (or 0) + sum_{t < ntaps} sum_{s < kw}
//                  w[(t*kw + s)*KB + k] * x[tap_offset[t] + o*stride + s*dilation]
//   for k < kb <= KB, o < ow. w is packed with KB lanes per (tap, s), zero beyond kb.
template <typename T>
struct DirectRowArgs {
  const T* x;
  const int64_t* tap_offset;
  int64_t ntaps;
  int64_t kw;
  int64_t stride;
  int64_t dilation;
  const T* w;
  const T* bias;  // kb values or null
  T* y;
  int64_t ldy;
  int kb;
  int64_t ow;
};

template <typename T>
using DirectRowUkernelFn = void (*)(const DirectRowArgs<T>& args);

// Direct backward-data row microkernel: scatters kb gradient rows into one input-gradient row.
//   gx[o*stride + s*dilation] += sum_{k < kb} w[s*KB + k] * gy[k*ldgy + o]   for s < kw, o < ow
template <typename T>
struct DirectRowBwdDataArgs {
  T* gx;
  const T* gy;
  int64_t ldgy;
  const T* w;  // [kw][KB], as packed for the forward kernel
  int KB;
  int kb;
  int64_t kw;
  int64_t stride;
  int64_t dilation;
  int64_t ow;
};

// Direct backward-weights row microkernel: one output-gradient row against one input row.
//   sums[s] += sum_{o < ow} gy[o] * x[o*stride + s*dilation]   for s < kw
template <typename T>
struct DirectRowBwdWeightsArgs {
  const T* x;
  const T* gy;
  int64_t kw;
  int64_t stride;
  int64_t dilation;
  int64_t ow;
  T* sums;
};

// Depthwise forward over one whole plane (one input and one output channel):
//   y[oh*ow_count + o] = bias + sum_{i < kh, j < kw} w[i*kw + j] *
//                        xp[(oh*sh + i*dh)*wp + o*sw + j*dw]        for oh < oh_count, o < ow
// where xp is the input plane x (in_h x in_w, rows ldx apart) placed at (top, left) in a zero
// plane of hp x wp. With any padding the kernel builds xp in `scratch` (hp * wp elements), of
// which the caller zeroes the border once: the kernel writes only the interior; except where
// the kernel takes the plane in strips (DirectRowUkernel::plane_strips), reading x alone.
template <typename T>
struct DepthwisePlaneArgs {
  const T* x;
  int64_t ldx;           // x's row length
  int64_t in_h, in_w;    // x's extents
  int64_t top, left;     // zero rows / columns before x in the padded plane
  int64_t hp, wp;        // the padded plane's extents
  T* scratch;
  const T* w;            // kh x kw
  T bias;
  T* y;
  int64_t oh, ow, kh, kw, sh, sw, dh, dw;
};

// Whether the depthwise plane kernel of w lanes, where its table enables strips
// (DirectRowUkernel::plane_strips), takes a plane of this window in strips of row vectors with
// the zero padding folded into its loads: 3x3, stride 1 or 2 along both axes, no dilation, rows
// of at least w outputs.
inline bool depthwise_plane_strips(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh,
                                   int64_t dw, int64_t ow, int w) {
  return kh == 3 && kw == 3 && sh == sw && sh <= 2 && dh == 1 && dw == 1 && ow >= w;
}

// Depthwise convolution of W channels at once on a channel-blocked plane (lane c: channel c):
//   y[(r*ow + o)*W + c] = store(bias[c] + sum_{i < kh, j < kw} w[(i*kw + j)*W + c] *
//                                x[(r*sh + i*dh)*ldx + (o*sw + j*dw)*W + c])
// for rows r < oh, o < ow; x holds the padded plane (ldx elements per row); store adds the
// bias and applies the clamp [lo, hi] when `clamp`.
template <typename T>
struct DepthwiseBlockedArgs {
  const T* x;
  int64_t ldx;
  const T* w;     // taps x W
  const T* bias;  // W
  T* y;
  int64_t oh, ow, kh, kw, sh, sw, dh, dw;
  bool clamp;
  T lo, hi;
};

template <typename T>
struct DirectRowUkernel {
  int kb = 0;                                  // KB: output channels per call of run
  DirectRowUkernelFn<T> run = nullptr;         // weights packed with KB lanes
  DirectRowUkernelFn<T> run_single = nullptr;  // KB = 1: one channel (depthwise)
  void (*bwd_data)(const DirectRowBwdDataArgs<T>&) = nullptr;
  void (*bwd_weights)(const DirectRowBwdWeightsArgs<T>&) = nullptr;
  void (*depthwise_plane)(const DepthwisePlaneArgs<T>&) = nullptr;
  void (*depthwise_blocked)(const DepthwiseBlockedArgs<T>&) = nullptr;
  int w = 0;  // lanes of depthwise_blocked (and of depthwise_plane)
  // Whether depthwise_plane takes the planes depthwise_plane_strips names in strips (no padded
  // copy): on ISAs with registers enough for a strip's accumulators and taps.
  bool plane_strips = false;
};

// Pooling passes (generic/pool_ukernel.hpp), for max (NaN-propagating) and sum:
//   rows:   v[i] = op_{r < nrows} x[offset[r] + i]                                  for i < n
template <typename T>
using PoolRowsFn = void (*)(const T* x, const int64_t* offset, int64_t nrows, int64_t n, T* v);
//   window: y[i*ldy + o] = op_{r < nrows, k < kw} x[i*row_step + offset[r] + o*stride +
//           k*dilation] (* scale[o])                                   for i < rows, o < n
template <typename T>
using PoolWindowFn = void (*)(const T* x, int64_t rows, int64_t row_step, const int64_t* offset,
                              int64_t nrows, int64_t n, int64_t stride, int64_t dilation,
                              int64_t kw, const T* scale, T* y, int64_t ldy);

template <typename T>
struct PoolKernels {
  PoolRowsFn<T> rows_max = nullptr;
  PoolRowsFn<T> rows_sum = nullptr;
  PoolWindowFn<T> window_max = nullptr;
  PoolWindowFn<T> window_sum = nullptr;
};

// Reduction terms the blocked kernels below sum in registers before the partial sums go to the
// tile in memory (as GEMM's KC blocks): the rounding error of long reductions (C x taps in the
// tens of thousands) then grows with the block and the block count, not with the whole length.
constexpr int64_t kBlockedReductionBlock = 256;

// Direct convolution on channel-blocked layouts (generic/blocked_ukernel.hpp), W lanes:
//   y[b*y_block + r*W + ko] = sum_{cb < ncb, t < ntaps, ci < W (last block: ci < last_cin)}
//       x[cb*x_block + taps[t] + r*S*W + ci] * w[b*w_block + (cb*ntaps + t)*W*W + ci*W + ko]
//   for b < NB, r < UR, ko < W; S = stride along the row (1 or 2). On the narrow layout (few
//   input channels, any stride) the kernel sums terms t, each one (tap, channel) pair:
//   y[b*y_block + r*W + ko] = sum_{t < ntaps} x[taps[t] + r*x_step] * w[b*w_block + t*W + ko].
// With `accumulate` the sums are added to y (=  becomes +=), in the same blocks of terms as
// within one call: a reduction split at a multiple of kBlockedReductionBlock terms into calls
// rounds as one call does.
template <typename T>
struct BlockedConvArgs {
  const T* x;            // blocked, padded input at the tile's first output, channel block 0
  int64_t x_block;       // elements between input channel blocks
  const int64_t* taps;   // offsets of the kernel taps (elements)
  int64_t ntaps;
  int64_t ncb;           // input channel blocks
  int last_cin = 0;      // channels of the last input block that hold data (0: all W); the
                         // lanes beyond are zero in x and w, so their terms are skipped
  const T* w;            // packed weights of the tile's first output block
  int64_t w_block;       // elements between output blocks' weights
  T* y;                  // the tile: y[b*y_block + r*W + ko]
  int64_t y_block = 0;   // elements between output blocks' rows in y (UR x W: a dense tile)
  int64_t x_step = 0;    // narrow layout only: elements between consecutive outputs' inputs
  bool accumulate = false;  // add the sums to the tile instead of writing them
  // Standard layout: the (block, tap) steps cb * ntaps + t summed, [step_lo, step_hi) (step_hi
  // 0: to ncb x ntaps); step_lo a multiple of kBlockedReductionBlock / W steps, so that a
  // reduction split into calls rounds as one call does.
  int64_t step_lo = 0, step_hi = 0;
};

template <typename T>
using BlockedConvFn = void (*)(const BlockedConvArgs<T>& args);

// Weight gradient on the same layouts (the output gradient blocked over output channels too):
//   acc[(r*NB + b)*W + ci] (+)= sum_{row < rows, o < ow} dy[row*dy_row + o*W + r] *
//                               x[b*x_block + row*x_row + o*S*W + ci]
//   for r < UR, b < NB, ci < W; added to acc unless `first`.
template <typename T>
struct BlockedWgradArgs {
  const T* x;         // blocked input at the first position's tap, input block 0
  int64_t x_block;    // elements between input channel blocks
  int64_t x_row;      // elements between consecutive rows' first positions
  const T* dy;        // blocked output gradient at the first position, first output channel
  int64_t dy_row;     // elements between rows
  int64_t rows, ow;   // positions: rows x ow
  T* acc;             // UR x NB x W
  bool first;
};

template <typename T>
using BlockedWgradFn = void (*)(const BlockedWgradArgs<T>& args);

template <typename T>
struct BlockedConvUkernel {
  static constexpr int kMaxUr = 14;
  static constexpr int kMaxNb = 4;
  static constexpr int nb_index(int nb) { return nb == 1 ? 0 : nb == 2 ? 1 : 2; }
  int w = 0;        // lanes W
  int max_acc = 0;  // NB x UR accumulators the tiling may use (at most the table's)
  // [NB 1, 2, 4][UR][stride 1, stride 2, narrow layout]: UR in 1..kMaxUr; null where NB x UR
  // exceeds the accumulators the table was built for (blocked_conv_kernels' MaxAcc).
  BlockedConvFn<T> tile[3][kMaxUr + 1][3] = {};
  // Layout changes: dst[i*W + c] = rows[c][i] (0 for a null row), i < n, c < W; and back,
  // rows[c][i] = src[i*lds + c] for c < count (lds = W for the blocked layout).
  void (*interleave)(const T* const* rows, int64_t n, T* dst) = nullptr;
  void (*deinterleave)(const T* src, int64_t lds, int64_t n, T* const* rows, int count) = nullptr;
  // deinterleave with whole aligned vectors stored non-temporally; store_fence after them
  // (before the rows are read).
  void (*deinterleave_stream)(const T* src, int64_t lds, int64_t n, T* const* rows, int count) = nullptr;
  void (*store_fence)() = nullptr;
  int wgrad_ur = 0;  // output channels per weight-gradient tile
  // [NB 1..3][stride 1, 2]
  BlockedWgradFn<T> wgrad[4][2] = {};
};

// Winograd F(m, 3) transforms on channel-blocked data (generic/winograd_ukernel.hpp), W lanes,
// each the same product in every lane; tiles of MH x MW outputs from AH x AW inputs (A = M + 2,
// or M = A = 1 along an axis whose kernel has one tap), xi = i * AW + j:
//   input:  v[xi*v_step + t*W + c] = (BT d_t B)[xi],  d_t[i][j] = x[i*ldx + (t*MW + j)*W + c]
//   output: y[i*ldy + (t*MW + j)*W + c] = store((AT m_t A)[i][j]),  m_t[xi] = m[xi*m_step + t*W + c]
//           (store: + bias[c] when st.bias is not null, then the clamp of st)
//   weight: u[xi*u_step + c] = (G g GT)[xi],  g[i][j] = w[(i*KW + j)*W + c]; with `stream`,
//           non-temporal stores (u aligned to the vector)
// for t < count tiles along a row.
template <typename T>
using WinogradInputFn = void (*)(const T* x, int64_t ldx, int64_t count, T* v, int64_t v_step);
template <typename T>
using WinogradOutputFn = void (*)(const T* m, int64_t m_step, int64_t count,
                                  const TileStore<T>& st, T* y, int64_t ldy);
template <typename T>
using WinogradWeightFn = void (*)(const T* w, T* u, int64_t u_step, bool stream);

template <typename T>
struct WinogradKernels {
  int w = 0;  // lanes W
  // [variant: F(2,3), F(4,3), F(6,3)][shape: MH = MW = m; along W (MH = 1); along H (MW = 1)]
  WinogradInputFn<T> input[3][3] = {};
  WinogradOutputFn<T> output[3][3] = {};
  WinogradWeightFn<T> weight[3][3] = {};
  // Orders the calling thread's non-temporal stores before its later stores (sfence; nothing
  // where the ISA has none): after streamed weight transforms, before other threads read them.
  void (*store_fence)() = nullptr;
};

// One axis of a batched FFT (generic/fft_ukernel.hpp; conv/fft_plan.hpp builds it): length
// n = radix[0] x ... x radix[stages-1], radices 2..5; stage s works on sub-transforms of length
// l_s = n / (radix[0] x ... x radix[s-1]) and multiplies by tw_u(j) = exp(-2 pi i j u / l_s),
// j < l_s / radix[s], 1 <= u < radix[s], stored at tw_re/tw_im + tw_offset[s] + j (radix[s] - 1)
// + u - 1.
// live: the forward transform's input is zero at and past element live (< n: a pruned first
// stage, Markel, "FFT pruning", 1971, that takes those elements as zeros without reading them).
template <typename T>
struct FftAxisView {
  int64_t n = 1;
  int64_t live = 1;
  int stages = 0;
  const int* radix = nullptr;
  const int64_t* tw_offset = nullptr;
  const T* tw_re = nullptr;
  const T* tw_im = nullptr;
};

// In place along the axis: element j of each transform is the nvec vectors (nvec x W values) at
// re + j*stride and im + j*stride, every lane its own transform. forward: X = P DFT(x), P the
// mixed-radix digit reversal of the radices; inverse: x = n DFT^-1(P^-1 X).
template <typename T>
using FftAxisFn = void (*)(T* re, T* im, int64_t stride, int64_t nvec, const FftAxisView<T>& ax,
                           bool inverse);
// Which operand of the FFT products is conjugated.
enum class FftConj { none, u, x };

// Frequency-domain products of FFT convolution, for k < rows and vector groups v < groups:
//   m[k*ldm + v*2W + (0: re, W: im) + lane] (+)= sum_{c < nc} u_kc x_cv   (+= with accumulate),
//   u_kc = ur[k*ldu + c] + i ui[k*ldu + c] (broadcast),
//   x_cv = x[c*ldx + v*2W + lane] + i x[c*ldx + v*2W + W + lane],
// with u_kc (FftConj::u) or x_cv (FftConj::x) conjugated.
template <typename T>
using FftProductFn = void (*)(int64_t rows, int64_t nc, const T* ur, const T* ui, int64_t ldu,
                              FftConj conj, const T* x, int64_t ldx, T* m, int64_t ldm,
                              int64_t groups, bool accumulate);
// Frequency-domain products of FFT convolution with the weights' spectra unsplit: x holds,
// per pair of input channels cp < ncp, X = FFT(w_c + i w_c+1) at k (x + cp*ldx) and at its
// mirror -k (x2 + cp*ldx), vector group v's real parts at + v*2W, imaginary parts ldi further;
// the rows hold the data's P = (Z_c + i Z_c+1) s at column 2cp and Q = (Z_c - i Z_c+1) s at
// 2cp + 1 (Z_c the input channel's spectrum, s a scale), so that (with A = 1 at k, 2 at -k)
//   mA[r*ldm + v*2W + (0: re, W: im) + lane] (+)= sum_cp P conj(X_A) + Q X_B   (B the other)
//   = s sum_c Z_c conj(FFT(w_c)) at that frequency (a correlation's channel sum),
// the rows' values at urA[r*ldu + col] + i uiA[r*ldu + col]. ur2 null: k is its own mirror
// (x2 = x), m only. Each X vector is loaded once for both frequencies.
template <typename T>
using FftPairProductFn = void (*)(int64_t rows, int64_t ncp, const T* ur, const T* ui, T* m,
                                  const T* ur2, const T* ui2, T* m2, int64_t ldu, const T* x,
                                  const T* x2, int64_t ldx, int64_t ldi, int64_t ldm,
                                  int64_t groups, bool accumulate);

// The spectra of two real kernels a, b transformed together as z = a + i b, for n slots s:
// from Z at position at[s] (zr, zi + at[s] W) and at its mirror -k (mirror[at[s]]), W lanes each,
// with d = a + s ld: for lanes l < na,
//   d[l] + i d[im + l] = scale conj(Z(k) + conj Z(-k))              (= 2 scale conj A(k)),
// and for l < nb, d[lb + l] + i d[lb + im + l] = 2 scale conj B(k)
//   = scale conj((Z(k) - conj Z(-k)) / i).
// stream: full vectors written with non-temporal stores (destinations vector-aligned).
template <typename T>
using FftSplitFn = void (*)(const T* zr, const T* zi, const int64_t* at, const int64_t* mirror,
                            int64_t n, T scale, T* a, int64_t ld, int64_t lb, int64_t im, int na,
                            int nb, bool stream);

// The product of a single channel pair: y[f*W + l] = (ur[f] + i ui[f]) x[f*W + l] for f < n,
// l < W, real and imaginary parts apart (xr, xi -> yr, yi).
template <typename T>
using FftMultiplyFn = void (*)(int64_t n, const T* ur, const T* ui, const T* xr, const T* xi,
                               T* yr, T* yi);

// Elementwise complex products: y[i] = (ur[i] + i ui[i]) x[i] for i < n W (re, im apart).
template <typename T>
using FftMultiplyEachFn = void (*)(int64_t n, const T* ur, const T* ui, const T* xr, const T* xi,
                                   T* yr, T* yi);

template <typename T>
struct FftKernels {
  int w = 0;  // lanes W
  FftAxisFn<T> axis = nullptr;
  FftProductFn<T> product = nullptr;
  FftPairProductFn<T> pair_product = nullptr;
  FftSplitFn<T> split = nullptr;
  FftMultiplyFn<T> multiply = nullptr;
  FftMultiplyEachFn<T> multiply_each = nullptr;
  void (*store_fence)() = nullptr;  // after streamed splits, before the spectra are read
};

template <typename T>
struct KernelSet {
  GemmUkernel<T> gemm;
  DirectRowUkernel<T> direct_row;
  BlockedConvUkernel<T> blocked;
  WinogradKernels<T> winograd;
  FftKernels<T> fft;
  PoolKernels<T> pool;
};

struct KernelTable {
  const char* isa = "";  // name used by FASTCONV_ISA and fastconv.info()
  KernelSet<float> f32;
  KernelSet<double> f64;
  // float32 FMA throughput probe (generic/peak_ukernel.hpp): FLOPs executed in `iters` rounds.
  double (*fma_probe)(int64_t iters, float* sink) = nullptr;
  // Vector FMAs of this ISA's width the core issues per cycle (dispatch.cpp, set before the
  // ISA fills the table): 2 for AVX-512 on Intel cores with two 512-bit FMA pipes, else 1. The
  // register tiles (kernels_avx512.cpp) and the cost models that rank algorithms against each
  // other (winograd_model.cpp, fft.cpp, registry.cpp) follow it.
  int fma_pipes = 1;

  template <typename T>
  const KernelSet<T>& get() const;
};

template <>
inline const KernelSet<float>& KernelTable::get<float>() const {
  return f32;
}
template <>
inline const KernelSet<double>& KernelTable::get<double>() const {
  return f64;
}

/// The table of the active ISA (see fastconv/runtime.hpp).
const KernelTable& active_kernels();

/// The table of an available ISA by name; throws InvalidArgument otherwise.
const KernelTable& kernels_for(const std::string& isa);

}  // namespace fastconv::kernels
