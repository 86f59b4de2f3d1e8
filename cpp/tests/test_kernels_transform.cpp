// cpp/tests/test_kernels_transform.cpp — the Winograd and FFT microkernels of every available
// ISA's table (kernels/kernel_table.hpp), float32 and float64, called directly; outputs between
// guard regions of canaries, inputs in vectors of exactly the size the contract reads. See
// test_kernels.cpp for the other families.
//
//   Winograd:  F(2,3), F(4,3), F(6,3), each 2-D, along W and along H: the weight, input and
//              output transforms against the matrices of winograd_matrices.hpp (one and three
//              tiles along a row, rows and transform slots with gaps); the weight transform
//              streamed into an aligned buffer (then store_fence) equal to the stored one; and
//              the whole minimal filtering: output(weight(g) .* input(d)) equal to the direct
//              correlation of the tile, plain, with bias, and with bias and the clamp
//   FFT axis:  lengths 1 to 120 of radices 2, 3, 4, 5 (plans of conv/fft_plan.hpp), one and two
//              vectors per element, elements with a gap: forward equal to the DFT in the
//              digit-reversed order; inverse(forward(x)) = n x; and the convolution theorem,
//              inverse(forward(a) .* forward(b)) = n (a circularly convolved with b);
//              pruned forward = forward of zeros past live, bit for bit
//   FFT products: product (either operand conjugated or neither; row blocks of 8, 4, 2 and 1;
//              one to three vector groups; one and several channels; stored or added to the
//              output), split (partial lane counts; streamed; both lane assignments' layouts),
//              multiply and multiply_each
//   FFT lanes: the cost model's lane assignment on bench layers and its chunks
//
// Reference in double. Tolerances are tolerance<T>() (1e-5 float32, 1e-12 float64) times the
// scale of the terms: for a transform the same transform on absolute values (|M| |x| |M|^T,
// through the whole Winograd pipeline); for the FFT, whose error is normwise, ceil(log2 n) times
// the root mean square magnitude of the output (the 2-norm of x for a forward transform).
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "conv/fft_plan.hpp"
#include "kernel_test.hpp"
#include "kernels/generic/winograd_matrices.hpp"

namespace {

using namespace kernel_test;
namespace fk = fastconv::kernels;
namespace wm = fastconv::kernels::winograd;

size_t at(int64_t i) { return static_cast<size_t>(i); }

// ---- Winograd

// A small dense matrix in double.
struct Mat {
  int rows, cols;
  std::vector<double> a;
  Mat(int r, int c) : rows(r), cols(c), a(static_cast<size_t>(r * c)) {}
  double& operator()(int i, int j) { return a[static_cast<size_t>(i * cols + j)]; }
  double operator()(int i, int j) const { return a[static_cast<size_t>(i * cols + j)]; }
};

enum class Which { BT, G, AT };

// The matrix of one axis with tile m: BT (alpha x alpha), G (alpha x taps), AT (m x alpha);
// m = 1 (a one-tap axis): the 1 x 1 identity.
Mat axis_matrix(Which which, int m) {
  if (m == 1) {
    Mat r(1, 1);
    r(0, 0) = 1.0;
    return r;
  }
  const wm::Matrices& t = wm::matrices_for(m);
  const int alpha = m + wm::kTaps - 1;
  Mat r(which == Which::AT ? m : alpha, which == Which::G ? wm::kTaps : alpha);
  for (int i = 0; i < r.rows; ++i)
    for (int j = 0; j < r.cols; ++j)
      r(i, j) = which == Which::BT ? t.BT[i][j] : which == Which::G ? t.G[i][j] : t.AT[i][j];
  return r;
}

// lh x lw^T, or with every entry's absolute value (the scale of the terms).
Mat sandwich(const Mat& lh, const Mat& x, const Mat& lw, bool absolute) {
  const auto f = [absolute](double v) { return absolute ? std::fabs(v) : v; };
  Mat t(lh.rows, x.cols), r(lh.rows, lw.rows);
  for (int i = 0; i < lh.rows; ++i)
    for (int j = 0; j < x.cols; ++j)
      for (int p = 0; p < lh.cols; ++p) t(i, j) += f(lh(i, p)) * f(x(p, j));
  for (int i = 0; i < lh.rows; ++i)
    for (int j = 0; j < lw.rows; ++j)
      for (int q = 0; q < lw.cols; ++q) r(i, j) += t(i, q) * f(lw(j, q));
  return r;
}

Mat elementwise(const Mat& a, const Mat& b) {
  Mat r(a.rows, a.cols);
  for (size_t i = 0; i < r.a.size(); ++i) r.a[i] = a.a[i] * b.a[i];
  return r;
}

// One variant (tile m) and shape (0: m x m, 1: 1 x m along W, 2: m x 1 along H) of a table.
template <typename T>
struct WinogradCase {
  const fk::WinogradKernels<T>& wk;
  int variant, shape;
  int MH, MW, AH, AW, KH, KW;
  Mat BTh, BTw, Gh, Gw, ATh, ATw;
  std::string name;

