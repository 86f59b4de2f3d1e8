// kernels/generic/winograd_matrices.hpp — the transform matrices of Winograd's minimal filtering
// F(m, 3), generated at compile time from their interpolation points: the one place they are
// defined (the transform kernels and the tests both read them from here).
//
// Correlation of alpha = m + 2 inputs d with a 3-tap filter g (Lavin & Gray, "Fast algorithms
// for convolutional neural networks", CVPR 2016):  y = AT [ (G g) .* (BT d) ],  y_k =
// sum_j g_j d_{k+j} for k < m; in 2-D, Y = AT [ (G g GT) .* (BT d B) ] A. It is the transpose of
// the Toom-Cook linear convolution s = g * h evaluated at n = alpha - 1 finite points f_i and
// at infinity (the leading coefficient), then interpolated:
//   AT (m x alpha):     AT[k][i] = f_i^k;            column "infinity": e_{m-1}
//   G  (alpha x 3):     G[i][j]  = f_i^j / N_i;      row "infinity": (0, 0, 1)
//   BT (alpha x alpha): BT[i][p] = [x^p] prod_{j != i} (x - f_j);  row "infinity": [x^p] M(x)
// with N_i = prod_{j != i} (f_i - f_j) and M(x) = prod_j (x - f_j). The Lagrange denominators
// sit in G, so BT and AT hold small exact binary fractions. Points: F(2,3) 0, 1, -1; F(4,3)
// adds ±2; F(6,3) adds ±1/2 (the ±3 set loses about 70x in accuracy: larger powers in AT/BT).
// All arithmetic here is on exact binary fractions except G's 1/N_i, rounded once.
#pragma once

#include <array>

namespace fastconv::kernels::winograd {

constexpr int kTaps = 3;   // r: the filter length all variants serve
constexpr int kMaxM = 6;   // largest output tile
constexpr int kMaxAlpha = kMaxM + kTaps - 1;

// Output tiles of the registered variants (F(2,3), F(4,3), F(6,3)) and their index.
constexpr int kTiles[] = {2, 4, 6};
constexpr int kNumVariants = 3;
constexpr int variant_index(int m) { return m == 2 ? 0 : m == 4 ? 1 : 2; }

struct Matrices {
  int m = 0, alpha = 0;
  double AT[kMaxM][kMaxAlpha] = {};
  double G[kMaxAlpha][kTaps] = {};
  double BT[kMaxAlpha][kMaxAlpha] = {};
};

// The finite interpolation points of F(m, 3): alpha - 1 of them.
constexpr std::array<double, kMaxAlpha - 1> points(int m) {
  std::array<double, kMaxAlpha - 1> f{};
  const double all[] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5};
  for (int i = 0; i < m + kTaps - 2; ++i) f[static_cast<std::size_t>(i)] = all[i];
  return f;
}

constexpr Matrices matrices(int m) {
  Matrices t;
  t.m = m;
  t.alpha = m + kTaps - 1;
  const int n = t.alpha - 1;  // finite points
  const auto f = points(m);
  for (int i = 0; i < n; ++i) {
    double N = 1.0;
    double poly[kMaxAlpha] = {1.0};  // prod_{j != i} (x - f_j), coefficients of x^0 .. x^(n-1)
    int degree = 0;
    for (int j = 0; j < n; ++j) {
      if (j == i) continue;
      N *= f[i] - f[j];
      for (int p = degree + 1; p > 0; --p) poly[p] = poly[p - 1] - f[j] * poly[p];
      poly[0] = -f[j] * poly[0];
      ++degree;
    }
    double power = 1.0;
    for (int k = 0; k < m; ++k, power *= f[i]) t.AT[k][i] = power;
    power = 1.0;
    for (int k = 0; k < kTaps; ++k, power *= f[i]) t.G[i][k] = power / N;
    for (int p = 0; p < t.alpha; ++p) t.BT[i][p] = poly[p] + 0.0;  // (no -0)
  }
  double M[kMaxAlpha + 1] = {1.0};  // prod_j (x - f_j), degree n
  for (int j = 0; j < n; ++j) {
    for (int p = j + 1; p > 0; --p) M[p] = M[p - 1] - f[j] * M[p];
    M[0] = -f[j] * M[0];
  }
  t.AT[m - 1][n] = 1.0;
  t.G[n][kTaps - 1] = 1.0;
  for (int p = 0; p < t.alpha; ++p) t.BT[n][p] = M[p] + 0.0;
  return t;
}

constexpr Matrices kMatrices[kNumVariants] = {matrices(2), matrices(4), matrices(6)};

constexpr const Matrices& matrices_for(int m) { return kMatrices[variant_index(m)]; }

}  // namespace fastconv::kernels::winograd
