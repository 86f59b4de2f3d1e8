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
  // A non-temporal store (p aligned to the vector): bypasses the caches, no read for ownership.
  static void stream(T* p, R a) { _mm256_stream_ps(p, a); }
  static void store_fence() { _mm_sfence(); }  // orders the stream() stores before later ones
  // Lanes 0 .. n-1 of a to p[0..n) (all 8 when n >= 8); nothing else is written.
  static void store_partial(T* p, R a, int n) { _mm256_maskstore_ps(p, first(n), a); }
  // Lanes below n set (n <= 0: none, n >= 8: all), as a maskload mask.
  static __m256i first(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  // Lanes p[0] .. p[n-1] (all 8 when n >= 8), zero beyond; masked, so nothing past p[n-1] is read.
  static R load_partial(const T* p, int n) { return _mm256_maskload_ps(p, first(n)); }
  // Lanes p[0], p[2], ..., p[2n-2] (n < 8), zero beyond; reads nothing past p[2n-2].
  static R load_even_partial(const T* p, int n) {
    return even(_mm256_maskload_ps(p, first(2 * n - 1)), _mm256_maskload_ps(p + 8, first(2 * n - 9)));
  }
  // Lanes p[0], p[2], ..., p[14]; the masked second load reads nothing past p[14].
  static R load_even(const T* p) {
    return even(_mm256_loadu_ps(p), _mm256_maskload_ps(p + 8, first(7)));
  }
  // Lanes p[0], p[step], ..., p[7 step] by one gather (0 < 7 step * 4 < 2^31); the partial
  // form gathers lanes below n only (zero beyond), reading nothing past p[(n - 1) step].
  static __m256i strided_index(int step) {
    return _mm256_mullo_epi32(_mm256_set1_epi32(step), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static R load_strided(const T* p, int step) { return _mm256_i32gather_ps(p, strided_index(step), 4); }
  static R load_strided_partial(const T* p, int step, int n) {
    return _mm256_mask_i32gather_ps(zero(), p, strided_index(step), _mm256_castsi256_ps(first(n)), 4);
  }
  // Of the 16 lanes a0..a7 b0..b7: the even ones, the odd ones, and a1..a7 b0. The in-lane
  // shuffle gives a0 a2 b0 b2 | a4 a6 b4 b6; the 64-bit permute puts the pairs in order.
  static R even(R a, R b) { return in_order(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))); }
  static R odd(R a, R b) { return in_order(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))); }
  static R shift_in(R a, R b) {
    const R rotated = _mm256_permutevar8x32_ps(a, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0));
    return _mm256_blend_ps(rotated, _mm256_broadcastss_ps(_mm256_castps256_ps128(b)), 0x80);
  }
  static R in_order(R pairs) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(pairs), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  static R fmadd(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R fnmadd(R a, R b, R c) { return _mm256_fnmadd_ps(a, b, c); }  // c - a b
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  // Maximum / minimum that propagate NaN from either operand (maxps alone returns b when either
  // is NaN).
  static R max(R a, R b) {
    return _mm256_blendv_ps(_mm256_max_ps(a, b), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
  }
  static R min(R a, R b) {
    return _mm256_blendv_ps(_mm256_min_ps(a, b), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
  }
};

}  // namespace fastconv::kernels::avx2