  WinogradCase(const std::string& isa, const fk::WinogradKernels<T>& k, int v, int s)
      : wk(k), variant(v), shape(s),
        MH(s == 1 ? 1 : wm::kTiles[v]), MW(s == 2 ? 1 : wm::kTiles[v]),
        AH(MH == 1 ? 1 : MH + wm::kTaps - 1), AW(MW == 1 ? 1 : MW + wm::kTaps - 1),
        KH(MH == 1 ? 1 : wm::kTaps), KW(MW == 1 ? 1 : wm::kTaps),
        BTh(axis_matrix(Which::BT, MH)), BTw(axis_matrix(Which::BT, MW)),
        Gh(axis_matrix(Which::G, MH)), Gw(axis_matrix(Which::G, MW)),
        ATh(axis_matrix(Which::AT, MH)), ATw(axis_matrix(Which::AT, MW)),
        name(label(isa, "winograd F(" + std::to_string(wm::kTiles[v]) + ",3)",
                   s == 0 ? "2-D" : s == 1 ? "along W" : "along H", bits<T>())) {}
};

// Weight transform, stored and streamed; returns the transformed weights (u_step apart).
template <typename T>
std::vector<T> check_winograd_weight(const WinogradCase<T>& k, const std::vector<T>& w, int64_t u_step) {
  const int64_t W = k.wk.w, A = k.AH * k.AW;
  Guarded<T> u(A * u_step), us(A * u_step);
  u.snapshot();
  us.snapshot();
  k.wk.weight[k.variant][k.shape](w.data(), u.data(), u_step, false);
  k.wk.weight[k.variant][k.shape](w.data(), us.data(), u_step, true);
  k.wk.store_fence();
  Expected e(u.size()), es(us.size());
  for (int64_t c = 0; c < W; ++c) {
    Mat g(k.KH, k.KW);
    for (int i = 0; i < k.KH; ++i)
      for (int j = 0; j < k.KW; ++j) g(i, j) = double(w[at((i * k.KW + j) * W + c)]);
    const Mat ref = sandwich(k.Gh, g, k.Gw, false), scale = sandwich(k.Gh, g, k.Gw, true);
    for (int64_t xi = 0; xi < A; ++xi) {
      e.put(xi * u_step + c, ref.a[at(xi)], scale.a[at(xi)]);
      es.put(xi * u_step + c, double(u[xi * u_step + c]), 0.0);
    }
  }
  check_output(u, e, tolerance<T>(), k.name + " weight");
  check_output(us, es, 0.0, k.name + " weight streamed");
  return std::vector<T>(u.data(), u.data() + u.size());
}

// The tile t of lane c of x (AH x AW inputs).
template <typename T>
Mat input_tile(const WinogradCase<T>& k, const std::vector<T>& x, int64_t ldx, int64_t t, int64_t c) {
  const int64_t W = k.wk.w;
  Mat d(k.AH, k.AW);
  for (int i = 0; i < k.AH; ++i)
    for (int j = 0; j < k.AW; ++j) d(i, j) = double(x[at(i * ldx + (t * k.MW + j) * W + c)]);
  return d;
}

// Input transform of `count` tiles; returns the transformed tiles (v_step apart).
template <typename T>
std::vector<T> check_winograd_input(const WinogradCase<T>& k, const std::vector<T>& x, int64_t ldx,
                                    int64_t count, int64_t v_step) {
  const int64_t W = k.wk.w, A = k.AH * k.AW;
  Guarded<T> v(A * v_step);
  v.snapshot();
  k.wk.input[k.variant][k.shape](x.data(), ldx, count, v.data(), v_step);
  Expected e(v.size());
  for (int64_t t = 0; t < count; ++t)
    for (int64_t c = 0; c < W; ++c) {
      const Mat d = input_tile(k, x, ldx, t, c);
      const Mat ref = sandwich(k.BTh, d, k.BTw, false), scale = sandwich(k.BTh, d, k.BTw, true);
      for (int64_t xi = 0; xi < A; ++xi) e.put(xi * v_step + t * W + c, ref.a[at(xi)], scale.a[at(xi)]);
    }
  check_output(v, e, tolerance<T>(), label(k.name, "input count", count));
  return std::vector<T>(v.data(), v.data() + v.size());
}

template <typename T>
void test_winograd(const std::string& isa, const fk::WinogradKernels<T>& wk, int variant, int shape) {
  const WinogradCase<T> k(isa, wk, variant, shape);
  const int64_t W = wk.w, A = k.AH * k.AW;
  const auto w = random<T>(k.KH * k.KW * W, 111);
  const int64_t u_step = 2 * W;  // vector-aligned slots for the streamed stores, with a gap
  const auto u = check_winograd_weight(k, w, u_step);
  const auto bias = random<T>(W, 114);
  for (int64_t count : {1, 3}) {
    const int64_t row = ((count - 1) * k.MW + k.AW) * W, ldx = row + 3;
    const auto x = random<T>((k.AH - 1) * ldx + row, 112);
    const int64_t v_step = count * W + 2;
    const auto v = check_winograd_input(k, x, ldx, count, v_step);
    // output transform of random m, then of u .* v: the whole correlation
    const int64_t m_step = count * W + 1, ldy = count * k.MW * W + 2;
    for (bool whole : {false, true}) {
      auto m = random<T>((A - 1) * m_step + count * W, 113);
      if (whole)
        for (int64_t xi = 0; xi < A; ++xi)
          for (int64_t t = 0; t < count; ++t)
            for (int64_t c = 0; c < W; ++c)
              m[at(xi * m_step + t * W + c)] = u[at(xi * u_step + c)] * v[at(xi * v_step + t * W + c)];
      for (int store = 0; store < 3; ++store) {  // plain, bias, bias + clamp
        fk::TileStore<T> st;
        st.bias = store > 0 ? bias.data() : nullptr;
        st.clamp = store == 2;
        st.lo = T(-1);
        st.hi = T(1);
        Guarded<T> y(k.MH * ldy);
        y.snapshot();
        wk.output[variant][shape](m.data(), m_step, count, st, y.data(), ldy);
        Expected e(y.size());
        for (int64_t t = 0; t < count; ++t)
          for (int64_t c = 0; c < W; ++c) {
            Mat mt(k.AH, k.AW), ref(k.MH, k.MW), scale(k.MH, k.MW);
            for (int64_t xi = 0; xi < A; ++xi) mt.a[at(xi)] = double(m[at(xi * m_step + t * W + c)]);
            if (!whole) {
              ref = sandwich(k.ATh, mt, k.ATw, false);
              scale = sandwich(k.ATh, mt, k.ATw, true);
            } else {  // the direct correlation; the scale: the pipeline on absolute values
              const Mat d = input_tile(k, x, ldx, t, c);
              Mat g(k.KH, k.KW);
              for (int i = 0; i < k.KH; ++i)
                for (int j = 0; j < k.KW; ++j) g(i, j) = double(w[at((i * k.KW + j) * W + c)]);
              for (int i = 0; i < k.MH; ++i)
                for (int j = 0; j < k.MW; ++j)
                  for (int a = 0; a < k.KH; ++a)
                    for (int b = 0; b < k.KW; ++b) ref(i, j) += g(a, b) * d(i + a, j + b);
              scale = sandwich(k.ATh, elementwise(sandwich(k.Gh, g, k.Gw, true), sandwich(k.BTh, d, k.BTw, true)),
                               k.ATw, true);
            }
            for (int i = 0; i < k.MH; ++i)
              for (int j = 0; j < k.MW; ++j) {
                double r = ref(i, j) + (st.bias ? double(bias[at(c)]) : 0.0);
                if (st.clamp) r = std::min(std::max(r, double(st.lo)), double(st.hi));
                e.put(i * ldy + (t * k.MW + j) * W + c, r,
                      scale(i, j) + (st.bias ? std::fabs(double(bias[at(c)])) : 0.0));
              }
          }
        check_output(y, e, tolerance<T>(),
                     label(k.name, whole ? "output(weight .* input) vs correlation" : "output", "count",
                           count, store == 0 ? "plain" : store == 1 ? "bias" : "bias clamp"));
      }
    }
  }
}

// ---- FFT axis

using cd = std::complex<double>;

// The frequency at position p of the forward transform's output, in the mixed-radix digit
// reversal of conv/fft_plan.hpp: position p = u q + p' (q = n / r) holds frequency k = u + r k'
// where p' holds k' in the sub-transform of length q.
template <typename T>
int64_t frequency_at(const fk::FftAxisView<T>& ax, int64_t p) {
  int64_t k = 0, scale = 1, len = ax.n;
  for (int s = 0; s < ax.stages; ++s) {
    const int64_t q = len / ax.radix[s];
    k += scale * (p / q);
    scale *= ax.radix[s];
    p %= q;
    len = q;
  }
  return k;
}

// n elements of `lanes` complex values each, element j of lane l at j*stride + l, in a pair of
// guarded buffers (the gaps hold canaries).
template <typename T>
struct Signal {
  Guarded<T> re, im;
  int64_t n, lanes, stride;
  Signal(int64_t n_, int64_t lanes_, int64_t stride_)
      : re(n_ * stride_), im(n_ * stride_), n(n_), lanes(lanes_), stride(stride_) {}
  cd get(int64_t j, int64_t l) const { return {double(re[j * stride + l]), double(im[j * stride + l])}; }
  void set(int64_t j, int64_t l, cd v) {
    re[j * stride + l] = T(v.real());
    im[j * stride + l] = T(v.imag());
  }
  void randomize(uint32_t seed) {
    const auto r = random<T>(2 * n * lanes, seed);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t l = 0; l < lanes; ++l) set(j, l, {double(r[at(2 * (j * lanes + l))]), double(r[at(2 * (j * lanes + l) + 1)])});
  }
  double norm(int64_t l) const {
    double s = 0;
    for (int64_t j = 0; j < n; ++j) s += std::norm(get(j, l));
    return std::sqrt(s);
  }
  void snapshot() {
    re.snapshot();
    im.snapshot();
  }
  void run(const fk::FftKernels<T>& ft, const fk::FftAxisView<T>& ax, bool inverse) {
    ft.axis(re.data(), im.data(), stride, lanes / ft.w, ax, inverse);
  }
  // want(j, l): the reference; scale(l): its scale
  template <typename Want, typename Scale>
  void expect(Want want, Scale scale, const std::string& where) const {
    Expected er(re.size()), ei(im.size());
    for (int64_t j = 0; j < n; ++j)
      for (int64_t l = 0; l < lanes; ++l) {
        const cd v = want(j, l);
        er.put(j * stride + l, v.real(), scale(l));
        ei.put(j * stride + l, v.imag(), scale(l));
      }
    check_output(re, er, tolerance<T>(), where + " (re)");
    check_output(im, ei, tolerance<T>(), where + " (im)");
  }
};

