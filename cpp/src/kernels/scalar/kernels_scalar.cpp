// kernels/scalar/kernels_scalar.cpp — portable instantiations of the generic microkernels,
// float32 and float64. Compiled without ISA flags: the fallback on any x86-64 CPU, and the
// float64 kernels of every table.
#include "../generic/blocked_ukernel.hpp"
#include "../generic/direct_ukernel.hpp"
#include "../generic/fft_ukernel.hpp"
#include "../generic/gemm_ukernel.hpp"
#include "../generic/pack_ukernel.hpp"
#include "../generic/peak_ukernel.hpp"
#include "../generic/pool_ukernel.hpp"
#include "../generic/winograd_ukernel.hpp"
#include "../kernel_table.hpp"
#include "vec_scalar.hpp"

namespace fastconv::kernels::scalar {

void fill_kernels(KernelTable& table) {
  using F = Vec<float, 4>;
  using D = Vec<double, 4>;
  table.isa = "scalar";
  table.f32.gemm = {4, 2 * F::W, &gemm_ukernel<F, 4, 2>, &pack_runs<F>, &F::store_fence,
                    F::W, &pack_rows<F>, &gemm_ukernel_rows<F, 4, 2>};
  table.f32.direct_row = direct_row_kernels<F, false>();
  table.f64.gemm = {4, 2 * D::W, &gemm_ukernel<D, 4, 2>, &pack_runs<D>, &D::store_fence,
                    D::W, &pack_rows<D>, &gemm_ukernel_rows<D, 4, 2>};
  table.f64.direct_row = direct_row_kernels<D, false>();
  table.f32.blocked = blocked_conv_kernels<F, 8>();
  table.f64.blocked = blocked_conv_kernels<D, 8>();
  table.f32.winograd = winograd_kernels<F>();
  table.f32.fft = fft_kernels<F>();
  table.f64.winograd = winograd_kernels<D>();
  table.f64.fft = fft_kernels<D>();
  table.f32.pool = {&pool_rows<F, MaxOp<F>>, &pool_rows<F, SumOp<F>>,
                     &pool_window<F, MaxOp<F>>, &pool_window<F, SumOp<F>>};
  table.f64.pool = {&pool_rows<D, MaxOp<D>>, &pool_rows<D, SumOp<D>>,
                     &pool_window<D, MaxOp<D>>, &pool_window<D, SumOp<D>>};
  table.fma_probe = &fma_probe<F>;
}

}  // namespace fastconv::kernels::scalar
