// kernels/avx512/kernels_avx512.cpp — AVX-512F instantiations of the generic float32
// microkernels (compiled with -mavx512f). The register tiles follow the core's 512-bit FMA pipes
// (table.fma_pipes, set by dispatch.cpp before this fills the table):
// - two pipes (Intel's server cores, the Xeon of shared/DESIGN.md): GEMM tile 12 x 32 and
//   blocked direct tiles of up to 28 accumulators (NB 2 x UR 14, 4 x 7) of the 32 zmm registers,
//   which ran faster there than 8 x 32 and 16 (through plans, interleaved processes: 1x1 layers
//   4-10 % on 2 threads, AlexNet's 11x11 / 4 1.2x, ResNet-50's 3x3 / 2 6-11 %);
// - one pipe (AMD's Zen 4): GEMM tile 8 x 32, blocked tiles of up to 16 accumulators, measured
//   6-12 % faster there than tiles of 28 (c37e265; with a tile kernel that then stored its
//   accumulators after every tap, which it no longer does: not re-measured).
// The table holds the blocked tiles up to 28 either way; max_acc caps the ones Tiling picks.
// float64 stays on the portable kernels (filled in by dispatch.cpp).
#include "../generic/blocked_ukernel.hpp"
#include "../generic/direct_ukernel.hpp"
#include "../generic/fft_ukernel.hpp"
#include "../generic/gemm_ukernel.hpp"
#include "../generic/pack_ukernel.hpp"
#include "../generic/peak_ukernel.hpp"
#include "../generic/pool_ukernel.hpp"
#include "../generic/winograd_ukernel.hpp"
#include "../kernel_table.hpp"
#include "vec_avx512.hpp"

namespace fastconv::kernels::avx512 {

void fill_kernels(KernelTable& table) {
  table.isa = "avx512";
  const bool two_pipes = table.fma_pipes >= 2;
  table.f32.gemm = {two_pipes ? 12 : 8, 2 * VecF32::W,
                    two_pipes ? &gemm_ukernel<VecF32, 12, 2> : &gemm_ukernel<VecF32, 8, 2>,
                    &pack_runs<VecF32>, &VecF32::store_fence, VecF32::W, &pack_rows<VecF32>,
                    two_pipes ? &gemm_ukernel_rows<VecF32, 12, 2>
                              : &gemm_ukernel_rows<VecF32, 8, 2>};
  // Depthwise 3x3 planes in strips: 32 registers hold a strip's 12 accumulators and 9 taps.
  // MobileNetV2's 144 x 56x56, 1 thread: 0.27 -> 0.20 ms, at stride 2 0.19 -> 0.14; with 16
  // registers (avx2, the same core) the stride-1 strips lose (0.28 -> 0.30 ms), and so do the
  // portable tables' (0.54 -> 0.79 ms float32, 0.82 -> 1.13 float64).
  table.f32.direct_row = direct_row_kernels<VecF32, true>();
  table.f32.blocked = blocked_conv_kernels<VecF32, 28>();
  if (!two_pipes) table.f32.blocked.max_acc = 16;
  table.f32.winograd = winograd_kernels<VecF32>();
  table.f32.fft = fft_kernels<VecF32>();
  table.f32.pool = {&pool_rows<VecF32, MaxOp<VecF32>>, &pool_rows<VecF32, SumOp<VecF32>>,
                     &pool_window<VecF32, MaxOp<VecF32>>, &pool_window<VecF32, SumOp<VecF32>>};
  table.fma_probe = &fma_probe<VecF32>;
}

}  // namespace fastconv::kernels::avx512