template <typename T>
void test_fft_axis(const std::string& isa, const fk::FftKernels<T>& ft, int64_t n, int64_t nvec) {
  const fastconv::conv::fft::Axis<T> plan(n);
  const fk::FftAxisView<T> ax = plan.view();
  const int64_t lanes = nvec * ft.w, stride = lanes + 3;
  const double logn = std::max(1.0, std::ceil(std::log2(double(n)))), sqn = std::sqrt(double(n));
  const std::string name = label(isa, "fft axis", bits<T>(), "n", n, "nvec", nvec);
  std::vector<cd> root(static_cast<size_t>(n));  // exp(-2 pi i k / n)
  for (int64_t k = 0; k < n; ++k) root[at(k)] = std::polar(1.0, -2.0 * M_PI * double(k) / double(n));

  // forward: X = P DFT(x)
  Signal<T> x(n, lanes, stride);
  x.randomize(121);
  const Signal<T> x0 = x;
  x.snapshot();
  x.run(ft, ax, false);
  x.expect(
      [&](int64_t p, int64_t l) {
        const int64_t k = frequency_at(ax, p);
        cd s = 0;
        for (int64_t j = 0; j < n; ++j) s += x0.get(j, l) * root[at(j * k % n)];
        return s;
      },
      [&](int64_t l) { return logn * x0.norm(l); }, name + " forward vs DFT");

  // pruned forward (ax.live < n): the elements at and past live are taken as zeros and not
  // read (NaN in memory here); the same bits as the unpruned transform of zeros there
  for (int64_t live : {int64_t(1), n / 3 + 1, n - 1}) {
    if (live < 1 || live >= n) continue;
    fk::FftAxisView<T> pruned = ax;
    pruned.live = live;
    Signal<T> z(n, lanes, stride);
    z.randomize(124);
    for (int64_t j = live; j < n; ++j)
      for (int64_t l = 0; l < lanes; ++l) z.set(j, l, 0);
    Signal<T> p = z;
    for (int64_t j = live; j < n; ++j)
      for (int64_t l = 0; l < lanes; ++l) p.set(j, l, cd(NAN, NAN));
    z.run(ft, ax, false);
    p.run(ft, pruned, false);
    bool same = true;
    for (int64_t j = 0; j < n; ++j)
      for (int64_t l = 0; l < lanes; ++l) {
        const int64_t i = j * stride + l;
        same = same && std::memcmp(&z.re[i], &p.re[i], sizeof(T)) == 0 &&
               std::memcmp(&z.im[i], &p.im[i], sizeof(T)) == 0;
      }
    check(same, name + " pruned forward, live " + std::to_string(live) + ": the same bits");
  }

  // inverse(forward(x)) = n x
  x.snapshot();
  x.run(ft, ax, true);
  x.expect([&](int64_t j, int64_t l) { return double(n) * x0.get(j, l); },
          [&](int64_t l) { return logn * sqn * x0.norm(l); }, name + " inverse(forward)");

  // the convolution theorem: inverse(forward(a) .* forward(b)) = n (a (*) b), circular
  Signal<T> a(n, lanes, stride), b(n, lanes, stride);
  a.randomize(122);
  b.randomize(123);
  const Signal<T> a0 = a, b0 = b;
  a.run(ft, ax, false);
  b.run(ft, ax, false);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t l = 0; l < lanes; ++l) a.set(j, l, a.get(j, l) * b.get(j, l));
  a.snapshot();
  a.run(ft, ax, true);
  a.expect(
      [&](int64_t k, int64_t l) {
        cd s = 0;
        for (int64_t j = 0; j < n; ++j) s += a0.get(j, l) * b0.get((k - j + n) % n, l);
        return double(n) * s;
      },
      [&](int64_t l) { return logn * sqn * a0.norm(l) * b0.norm(l); }, name + " convolution theorem");
}

