// kernels/generic/fft_ukernel.hpp — batched complex FFT stages and the frequency-domain products
// of FFT convolution, written once over a vector wrapper V (vec_<isa>.hpp).
//
// FFT: in-place mixed-radix (2, 3, 4, 5) Cooley-Tukey on split complex data whose every element
// is `nvec` whole vectors — independent transforms in the lanes (tiles of a convolution), so a
// butterfly is the scalar butterfly applied lane-wise, with no shuffles (the "SIMD across
// transforms" scheme of FFTW's vector codelets, Frigo & Johnson, Proc. IEEE 93(2), 2005).
// Forward is decimation in frequency (Gentleman & Sande, 1966) and leaves the spectrum in
// mixed-radix digit-reversed order; the inverse is decimation in time and takes that order
// back, so a convolution (pointwise products between the two) never reorders anything. The
// inverse is unnormalised: inverse(forward(x)) = n x.
//
// Products: per frequency, M[k][v] = sum_c U[k][c] X[c][v] with U a broadcast complex matrix
// and X, M complex vector groups (the convolution's channel reduction); for a single channel
// pair, per-frequency (multiply) or per-element (multiply_each) complex products. split
// separates the spectra of two real kernels transformed together; pair products take them
// apart inside the reduction instead (over pairs of channels, at a frequency and its mirror).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "unroll.hpp"

