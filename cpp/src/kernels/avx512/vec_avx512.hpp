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
  // A non-temporal store (p aligned to the vector): bypasses the caches, no read for ownership.
  static void stream(T* p, R a) { _mm512_stream_ps(p, a); }
  static void store_fence() { _mm_sfence(); }  // orders the stream() stores before later ones
  // Lanes 0 .. n-1 of a to p[0..n) (all 16 when n >= 16); nothing else is written.
  static void store_partial(T* p, R a, int n) { _mm512_mask_storeu_ps(p, first(n), a); }
  // Mask of the lanes below n (n <= 0: none, n >= 16: all).
  static __mmask16 first(int n) {
    return n <= 0 ? 0 : n >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1);
  }
  // Lanes p[0] .. p[n-1] (all 16 when n >= 16), zero beyond; masked, so nothing past p[n-1] is read.
  static R load_partial(const T* p, int n) { return _mm512_maskz_loadu_ps(first(n), p); }
  // The lanes lo .. hi-1 (0 <= lo <= hi <= 16), and a load of a mask's lanes: p[i] in lane i
  // where the mask has it, zero elsewhere; masked, so only those elements are read (p itself
  // may lie before the data). For the depthwise strips (direct_ukernel.hpp's
  // depthwise_plane_3x3), which only this table enables; a mask is made once per strip.
  using Lanes = __mmask16;
  static Lanes lanes_between(int lo, int hi) {
    return static_cast<__mmask16>(first(hi) & ~first(lo));
  }
  static R load_lanes(const T* p, Lanes m) { return _mm512_maskz_loadu_ps(m, p); }
  // Lanes p[0], p[2], ..., p[2n-2] (n < 16), zero beyond; reads nothing past p[2n-2].
  static R load_even_partial(const T* p, int n) {
    return even(_mm512_maskz_loadu_ps(first(2 * n - 1), p),
                _mm512_maskz_loadu_ps(first(2 * n - 17), p + 16));
  }
  // Lanes p[0], p[2], ..., p[30]; the masked second load reads nothing past p[30].
  static R load_even(const T* p) {
    return even(_mm512_loadu_ps(p), _mm512_maskz_loadu_ps(0x7FFF, p + 16));
  }
  // Lanes p[0], p[step], ..., p[15 step] by one gather (0 < 15 step * 4 < 2^31); the partial
  // form gathers lanes below n only (zero beyond), reading nothing past p[(n - 1) step].
  static __m512i strided_index(int step) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm512_mullo_epi32(_mm512_set1_epi32(step), lane);
  }
  static R load_strided(const T* p, int step) {  // (the masked form: see max)
    return _mm512_mask_i32gather_ps(zero(), 0xFFFF, strided_index(step), p, 4);
  }
  static R load_strided_partial(const T* p, int step, int n) {
    return _mm512_mask_i32gather_ps(zero(), first(n), strided_index(step), p, 4);
  }
  // Of the 32 lanes a0..a15 b0..b15: the even ones, the odd ones, and a1..a15 b0.
  static R even(R a, R b) {
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(a, idx, b);
  }
  static R odd(R a, R b) {
    const __m512i idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return _mm512_permutex2var_ps(a, idx, b);
  }
  static R shift_in(R a, R b) {  // (the maskz form: see max)
    return _mm512_castsi512_ps(
        _mm512_maskz_alignr_epi32(0xFFFF, _mm512_castps_si512(b), _mm512_castps_si512(a), 1));
  }
  static R fmadd(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R fnmadd(R a, R b, R c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a b
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  // Maximum / minimum that propagate NaN from either operand: max(a, b) where a is a number (maxps
  // returns b, NaN or not, when either is NaN), a itself where a is NaN. (Masked forms with a
  // defined source: GCC 12 warns about the undefined one of the unmasked intrinsics.)
  static R max(R a, R b) { return _mm512_mask_max_ps(a, _mm512_cmp_ps_mask(a, a, _CMP_ORD_Q), a, b); }
  static R min(R a, R b) { return _mm512_mask_min_ps(a, _mm512_cmp_ps_mask(a, a, _CMP_ORD_Q), a, b); }
};

}  // namespace fastconv::kernels::avx512