// ---- FFT products

// The expected products m[k*ldm + v*2W + (0: re, W: im) + l] for k < rows, v < groups, l < W:
// the start's value there (accumulate) or 0, plus the sum that add(k, v, l, s, scale) adds to s
// (and the magnitude of its terms to scale).
template <typename T, typename Add>
Expected expected_products(int64_t size, int64_t rows, int64_t groups, int64_t W, int64_t ldm,
                           const std::vector<T>* start, Add add) {
  Expected e(size);
  for (int64_t k = 0; k < rows; ++k)
    for (int64_t v = 0; v < groups; ++v)
      for (int64_t l = 0; l < W; ++l) {
        const int64_t re = k * ldm + v * 2 * W + l, im = re + W;
        cd s = start ? cd(double((*start)[at(re)]), double((*start)[at(im)])) : cd(0);
        double scale = std::fabs(s.real()) + std::fabs(s.imag());
        add(k, v, l, s, scale);
        e.put(re, s.real(), scale);
        e.put(im, s.imag(), scale);
      }
  return e;
}

template <typename T>
void test_fft_product(const std::string& isa, const fk::FftKernels<T>& ft) {
  const int64_t W = ft.w;
  for (fk::FftConj conj : {fk::FftConj::none, fk::FftConj::u, fk::FftConj::x})
    for (int64_t rows : {1, 2, 4, 7, 8, 13})  // blocks of 8 (one group), 4, 2 and single rows
      for (int64_t groups : {1, 2, 3})
        for (int64_t nc : {1, 6})
          for (bool accumulate : {false, true}) {
          const int64_t ldu = nc + 1, ldx = groups * 2 * W + 2, ldm = groups * 2 * W + 3;
          const auto ur = random<T>((rows - 1) * ldu + nc, 131), ui = random<T>((rows - 1) * ldu + nc, 132);
          const auto x = random<T>((nc - 1) * ldx + groups * 2 * W, 133);
          const auto m0 = random<T>(rows * ldm, 134);
          Guarded<T> m(rows * ldm);
          if (accumulate) m.fill(m0);
          m.snapshot();
          ft.product(rows, nc, ur.data(), ui.data(), ldu, conj, x.data(), ldx, m.data(), ldm, groups,
                     accumulate);
          const Expected e = expected_products<T>(
              m.size(), rows, groups, W, ldm, accumulate ? &m0 : nullptr,
              [&](int64_t k, int64_t v, int64_t l, cd& s, double& scale) {
                for (int64_t c = 0; c < nc; ++c) {
                  const cd u(double(ur[at(k * ldu + c)]),
                             (conj == fk::FftConj::u ? -1.0 : 1.0) * double(ui[at(k * ldu + c)]));
                  const cd xv(double(x[at(c * ldx + v * 2 * W + l)]),
                              (conj == fk::FftConj::x ? -1.0 : 1.0) * double(x[at(c * ldx + v * 2 * W + W + l)]));
                  s += u * xv;
                  scale += (std::fabs(u.real()) + std::fabs(u.imag())) * (std::fabs(xv.real()) + std::fabs(xv.imag()));
                }
              });
          check_output(m, e, tolerance<T>(),
                       label(isa, "fft product", bits<T>(), "conj", static_cast<int>(conj), "rows", rows,
                             "groups", groups, "nc", nc, accumulate ? "accumulate" : "store"));
          }
}

