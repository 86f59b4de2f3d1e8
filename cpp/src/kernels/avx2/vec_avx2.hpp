// kernels/avx2/vec_avx2.hpp — 8 x float in a __m256, with FMA. Only included by files compiled
// with -mavx2 -mfma.
#pragma once

#include <immintrin.h>

namespace fastconv::kernels::avx2 {

struct VecF32 {
  using T = float;
  static constexpr int W = 8;
  using R = __m256;
  static R zero() { return _mm256_setzero_ps(); }
  static R set1(T x) { return _mm256_set1_ps(x); }
  static R loadu(const T* p) { return _mm256_loadu_ps(p); }
  static void storeu(T* p, R a) { _mm256_storeu_ps(p, a); }
  static R fmadd(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  // Maximum that propagates NaN from either operand (maxps alone returns b when either is NaN).
  static R max(R a, R b) {
    return _mm256_blendv_ps(_mm256_max_ps(a, b), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
  }
};

}  // namespace fastconv::kernels::avx2
