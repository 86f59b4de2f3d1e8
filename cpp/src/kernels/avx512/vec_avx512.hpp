// kernels/avx512/vec_avx512.hpp — 16 x float in a __m512. Only included by files compiled with
// -mavx512f.
#pragma once

#include <immintrin.h>

namespace fastconv::kernels::avx512 {

struct VecF32 {
  using T = float;
  static constexpr int W = 16;
  using R = __m512;
  static R zero() { return _mm512_setzero_ps(); }
  static R set1(T x) { return _mm512_set1_ps(x); }
  static R loadu(const T* p) { return _mm512_loadu_ps(p); }
  static void storeu(T* p, R a) { _mm512_storeu_ps(p, a); }
  // Lanes p[0], p[2], ..., p[30]; the masked second load reads nothing past p[30].
  static R load_even(const T* p) {
    const R lo = _mm512_loadu_ps(p);
    const R hi = _mm512_maskz_loadu_ps(0x7FFF, p + 16);
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(lo, idx, hi);
  }
  static R fmadd(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R div(R a, R b) { return _mm512_div_ps(a, b); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  // Maximum that propagates NaN from either operand (maxps alone returns b when either is NaN).
  static R max(R a, R b) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), _mm512_max_ps(a, b), a);
  }
};

}  // namespace fastconv::kernels::avx512