// Channel pairs with unsplit weight spectra: m (+)= sum_cp P conj(X) + Q X2, m2 (+)= sum_cp
// P2 conj(X2) + Q2 X; one frequency (own: ur2 null, X2 = X, m2 untouched) or two mirrored.
template <typename T>
void test_fft_pair_product(const std::string& isa, const fk::FftKernels<T>& ft) {
  const int64_t W = ft.w;
  for (bool own : {false, true})
    for (int64_t rows : {1, 2, 3, 4, 5, 8, 9})  // blocks of 8 / NF (one group), 2, single rows
      for (int64_t groups : {1, 2, 3})
        for (int64_t ncp : {1, 3})
          for (bool accumulate : {false, true}) {
            const int64_t ldu = 2 * ncp + 1, ldx = groups * 2 * W + 5, ldi = W + 1;
            const int64_t ldm = groups * 2 * W + 3, nu = (rows - 1) * ldu + 2 * ncp;
            const int64_t nx = (ncp - 1) * ldx + (groups - 1) * 2 * W + ldi + W;
            const auto ur = random<T>(nu, 141), ui = random<T>(nu, 142);
            const auto ur2 = random<T>(nu, 143), ui2 = random<T>(nu, 144);
            const auto x = random<T>(nx, 145), x2 = random<T>(nx, 146);
            const auto m0 = random<T>(rows * ldm, 147), m20 = random<T>(rows * ldm, 148);
            Guarded<T> m(rows * ldm), m2(rows * ldm);
            if (accumulate) m.fill(m0), m2.fill(m20);
            m.snapshot();
            m2.snapshot();
            ft.pair_product(rows, ncp, ur.data(), ui.data(), m.data(), own ? nullptr : ur2.data(),
                            ui2.data(), m2.data(), ldu, x.data(), own ? x.data() : x2.data(), ldx,
                            ldi, ldm, groups, accumulate);
            const auto X = [&](const std::vector<T>& v, int64_t cp, int64_t g, int64_t l) {
              const int64_t i = cp * ldx + g * 2 * W + l;
              return cd(double(v[at(i)]), double(v[at(i + ldi)]));
            };
            // Rows (vr, vi) at a frequency whose X is xa, its mirror's xb.
            const auto expect = [&](const std::vector<T>& vr, const std::vector<T>& vi,
                                    const std::vector<T>& xa, const std::vector<T>& xb,
                                    const std::vector<T>& start) {
              return expected_products<T>(
                  m.size(), rows, groups, W, ldm, accumulate ? &start : nullptr,
                  [&](int64_t k, int64_t v, int64_t l, cd& s, double& scale) {
                    for (int64_t cp = 0; cp < ncp; ++cp) {
                      const int64_t c = k * ldu + 2 * cp;
                      const cd p(double(vr[at(c)]), double(vi[at(c)]));
                      const cd q(double(vr[at(c + 1)]), double(vi[at(c + 1)]));
                      const cd a = std::conj(X(xa, cp, v, l)), b = X(xb, cp, v, l);
                      s += p * a + q * b;
                      scale += 2 * (std::abs(p) * std::abs(a) + std::abs(q) * std::abs(b));
                    }
                  });
            };
            const Expected e = own ? expect(ur, ui, x, x, m0) : expect(ur, ui, x, x2, m0);
            // Own: m2 untouched (no expected values).
            const Expected e2 = own ? Expected(m2.size()) : expect(ur2, ui2, x2, x, m20);
            const std::string where =
                label(isa, "fft pair product", bits<T>(), own ? "own" : "mirrored", "rows", rows,
                      "groups", groups, "ncp", ncp, accumulate ? "accumulate" : "store");
            check_output(m, e, tolerance<T>(), where);
            check_output(m2, e2, tolerance<T>(), where + " (mirror)");
          }
}

