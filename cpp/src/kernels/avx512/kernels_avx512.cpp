// kernels/avx512/kernels_avx512.cpp — AVX-512F instantiations of the generic float32
// microkernels (compiled with -mavx512f). GEMM tile 12 x 32 and blocked direct tiles of up to
// 28 accumulators (NB 2 x UR 14, 4 x 7) of the 32 zmm registers: on the Intel Xeon of
// shared/DESIGN.md (two 512-bit FMA pipes) they ran faster than 8 x 32 and 16 (through plans,
// interleaved processes: 1x1 layers 4-10 % on 2 threads, AlexNet's 11x11 / 4 1.2x, ResNet-50's
// 3x3 / 2 6-11 %). On an AMD EPYC (c37e265) tiles of 28 had measured 6-12 % slower than 16, but
// with a tile kernel that stored its accumulators to the stack after every tap, which it no
// longer does; not re-measured there. float64 stays on the portable kernels (dispatch.cpp).
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
  table.f32.gemm = {12, 2 * VecF32::W, &gemm_ukernel<VecF32, 12, 2>,
                    &pack_runs<VecF32>, &VecF32::store_fence, VecF32::W, &pack_rows<VecF32>};
  table.f32.direct_row = {4, &direct_row_ukernel<VecF32, 4>, &direct_row_ukernel<VecF32, 1>,
                       &direct_row_bwd_data<VecF32>, &direct_row_bwd_weights<VecF32>,
                       &depthwise_plane<VecF32>};
  table.f32.direct_row.depthwise_blocked = &depthwise_blocked<VecF32>;
  table.f32.direct_row.w = VecF32::W;
  table.f32.blocked = blocked_conv_kernels<VecF32, 28>();
  table.f32.winograd = winograd_kernels<VecF32>();
  table.f32.fft = fft_kernels<VecF32>();
  table.f32.pool = {&pool_rows<VecF32, MaxOp<VecF32>>, &pool_rows<VecF32, SumOp<VecF32>>,
                     &pool_window<VecF32, MaxOp<VecF32>>, &pool_window<VecF32, SumOp<VecF32>>};
  table.fma_probe = &fma_probe<VecF32>;
}

}  // namespace fastconv::kernels::avx512
