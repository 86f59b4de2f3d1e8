// nn/rows.hpp — sums over one contiguous row, accumulated in double, for the normalisation and
// softmax drivers. `omp simd` reductions let the compiler vectorise them (a fixed association
// for a given build, so the results are repeatable); elementwise passes are plain loops.
#pragma once

#include <cstdint>

namespace fastconv::nn {

// sum_i x[i]
template <typename T>
double row_sum(const T* x, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += double(x[i]);
  return s;
}

// sum_i (x[i] - m)^2
template <typename T>
double row_sum_sq_dev(const T* x, int64_t n, double m) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(x[i]) - m;
    s += d * d;
  }
  return s;
}

// sdy = sum_i dy[i] w[i],  sdyx = sum_i dy[i] w[i] (x[i] - m)   (w null: 1)
template <typename T>
void row_grad_sums(const T* x, const T* dy, const T* w, int64_t n, double m, double& sdy,
                   double& sdyx) {
  double a = 0, b = 0;
  if (w) {
#pragma omp simd reduction(+ : a, b)
    for (int64_t i = 0; i < n; ++i) {
      const double g = double(dy[i]) * double(w[i]);
      a += g;
      b += g * (double(x[i]) - m);
    }
  } else {
#pragma omp simd reduction(+ : a, b)
    for (int64_t i = 0; i < n; ++i) {
      const double g = double(dy[i]);
      a += g;
      b += g * (double(x[i]) - m);
    }
  }
  sdy = a;
  sdyx = b;
}

}  // namespace fastconv::nn