template <typename T>
void test_fft_split(const std::string& isa, const fk::FftKernels<T>& ft) {
  const int W = ft.w;
  // Three slots over a spectrum of 5 positions: (0, 0) (its own mirror), (1, 4), (2, 3).
  const std::vector<int64_t> at{0, 1, 2}, mirror{0, 4, 3, 2, 1};
  const int64_t n = 3;
  const auto zr = random<T>(5 * W, 141), zi = random<T>(5 * W, 142);
  const T scale = T(0.375);
  struct Case {
    int na, nb;
    bool stream;
  };
  // Destinations: slots ld apart, b lb after a, imaginary parts im after: the layouts of both
  // lane assignments (conv/fft.cpp), [re a | re b | im a | im b] (lanes hold tiles) and
  // [re a | im a | re b | im b] (channels), with a gap between slots.
  struct Layout {
    int64_t lb, im, ld;
  };
  for (Layout d : {Layout{W, 2 * W, 4 * W + 16}, Layout{2 * W, W, 4 * W}})
    for (Case c : {Case{W, W, false}, Case{W, 0, false}, Case{0, W, false}, Case{1, W - 1, false},
                   Case{W - 1, 2, false}, Case{0, 0, false}, Case{W, W, true}, Case{W, 1, true},
                   Case{2, W, true}}) {
      Guarded<T> out(n * d.ld);  // vector-aligned, as streaming needs
      out.snapshot();
      ft.split(zr.data(), zi.data(), at.data(), mirror.data(), n, scale, out.data(), d.ld, d.lb,
               d.im, c.na, c.nb, c.stream);
      if (c.stream) ft.store_fence();
      Expected e(out.size());
      for (int64_t slot = 0; slot < n; ++slot)
        for (int l = 0; l < W; ++l) {
          const int64_t p = at[slot] * W + l, m = mirror[at[slot]] * W + l;
          const cd z(double(zr[p]), double(zi[p])), zm(double(zr[m]), double(zi[m]));
          const cd wa = double(scale) * std::conj(z + std::conj(zm));
          const cd wb = double(scale) * std::conj((z - std::conj(zm)) / cd(0, 1));
          const double s = double(scale) * (std::fabs(z.real()) + std::fabs(z.imag()) +
                                            std::fabs(zm.real()) + std::fabs(zm.imag()));
          const int64_t o = slot * d.ld;
          if (l < c.na) {
            e.put(o + l, wa.real(), s);
            e.put(o + d.im + l, wa.imag(), s);
          }
          if (l < c.nb) {
            e.put(o + d.lb + l, wb.real(), s);
            e.put(o + d.lb + d.im + l, wb.imag(), s);
          }
        }
      check_output(out, e, tolerance<T>(),
                   label(isa, "fft split", bits<T>(), "lb", d.lb, "im", d.im, "na", c.na, "nb", c.nb,
                         c.stream ? "stream" : "store"));
    }
}