namespace fastconv::kernels {

namespace fft {

template <typename V>
struct Cx {
  typename V::R re, im;
};

template <typename V>
inline Cx<V> add(const Cx<V>& a, const Cx<V>& b) { return {V::add(a.re, b.re), V::add(a.im, b.im)}; }
template <typename V>
inline Cx<V> sub(const Cx<V>& a, const Cx<V>& b) { return {V::sub(a.re, b.re), V::sub(a.im, b.im)}; }
// a * (wr + i wi)
template <typename V>
inline Cx<V> mul(const Cx<V>& a, typename V::T wr, typename V::T wi) {
  const auto r = V::set1(wr), i = V::set1(wi);
  return {V::sub(V::mul(a.re, r), V::mul(a.im, i)), V::fmadd(a.re, i, V::mul(a.im, r))};
}
// -i * a (forward) or +i * a (inverse)
template <typename V, bool Inverse>
inline Cx<V> rot(const Cx<V>& a) {
  if constexpr (Inverse) return {V::sub(V::zero(), a.im), a.re};
  else return {a.im, V::sub(V::zero(), a.re)};
}

// y_u = sum_t x_t exp(-+2 pi i t u / R) for u < R (sign: + for the inverse).
template <typename V, int R, bool Inverse>
inline void butterfly(Cx<V>* x) {
  using T = typename V::T;
  if constexpr (R == 2) {
    const Cx<V> a = x[0], b = x[1];
    x[0] = add<V>(a, b);
    x[1] = sub<V>(a, b);
  } else if constexpr (R == 4) {
    const Cx<V> s02 = add<V>(x[0], x[2]), d02 = sub<V>(x[0], x[2]);
    const Cx<V> s13 = add<V>(x[1], x[3]), d13 = rot<V, Inverse>(sub<V>(x[1], x[3]));
    x[0] = add<V>(s02, s13);
    x[2] = sub<V>(s02, s13);
    x[1] = add<V>(d02, d13);
    x[3] = sub<V>(d02, d13);
  } else if constexpr (R == 3) {
    const auto c = V::set1(T(-0.5));
    const auto s = V::set1(T(0.86602540378443864676));  // sin(2 pi / 3)
    const Cx<V> a = add<V>(x[1], x[2]);
    const Cx<V> t1 = {V::fmadd(c, a.re, x[0].re), V::fmadd(c, a.im, x[0].im)};
    const Cx<V> d = rot<V, Inverse>(sub<V>(x[1], x[2]));
    const Cx<V> t2 = {V::mul(s, d.re), V::mul(s, d.im)};
    x[0] = add<V>(x[0], a);
    x[1] = add<V>(t1, t2);
    x[2] = sub<V>(t1, t2);
  } else {
    static_assert(R == 5, "radix 2, 3, 4 or 5");
    const auto c1 = V::set1(T(0.30901699437494742410));   // cos(2 pi / 5)
    const auto c2 = V::set1(T(-0.80901699437494742410));  // cos(4 pi / 5)
    const auto s1 = V::set1(T(0.95105651629515357212));   // sin(2 pi / 5)
    const auto s2 = V::set1(T(0.58778525229247312917));   // sin(4 pi / 5)
    const Cx<V> a1 = add<V>(x[1], x[4]), a2 = add<V>(x[2], x[3]);
    const Cx<V> b1 = sub<V>(x[1], x[4]), b2 = sub<V>(x[2], x[3]);
    const Cx<V> t1 = {V::fmadd(c2, a2.re, V::fmadd(c1, a1.re, x[0].re)),
                      V::fmadd(c2, a2.im, V::fmadd(c1, a1.im, x[0].im))};
    const Cx<V> t2 = {V::fmadd(c1, a2.re, V::fmadd(c2, a1.re, x[0].re)),
                      V::fmadd(c1, a2.im, V::fmadd(c2, a1.im, x[0].im))};
    const Cx<V> u1 = rot<V, Inverse>(
        {V::fmadd(s2, b2.re, V::mul(s1, b1.re)), V::fmadd(s2, b2.im, V::mul(s1, b1.im))});
    const Cx<V> u2 = rot<V, Inverse>(
        {V::sub(V::mul(s2, b1.re), V::mul(s1, b2.re)), V::sub(V::mul(s2, b1.im), V::mul(s1, b2.im))});
    x[0] = add<V>(x[0], add<V>(a1, a2));
    x[1] = add<V>(t1, u1);
    x[4] = sub<V>(t1, u1);
    x[2] = add<V>(t2, u2);
    x[3] = sub<V>(t2, u2);
  }
}

// One stage on the sub-transforms of length l = R q: forward, for each j < q,
//   (y_u)_u = DFT_R (x[j + t q])_t,  x[j + u q] = y_u * tw_u(j);
// inverse, the exact reverse with conjugate factors. tw(j) holds tw_1 .. tw_{R-1} at
// tw_re/tw_im + j (R - 1). The forward's first stage (l = n) takes the elements at and past
// live as zeros without reading them (the same values, so the same bits as zeros in memory).
template <typename V, int R, bool Inverse>
void stage(typename V::T* re, typename V::T* im, int64_t n, int64_t l, int64_t stride,
           int64_t nvec, const typename V::T* tw_re, const typename V::T* tw_im, int64_t live) {
  using T = typename V::T;
  constexpr int W = V::W;
  const int64_t q = l / R;
  for (int64_t base = 0; base < n; base += l)
    for (int64_t j = 0; j < q; ++j) {
      // Inputs x[j + t q] read: t < nt (all when not pruned).
      const int nt = live >= n ? R
                     : j >= live ? 0
                                 : static_cast<int>(std::min<int64_t>(R, (live - j + q - 1) / q));
      T wr[R], wi[R];
      for (int u = 1; u < R; ++u) {
        wr[u] = tw_re[j * (R - 1) + u - 1];
        wi[u] = Inverse ? -tw_im[j * (R - 1) + u - 1] : tw_im[j * (R - 1) + u - 1];
      }
      T* pr = re + (base + j) * stride;
      T* pi = im + (base + j) * stride;
      for (int64_t v = 0; v < nvec * W; v += W) {
        Cx<V> x[R];
        for (int t = 0; t < R; ++t)
          x[t] = t < nt ? Cx<V>{V::loadu(pr + t * q * stride + v),
                                V::loadu(pi + t * q * stride + v)}
                        : Cx<V>{V::zero(), V::zero()};
        if constexpr (Inverse) {
          if (j != 0)
            for (int u = 1; u < R; ++u) x[u] = mul<V>(x[u], wr[u], wi[u]);
          butterfly<V, R, true>(x);
        } else {
          butterfly<V, R, false>(x);
          if (j != 0)
            for (int u = 1; u < R; ++u) x[u] = mul<V>(x[u], wr[u], wi[u]);
        }
        for (int t = 0; t < R; ++t) {
          V::storeu(pr + t * q * stride + v, x[t].re);
          V::storeu(pi + t * q * stride + v, x[t].im);
        }
      }
    }
}

template <typename V, bool Inverse>
void run_stage(int radix, typename V::T* re, typename V::T* im, int64_t n, int64_t l,
               int64_t stride, int64_t nvec, const typename V::T* tw_re, const typename V::T* tw_im,
               int64_t live) {
  switch (radix) {
    case 2: stage<V, 2, Inverse>(re, im, n, l, stride, nvec, tw_re, tw_im, live); break;
    case 3: stage<V, 3, Inverse>(re, im, n, l, stride, nvec, tw_re, tw_im, live); break;
    case 4: stage<V, 4, Inverse>(re, im, n, l, stride, nvec, tw_re, tw_im, live); break;
    default: stage<V, 5, Inverse>(re, im, n, l, stride, nvec, tw_re, tw_im, live); break;
  }
}

}  // namespace fft

// The transform of FftAxisFn (kernel_table.hpp) along one axis.
template <typename V>
void fft_axis(typename V::T* re, typename V::T* im, int64_t stride, int64_t nvec,
              const FftAxisView<typename V::T>& ax, bool inverse) {
  if (!inverse) {
    int64_t l = ax.n;
    for (int s = 0; s < ax.stages; l /= ax.radix[s], ++s)
      fft::run_stage<V, false>(ax.radix[s], re, im, ax.n, l, stride, nvec,
                               ax.tw_re + ax.tw_offset[s], ax.tw_im + ax.tw_offset[s],
                               s == 0 ? ax.live : ax.n);
  } else {
    int64_t l = 1;
    for (int s = ax.stages - 1; s >= 0; --s) {
      l *= ax.radix[s];
      fft::run_stage<V, true>(ax.radix[s], re, im, ax.n, l, stride, nvec,
                              ax.tw_re + ax.tw_offset[s], ax.tw_im + ax.tw_offset[s], ax.n);
    }
  }
}

namespace fft {

// a += u x lane-wise, u = br + i bi broadcast, x = xr + i xi, with the conjugation Cj:
//   (ur + i su ui)(xr + i sx xi) = ur xr - su sx ui xi + i (su ui xr + sx ur xi),
// su = -1 when u is conjugated, sx = -1 when x is (the signs go into the FMAs, not the data).
template <typename V, FftConj Cj>
inline void cmadd(typename V::R& ar, typename V::R& ai, typename V::R br, typename V::R bi,
                  typename V::R xr, typename V::R xi) {
  const auto sr = V::fmadd(br, xr, ar);
  ar = Cj == FftConj::none ? V::fnmadd(bi, xi, sr) : V::fmadd(bi, xi, sr);
  const auto si = Cj == FftConj::x ? V::fnmadd(br, xi, ai) : V::fmadd(br, xi, ai);
  ai = Cj == FftConj::u ? V::fnmadd(bi, xr, si) : V::fmadd(bi, xr, si);
}

// MR rows of FftProductFn over NG vector groups at x + g*2W, with the conjugation Cj.
template <typename V, int MR, int NG, FftConj Cj>
inline void product_tile(int64_t nc, const typename V::T* ur, const typename V::T* ui, int64_t ldu,
                         const typename V::T* x, int64_t ldx, typename V::T* m, int64_t ldm,
                         bool accumulate) {
  using R = typename V::R;
  constexpr int W = V::W;
  R ar[MR][NG], ai[MR][NG];
  FASTCONV_UNROLL
  for (int i = 0; i < MR; ++i)
    FASTCONV_UNROLL
    for (int g = 0; g < NG; ++g) {
      ar[i][g] = accumulate ? V::loadu(m + i * ldm + g * 2 * W) : V::zero();
      ai[i][g] = accumulate ? V::loadu(m + i * ldm + g * 2 * W + W) : V::zero();
    }
  for (int64_t c = 0; c < nc; ++c, x += ldx) {
    R xr[NG], xi[NG];
    for (int g = 0; g < NG; ++g) {
      xr[g] = V::loadu(x + g * 2 * W);
      xi[g] = V::loadu(x + g * 2 * W + W);
    }
    for (int i = 0; i < MR; ++i) {
      const R br = V::set1(ur[i * ldu + c]);
      const R bi = V::set1(ui[i * ldu + c]);
      for (int g = 0; g < NG; ++g) cmadd<V, Cj>(ar[i][g], ai[i][g], br, bi, xr[g], xi[g]);
    }
  }
  FASTCONV_UNROLL
  for (int i = 0; i < MR; ++i)
    FASTCONV_UNROLL
    for (int g = 0; g < NG; ++g) {
      V::storeu(m + i * ldm + g * 2 * W, ar[i][g]);
      V::storeu(m + i * ldm + g * 2 * W + W, ai[i][g]);
    }
}

// Rows in blocks of 4 (8 with a single vector group, whose tile would otherwise leave most
// registers idle), then 2 and 1, vector groups in pairs.
template <typename V, FftConj Cj>
void product(int64_t rows, int64_t nc, const typename V::T* ur, const typename V::T* ui,
             int64_t ldu, const typename V::T* x, int64_t ldx, typename V::T* m, int64_t ldm,
             int64_t groups, bool accumulate) {
  constexpr int W = V::W;
  const auto rows_of = [&](auto mr, int64_t k) {
    constexpr int MR = decltype(mr)::value;
    int64_t g = 0;
    for (; g + 2 <= groups; g += 2)
      product_tile<V, MR, 2, Cj>(nc, ur + k * ldu, ui + k * ldu, ldu, x + g * 2 * W, ldx,
                                 m + k * ldm + g * 2 * W, ldm, accumulate);
    if (g < groups)
      product_tile<V, MR, 1, Cj>(nc, ur + k * ldu, ui + k * ldu, ldu, x + g * 2 * W, ldx,
                                 m + k * ldm + g * 2 * W, ldm, accumulate);
  };
  int64_t k = 0;
  if (groups == 1)
    for (; k + 8 <= rows; k += 8) rows_of(std::integral_constant<int, 8>(), k);
  for (; k + 4 <= rows; k += 4) rows_of(std::integral_constant<int, 4>(), k);
  for (; k + 2 <= rows; k += 2) rows_of(std::integral_constant<int, 2>(), k);
  for (; k < rows; ++k) rows_of(std::integral_constant<int, 1>(), k);
}

// The rows of one frequency in a product of channel pairs: broadcast values (ur, ui; row k at
// k*ldu) and products (m; row k at k*ldm).
template <typename T>
struct PairRows {
  const T* ur;
  const T* ui;
  T* m;
};

// MR rows of FftPairProductFn over NG vector groups (x + g*2W, imaginary parts ldi further),
// at NF = 2 mirrored frequencies (rows a at k with x, rows b at -k with x2) or NF = 1 (k its
// own mirror: x2 = x), every x vector loaded once for all NF MR rows.
template <typename V, int MR, int NG, int NF>
inline void pair_product_tile(int64_t ncp, PairRows<typename V::T> a, PairRows<typename V::T> b,
                              int64_t ldu, const typename V::T* x, const typename V::T* x2,
                              int64_t ldx, int64_t ldi, int64_t ldm, bool accumulate) {
  using R = typename V::R;
  constexpr int W = V::W;
  const PairRows<typename V::T> rows[2] = {a, b};
  R ar[NF][MR][NG], ai[NF][MR][NG];
  // f(the products' real parts in m, imaginary W further; their accumulators) for each.
  const auto each = [&](auto&& f) {
    FASTCONV_UNROLL
    for (int h = 0; h < NF; ++h)
      FASTCONV_UNROLL
      for (int i = 0; i < MR; ++i)
        FASTCONV_UNROLL
        for (int g = 0; g < NG; ++g) f(rows[h].m + i * ldm + g * 2 * W, ar[h][i][g], ai[h][i][g]);
  };
  each([&](typename V::T* m, R& r, R& j) {
    r = accumulate ? V::loadu(m) : V::zero();
    j = accumulate ? V::loadu(m + W) : V::zero();
  });
  for (int64_t cp = 0; cp < ncp; ++cp, x += ldx, x2 += ldx) {
    R xr[2][NG], xi[2][NG];  // X(k), X(-k)
    for (int g = 0; g < NG; ++g) {
      xr[0][g] = V::loadu(x + g * 2 * W);
      xi[0][g] = V::loadu(x + g * 2 * W + ldi);
      xr[1][g] = NF == 2 ? V::loadu(x2 + g * 2 * W) : xr[0][g];
      xi[1][g] = NF == 2 ? V::loadu(x2 + g * 2 * W + ldi) : xi[0][g];
    }
    for (int h = 0; h < NF; ++h)
      for (int i = 0; i < MR; ++i) {
        const typename V::T* ur = rows[h].ur + i * ldu + 2 * cp;
        const typename V::T* ui = rows[h].ui + i * ldu + 2 * cp;
        const R pr = V::set1(ur[0]), pi = V::set1(ui[0]);
        const R qr = V::set1(ur[1]), qi = V::set1(ui[1]);
        for (int g = 0; g < NG; ++g) {
          cmadd<V, FftConj::x>(ar[h][i][g], ai[h][i][g], pr, pi, xr[h][g], xi[h][g]);
          cmadd<V, FftConj::none>(ar[h][i][g], ai[h][i][g], qr, qi, xr[1 - h][g], xi[1 - h][g]);
        }
      }
  }
  each([&](typename V::T* m, const R& r, const R& j) {
    V::storeu(m, r);
    V::storeu(m + W, j);
  });
}

// Rows in blocks of 8 / NF with a single vector group, then 2 and 1; vector groups in pairs.
template <typename V, int NF>
void pair_product(int64_t rows, int64_t ncp, PairRows<typename V::T> a, PairRows<typename V::T> b,
                  int64_t ldu, const typename V::T* x, const typename V::T* x2, int64_t ldx,
                  int64_t ldi, int64_t ldm, int64_t groups, bool accumulate) {
  using T = typename V::T;
  constexpr int W = V::W;
  const auto rows_of = [&](auto mr, int64_t k) {
    constexpr int MR = decltype(mr)::value;
    const auto at = [&](const PairRows<T>& r, int64_t g) {
      return PairRows<T>{r.ur + k * ldu, r.ui + k * ldu, r.m + k * ldm + g * 2 * W};
    };
    int64_t g = 0;
    for (; g + 2 <= groups; g += 2)
      pair_product_tile<V, MR, 2, NF>(ncp, at(a, g), at(b, g), ldu, x + g * 2 * W, x2 + g * 2 * W,
                                      ldx, ldi, ldm, accumulate);
    if (g < groups)
      pair_product_tile<V, MR, 1, NF>(ncp, at(a, g), at(b, g), ldu, x + g * 2 * W, x2 + g * 2 * W,
                                      ldx, ldi, ldm, accumulate);
  };
  int64_t k = 0;
  if (groups == 1)
    for (; k + 8 / NF <= rows; k += 8 / NF) rows_of(std::integral_constant<int, 8 / NF>(), k);
  for (; k + 2 <= rows; k += 2) rows_of(std::integral_constant<int, 2>(), k);
  for (; k < rows; ++k) rows_of(std::integral_constant<int, 1>(), k);
}

}  // namespace fft

// FftProductFn (kernel_table.hpp).
template <typename V>
void fft_product(int64_t rows, int64_t nc, const typename V::T* ur, const typename V::T* ui,
                 int64_t ldu, FftConj conj, const typename V::T* x, int64_t ldx, typename V::T* m,
                 int64_t ldm, int64_t groups, bool accumulate) {
  switch (conj) {
    case FftConj::none:
      return fft::product<V, FftConj::none>(rows, nc, ur, ui, ldu, x, ldx, m, ldm, groups, accumulate);
    case FftConj::u:
      return fft::product<V, FftConj::u>(rows, nc, ur, ui, ldu, x, ldx, m, ldm, groups, accumulate);
    case FftConj::x:
      return fft::product<V, FftConj::x>(rows, nc, ur, ui, ldu, x, ldx, m, ldm, groups, accumulate);
  }
}

// FftPairProductFn (kernel_table.hpp).
template <typename V>
void fft_pair_product(int64_t rows, int64_t ncp, const typename V::T* ur, const typename V::T* ui,
                      typename V::T* m, const typename V::T* ur2, const typename V::T* ui2,
                      typename V::T* m2, int64_t ldu, const typename V::T* x,
                      const typename V::T* x2, int64_t ldx, int64_t ldi, int64_t ldm,
                      int64_t groups, bool accumulate) {
  if (!ur2)
    return fft::pair_product<V, 1>(rows, ncp, {ur, ui, m}, {ur, ui, m}, ldu, x, x, ldx, ldi, ldm,
                                   groups, accumulate);
  fft::pair_product<V, 2>(rows, ncp, {ur, ui, m}, {ur2, ui2, m2}, ldu, x, x2, ldx, ldi, ldm,
                          groups, accumulate);
}

// FftSplitFn (kernel_table.hpp): the two real kernels of a lane from z = a + i b at the
// positions of k and -k, conjugated and scaled, slot after slot.
template <typename V>
void fft_split(const typename V::T* zr, const typename V::T* zi, const int64_t* at,
               const int64_t* mirror, int64_t n, typename V::T scale, typename V::T* a,
               int64_t ld, int64_t lb, int64_t im, int na, int nb, bool stream) {
  using R = typename V::R;
  constexpr int W = V::W;
  const R s = V::set1(scale);
  const int count[4] = {na, na, nb, nb};
  const int64_t offset[4] = {0, im, lb, lb + im};
  for (int64_t slot = 0; slot < n; ++slot, a += ld) {
    const int64_t p = at[slot] * W, m = mirror[at[slot]] * W;
    const R fr = V::loadu(zr + p), fi = V::loadu(zi + p), gr = V::loadu(zr + m), gi = V::loadu(zi + m);
    const R out[4] = {V::mul(V::add(fr, gr), s), V::mul(V::sub(gi, fi), s),   // conj(W_a)
                      V::mul(V::add(fi, gi), s), V::mul(V::sub(fr, gr), s)};  // conj(W_b)
    for (int j = 0; j < 4; ++j) {
      if (count[j] >= W && stream)
        V::stream(a + offset[j], out[j]);
      else if (count[j] > 0)
        V::store_partial(a + offset[j], out[j], count[j]);
    }
  }
}

// FftMultiplyFn (kernel_table.hpp): y[f] = u_f x[f], u_f broadcast, x and y [n][W] (re, im apart).
template <typename V>
void fft_multiply(int64_t n, const typename V::T* ur, const typename V::T* ui,
                  const typename V::T* xr, const typename V::T* xi, typename V::T* yr,
                  typename V::T* yi) {
  using R = typename V::R;
  constexpr int W = V::W;
  for (int64_t f = 0; f < n; ++f, xr += W, xi += W, yr += W, yi += W) {
    const R br = V::set1(ur[f]), bi = V::set1(ui[f]);
    const R a = V::loadu(xr), b = V::loadu(xi);
    V::storeu(yr, V::fnmadd(bi, b, V::mul(br, a)));
    V::storeu(yi, V::fmadd(bi, a, V::mul(br, b)));
  }
}

// FftMultiplyEachFn (kernel_table.hpp): y[i] = u[i] x[i] for i < n W, elementwise complex.
template <typename V>
void fft_multiply_each(int64_t n, const typename V::T* ur, const typename V::T* ui,
                       const typename V::T* xr, const typename V::T* xi, typename V::T* yr,
                       typename V::T* yi) {
  constexpr int W = V::W;
  for (int64_t i = 0; i < n * W; i += W) {
    const auto br = V::loadu(ur + i), bi = V::loadu(ui + i);
    const auto a = V::loadu(xr + i), b = V::loadu(xi + i);
    V::storeu(yr + i, V::fnmadd(bi, b, V::mul(br, a)));
    V::storeu(yi + i, V::fmadd(bi, a, V::mul(br, b)));
  }
}

template <typename V>
FftKernels<typename V::T> fft_kernels() {
  FftKernels<typename V::T> k;
  k.w = V::W;
  k.axis = &fft_axis<V>;
  k.product = &fft_product<V>;
  k.pair_product = &fft_pair_product<V>;
  k.split = &fft_split<V>;
  k.multiply = &fft_multiply<V>;
  k.multiply_each = &fft_multiply_each<V>;
  k.store_fence = &V::store_fence;
  return k;
}

}  // namespace fastconv::kernels
