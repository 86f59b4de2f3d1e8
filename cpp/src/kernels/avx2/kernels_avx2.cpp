// kernels/avx2/kernels_avx2.cpp — AVX2+FMA instantiations of the generic float32
// microkernels (compiled with -mavx2 -mfma). GEMM tile 6 x 16: 12 accumulators of the 16 ymm
// registers. float64 stays on the portable kernels (filled in by dispatch.cpp).
#include "../generic/blocked_ukernel.hpp"
#include "../generic/direct_ukernel.hpp"
#include "../generic/fft_ukernel.hpp"
#include "../generic/gemm_ukernel.hpp"
#include "../generic/pack_ukernel.hpp"
#include "../generic/peak_ukernel.hpp"
#include "../generic/pool_ukernel.hpp"
#include "../generic/winograd_ukernel.hpp"
#include "../kernel_table.hpp"
#include "vec_avx2.hpp"

namespace fastconv::kernels::avx2 {

void fill_kernels(KernelTable& table) {
  table.isa = "avx2";
  table.f32.gemm = {6, 2 * VecF32::W, &gemm_ukernel<VecF32, 6, 2>,
                    &pack_runs<VecF32>, &VecF32::store_fence, VecF32::W, &pack_rows<VecF32>,
                    &gemm_ukernel_rows<VecF32, 6, 2>};
  table.f32.direct_row = direct_row_kernels<VecF32, false>();
  table.f32.blocked = blocked_conv_kernels<VecF32, 12>();
  table.f32.winograd = winograd_kernels<VecF32>();
  table.f32.fft = fft_kernels<VecF32>();
  table.f32.pool = {&pool_rows<VecF32, MaxOp<VecF32>>, &pool_rows<VecF32, SumOp<VecF32>>,
                     &pool_window<VecF32, MaxOp<VecF32>>, &pool_window<VecF32, SumOp<VecF32>>};
  table.fma_probe = &fma_probe<VecF32>;
}

}  // namespace fastconv::kernels::avx2