// multiply (each_element false: u per frequency, broadcast over W lanes) and multiply_each
template <typename T>
void test_fft_multiply(const std::string& isa, const fk::FftKernels<T>& ft, bool each_element) {
  const int64_t W = ft.w;
  for (int64_t n : {1, 3, 5}) {
    const int64_t nu = each_element ? n * W : n;
    const auto ur = random<T>(nu, 151), ui = random<T>(nu, 152);
    const auto xr = random<T>(n * W, 153), xi = random<T>(n * W, 154);
    Guarded<T> yr(n * W), yi(n * W);
    yr.snapshot();
    yi.snapshot();
    (each_element ? ft.multiply_each : ft.multiply)(n, ur.data(), ui.data(), xr.data(), xi.data(),
                                                      yr.data(), yi.data());
    Expected er(yr.size()), ei(yi.size());
    for (int64_t i = 0; i < n * W; ++i) {
      const int64_t f = each_element ? i : i / W;
      const cd u(double(ur[at(f)]), double(ui[at(f)])), xv(double(xr[at(i)]), double(xi[at(i)]));
      const double s = (std::fabs(u.real()) + std::fabs(u.imag())) * (std::fabs(xv.real()) + std::fabs(xv.imag()));
      er.put(i, (u * xv).real(), s);
      ei.put(i, (u * xv).imag(), s);
    }
    const std::string where =
        label(isa, each_element ? "fft multiply_each" : "fft multiply", bits<T>(), "n", n);
    check_output(yr, er, tolerance<T>(), where + " (re)");
    check_output(yi, ei, tolerance<T>(), where + " (im)");
  }
}

