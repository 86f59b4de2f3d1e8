// kernels/scalar/vec_scalar.hpp — the portable "vector" of W lanes as a plain array. Compiled
// without ISA flags, so it runs on any x86-64 (the compiler may still use SSE2).
#pragma once

namespace fastconv::kernels::scalar {

template <typename TT, int WW>
struct Vec {
  using T = TT;
  static constexpr int W = WW;
  struct R {
    T v[W];
  };
  static R zero() { return set1(T(0)); }
  static R set1(T x) {
    R r;
    for (int i = 0; i < W; ++i) r.v[i] = x;
    return r;
  }
  static R loadu(const T* p) {
    R r;
    for (int i = 0; i < W; ++i) r.v[i] = p[i];
    return r;
  }
  // Lanes p[0], p[2], ..., p[2W-2]; reads nothing past p[2W-2].
  static R load_even(const T* p) {
    R r;
    for (int i = 0; i < W; ++i) r.v[i] = p[2 * i];
    return r;
  }
  // Lanes p[0] .. p[n-1] (all W when n >= W), zero beyond; reads nothing past p[n-1].
  static R load_partial(const T* p, int n) {
    R r = zero();
    for (int i = 0; i < n && i < W; ++i) r.v[i] = p[i];
    return r;
  }
  // Lanes p[0], p[2], ..., p[2n-2] (n < W), zero beyond; reads nothing past p[2n-2].
  static R load_even_partial(const T* p, int n) {
    R r = zero();
    for (int i = 0; i < n; ++i) r.v[i] = p[2 * i];
    return r;
  }
  // Lanes p[0], p[step], ..., p[(W - 1) step]; the partial form lanes below n (zero beyond),
  // reading nothing past p[(n - 1) step].
  static R load_strided(const T* p, int step) { return load_strided_partial(p, step, W); }
  static R load_strided_partial(const T* p, int step, int n) {
    R r = zero();
    for (int i = 0; i < n && i < W; ++i) r.v[i] = p[static_cast<long>(i) * step];
    return r;
  }
  // Of the 2W lanes a0..a{W-1} b0..b{W-1}: the even ones, the odd ones, and a1..a{W-1} b0.
  static R even(const R& a, const R& b) { return pick(a, b, 0); }
  static R odd(const R& a, const R& b) { return pick(a, b, 1); }
  static R shift_in(const R& a, const R& b) {
    R r;
    for (int i = 0; i + 1 < W; ++i) r.v[i] = a.v[i + 1];
    r.v[W - 1] = b.v[0];
    return r;
  }
  static R pick(const R& a, const R& b, int first) {
    R r;
    for (int i = 0; i < W; ++i) {
      const int j = 2 * i + first;
      r.v[i] = j < W ? a.v[j] : b.v[j - W];
    }
    return r;
  }
  // Lanes 0 .. n-1 of a to p[0..n) (all W when n >= W); nothing else is written.
  static void store_partial(T* p, const R& a, int n) {
    for (int i = 0; i < n && i < W; ++i) p[i] = a.v[i];
  }
  static void storeu(T* p, const R& a) {
    for (int i = 0; i < W; ++i) p[i] = a.v[i];
  }
  static void stream(T* p, const R& a) { storeu(p, a); }  // no non-temporal form here
  static void store_fence() {}
  static R fmadd(const R& a, const R& b, const R& c) {
    R r;
    for (int i = 0; i < W; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i];
    return r;
  }
  static R fnmadd(const R& a, const R& b, const R& c) {  // c - a b
    R r;
    for (int i = 0; i < W; ++i) r.v[i] = c.v[i] - a.v[i] * b.v[i];
    return r;
  }
  // Maximum that propagates NaN from either operand.
  static R max(const R& a, const R& b) {
    R r;
    for (int i = 0; i < W; ++i) r.v[i] = (a.v[i] > b.v[i] || a.v[i] != a.v[i]) ? a.v[i] : b.v[i];
    return r;
  }
  // Minimum that propagates NaN from either operand.
  static R min(const R& a, const R& b) {
    R r;
    for (int i = 0; i < W; ++i) r.v[i] = (a.v[i] < b.v[i] || a.v[i] != a.v[i]) ? a.v[i] : b.v[i];
    return r;
  }
  static R mul(const R& a, const R& b) {
    R r;
    for (int i = 0; i < W; ++i) r.v[i] = a.v[i] * b.v[i];
    return r;
  }
  static R add(const R& a, const R& b) {
    R r;
    for (int i = 0; i < W; ++i) r.v[i] = a.v[i] + b.v[i];
    return r;
  }
  static R sub(const R& a, const R& b) {
    R r;
    for (int i = 0; i < W; ++i) r.v[i] = a.v[i] - b.v[i];
    return r;
  }
};

}  // namespace fastconv::kernels::scalar