template <typename T>
void test_all(const std::string& isa, const fk::KernelSet<T>& ks) {
  for (int v = 0; v < wm::kNumVariants; ++v)
    for (int shape = 0; shape < 3; ++shape) test_winograd(isa, ks.winograd, v, shape);
  for (int64_t n : {1, 2, 3, 4, 5, 8, 12, 15, 16, 30, 60, 64, 100, 120})
    for (int64_t nvec : {1, 2}) test_fft_axis(isa, ks.fft, n, nvec);
  test_fft_product(isa, ks.fft);
  test_fft_pair_product(isa, ks.fft);
  test_fft_split(isa, ks.fft);
  test_fft_multiply(isa, ks.fft, false);
  test_fft_multiply(isa, ks.fft, true);
}

// The FFT cost model's lane assignment (conv/fft_plan.hpp) at AVX-512 float32's 16 lanes:
// by channel for a single small image of many channels (the 13 x 13 and 31 x 31 bench layers,
// whose few tiles would leave lanes idle by tile), by tile where tiles fill the lanes (the
// 13 x 13 layer at batch 8) and always for one input channel (template matching); and the
// chunk of a tiling holds at least one unit within its budget.
void test_fft_lanes() {
  namespace ff = fastconv::conv::fft;
  struct Case {
    int64_t N, C, K, in, ke, pad;
    bool by_channel;
  };
  for (const Case c : {Case{1, 64, 64, 28, 13, 6, true}, Case{1, 32, 32, 28, 31, 15, true},
                       Case{8, 64, 64, 28, 13, 6, false}, Case{1, 1, 1, 512, 31, 0, false},
                       Case{1, 1, 16, 64, 9, 4, false}}) {
    ff::Geometry g;
    g.N = c.N, g.Cg = c.C, g.Kg = c.K;
    g.in = {1, c.in, c.in}, g.ke = {1, c.ke, c.ke}, g.lo = {0, c.pad, c.pad};
    g.out = {1, c.in + 2 * c.pad - c.ke + 1, c.in + 2 * c.pad - c.ke + 1};
    const int64_t budget = int64_t(8) << 20;
    const ff::Tiling t = ff::choose_tiling(g, 16, budget, 4, true);
    const std::string where = label("fft lanes", "N", c.N, "C", c.C, "K", c.K, "kernel", c.ke);
    check(t.by_channel == c.by_channel, where + ": by_channel " + std::to_string(t.by_channel));
    check(t.f[0] == 1 && t.f[1] >= c.ke && t.f[2] >= c.ke && ff::is_smooth(t.f[1]) &&
              ff::is_smooth(t.f[2]),
          where + ": extents");
    check(t.chunk >= 1 && t.chunk <= t.units() &&
              (t.chunk == 1 || t.spectra_size(g) * 4 <= budget),
          where + ": chunk");
  }
}

}  // namespace

int main() {
  for_each_isa([](const std::string& isa, const fastconv::kernels::KernelTable& table) {
    test_all(isa, table.f32);
    test_all(isa, table.f64);
  });
  test_fft_lanes();
  return finish();
}
