// nn/norm.cpp — batch, group and layer normalisation (fastconv/norm.hpp), forward and backward
// side by side; Ioffe & Szegedy 2015 (batch), Wu & He 2018 (group), Ba et al. 2016 (layer).
//
//   x, y, dy, dx   [N][C][S] rows; row r = (n, c) belongs to statistic j(r):
//                  batch c, group n * groups + c / (C / groups), layer n (C = 1)
//   mean, var      stats() doubles; rstd = 1 / sqrt(var + eps); M = reduced() values each
//
// Forward with input statistics takes two passes over x (row sums, then squared deviations
// from the mean: no cancellation), a third writes y = (x - mean) rstd w + b. Backward (Ioffe &
// Szegedy's eq. for dx, written with row sums A = sum w dy, B = sum w dy (x - mean)):
//   dx = rstd (w dy - A / M - (x - mean) rstd^2 B / M)     through the statistics
//   dx = rstd w dy                                        with constant (running) statistics
//   dweight = sum dy (x - mean) rstd,  dbias = sum dy     over each parameter's values.
// Row sums are reduced into statistics and parameters in a fixed order, so the results do not
// depend on the thread count. Limits: statistics are double, elementwise math in the dtype.
#include <cmath>
#include <limits>
#include <vector>

#include "fastconv/errors.hpp"
#include "fastconv/norm.hpp"
#include "fastconv/runtime.hpp"
#include "rows.hpp"
#include "util/checked.hpp"
#include "util/dtype.hpp"
#include "util/format.hpp"
#include "util/parallel.hpp"

namespace fastconv {

namespace {

using util::shape_str;

[[noreturn]] void invalid(const std::string& op, const std::string& what) {
  throw InvalidArgument(op + ": " + what);
}

// Statistic of row r = (n, c).
int64_t stat_of(const NormProblem& p, int64_t r) {
  const int64_t n = r / p.C, c = r % p.C;
  switch (p.kind) {
    case NormKind::batch: return c;
    case NormKind::group: return n * p.groups + c / (p.C / p.groups);
    case NormKind::layer: return n;
  }
  return 0;
}

int threads_for(const NormProblem& p) {
  return util::threads_for(p.N * p.C * p.S, int64_t(1) << 14, num_threads());
}

// out[j] = sum over the rows r of statistic j of row[r], in row order.
void reduce_rows(const NormProblem& p, const std::vector<double>& row, double* out) {
  for (int64_t j = 0; j < p.stats(); ++j) out[j] = 0;
  for (int64_t r = 0; r < p.N * p.C; ++r) out[stat_of(p, r)] += row[r];
}

// mean[j], var[j] of every statistic j: two passes over x, row sums reduced in row order.
template <typename T>
void statistics(const NormProblem& p, const T* x, double* mean, double* var) {
  const int64_t rows = p.N * p.C, S = p.S;
  const int threads = threads_for(p);
  std::vector<double> row(rows);
  const double M = double(p.reduced());
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t r = 0; r < rows; ++r) row[r] = nn::row_sum(x + r * S, S);
  reduce_rows(p, row, mean);
  for (int64_t j = 0; j < p.stats(); ++j) mean[j] /= M;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t r = 0; r < rows; ++r) row[r] = nn::row_sum_sq_dev(x + r * S, S, mean[stat_of(p, r)]);
  reduce_rows(p, row, var);
  for (int64_t j = 0; j < p.stats(); ++j) var[j] /= M;
}

template <typename T>
void forward(const NormProblem& p, const T* x, const T* w, const T* b, bool input_stats,
             double eps, double* mean, double* var, T* y) {
  const int64_t rows = p.N * p.C, S = p.S;
  const int threads = threads_for(p);
  if (input_stats) statistics(p, x, mean, var);
  const bool layer = p.kind == NormKind::layer;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t j = stat_of(p, r), c = r % p.C;
    const T m = T(mean[j]);
    const double rstd = 1 / std::sqrt(var[j] + eps);
    const T* xr = x + r * S;
    T* yr = y + r * S;
    if (layer) {
      const T k = T(rstd);
      for (int64_t s = 0; s < S; ++s) {
        T v = (xr[s] - m) * k;
        if (w) v *= w[s];
        if (b) v += b[s];
        yr[s] = v;
      }
    } else {
      const T k = T(w ? double(w[c]) * rstd : rstd), shift = b ? b[c] : T(0);
      for (int64_t s = 0; s < S; ++s) yr[s] = (xr[s] - m) * k + shift;
    }
  }
}

template <typename T>
void backward(const NormProblem& p, const T* x, const T* dy, const T* w, bool input_stats,
              double eps, const double* mean, const double* var, T* dx, T* dw, T* db) {
  const int64_t rows = p.N * p.C, S = p.S, J = p.stats();
  const int threads = threads_for(p);
  const bool layer = p.kind == NormKind::layer;
  std::vector<double> rstd(J);
  for (int64_t j = 0; j < J; ++j) rstd[j] = 1 / std::sqrt(var[j] + eps);

  // Row sums A = sum w dy and B = sum w dy (x - mean); w only inside rows for layer norm (per
  // channel otherwise: applied when reducing, so the raw sums serve dweight and dbias).
  const bool need_sums = input_stats || (!layer && (dw || db));
  std::vector<double> A(rows), B(rows);
  if (need_sums) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t r = 0; r < rows; ++r)
      nn::row_grad_sums(x + r * S, dy + r * S, layer ? w : static_cast<const T*>(nullptr), S,
                        mean[stat_of(p, r)], A[r], B[r]);
  }
  if (!layer && (dw || db)) {  // per channel: over n, in order
    for (int64_t c = 0; c < p.C; ++c) {
      double sw = 0, sb = 0;
      for (int64_t n = 0; n < p.N; ++n) {
        const int64_t r = n * p.C + c;
        sw += B[r] * rstd[stat_of(p, r)];
        sb += A[r];
      }
      if (dw) dw[c] = T(sw);
      if (db) db[c] = T(sb);
    }
  }
  if (layer && (dw || db)) {  // per element of the normalised shape: column sums over rows
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t s = 0; s < S; ++s) {
      double sw = 0, sb = 0;
      for (int64_t n = 0; n < p.N; ++n) {
        const double g = double(dy[n * S + s]);
        sw += g * (double(x[n * S + s]) - mean[n]) * rstd[n];
        sb += g;
      }
      if (dw) dw[s] = T(sw);
      if (db) db[s] = T(sb);
    }
  }
  if (!dx) return;

  // Statistic-level sums with the channel weights folded in.
  std::vector<double> SA(J, 0.0), SB(J, 0.0);
  if (input_stats) {
    for (int64_t r = 0; r < rows; ++r) {
      const double wc = (!layer && w) ? double(w[r % p.C]) : 1.0;
      SA[stat_of(p, r)] += wc * A[r];
      SB[stat_of(p, r)] += wc * B[r];
    }
  }
  const double M = double(p.reduced());
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t j = stat_of(p, r), c = r % p.C;
    const T* xr = x + r * S;
    const T* g = dy + r * S;
    T* out = dx + r * S;
    const double k = rstd[j];
    if (!input_stats) {
      for (int64_t s = 0; s < S; ++s) {
        const double wv = layer ? (w ? double(w[s]) : 1.0) : (w ? double(w[c]) : 1.0);
        out[s] = T(k * wv * double(g[s]));
      }
      continue;
    }
    const T m = T(mean[j]);
    const T a = T(k * SA[j] / M), bk = T(k * k * k * SB[j] / M);
    if (layer) {
      const T kt = T(k);
      for (int64_t s = 0; s < S; ++s) {
        const T wv = w ? w[s] : T(1);
        out[s] = kt * wv * g[s] - a - (xr[s] - m) * bk;
      }
    } else {
      const T kw = T(k * (w ? double(w[c]) : 1.0));
      for (int64_t s = 0; s < S; ++s) out[s] = kw * g[s] - a - (xr[s] - m) * bk;
    }
  }
}

}  // namespace

int64_t NormProblem::stats() const {
  switch (kind) {
    case NormKind::batch: return C;
    case NormKind::group: return N * groups;
    case NormKind::layer: return N;
  }
  return 0;
}

int64_t NormProblem::params() const { return kind == NormKind::layer ? S : C; }

int64_t NormProblem::reduced() const {
  switch (kind) {
    case NormKind::batch: return N * S;
    case NormKind::group: return C / groups * S;
    case NormKind::layer: return S;
  }
  return 0;
}

NormProblem make_norm_problem(NormKind kind, const std::vector<int64_t>& input_shape,
                              int64_t groups, const std::vector<int64_t>& normalized_shape,
                              const std::string& op) {
  NormProblem p;
  p.op = op;
  p.kind = kind;
  for (int64_t d : input_shape) {
    if (d < 0) invalid(op, "input has a negative dimension " + shape_str(input_shape));
  }
  int64_t total = 1;
  for (int64_t d : input_shape) total = util::checked_mul(total, d, op + ": input size");
  if (kind == NormKind::layer) {
    const size_t k = normalized_shape.size();
    if (k == 0) invalid(op, "normalized_shape must have at least one dimension");
    bool ok = input_shape.size() >= k;
    for (size_t i = 0; ok && i < k; ++i)
      ok = input_shape[input_shape.size() - k + i] == normalized_shape[i];
    if (!ok) {
      invalid(op, "Given normalized_shape=" + shape_str(normalized_shape) +
                      ", expected input with shape [*, " +
                      shape_str(normalized_shape).substr(1) + ", but got input of size" +
                      shape_str(input_shape));
    }
    // Products of extents are checked even when another extent is 0 (the total then is).
    p.S = 1;
    for (int64_t d : normalized_shape) p.S = util::checked_mul(p.S, d, op + ": input size");
    p.C = 1;
    p.N = 1;  // rows: the leading dims (also when the rows are empty)
    for (size_t i = 0; i + k < input_shape.size(); ++i)
      p.N = util::checked_mul(p.N, input_shape[i], op + ": input size");
    return p;
  }
  if (input_shape.size() < 2) {
    invalid(op, "expected an input of at least 2 dims (N, C, *), but got " +
                    std::to_string(input_shape.size()) + " dims");
  }
  p.N = input_shape[0];
  p.C = input_shape[1];
  p.S = 1;
  for (size_t i = 2; i < input_shape.size(); ++i)
    p.S = util::checked_mul(p.S, input_shape[i], op + ": input size");
  util::checked_mul(p.N, p.S, op + ": input size");  // reduced() of batch normalisation
  if (kind == NormKind::group) {
    if (groups <= 0) invalid(op, "num_groups must be positive, but got " + std::to_string(groups));
    if (p.C % groups != 0) {
      invalid(op, "Expected number of channels in input to be divisible by num_groups, but got "
                  "input of shape " + shape_str(input_shape) + " and num_groups=" +
                  std::to_string(groups));
    }
    util::checked_mul(p.N, groups, op + ": statistics");  // stats(): with C = 0 any groups pass
    p.groups = groups;
  }
  return p;
}

void check_norm_param(const NormProblem& p, const char* name, const std::vector<int64_t>& shape,
                      const std::vector<int64_t>& normalized_shape, int64_t expected) {
  const bool ok = p.kind == NormKind::layer
                      ? shape == normalized_shape
                      : (shape.size() == 1 && shape[0] == expected);
  if (!ok) {
    const std::string want = p.kind == NormKind::layer ? shape_str(normalized_shape)
                                                       : "[" + std::to_string(expected) + "]";
    invalid(p.op, std::string("expected ") + name + " of size " + want + ", but got " +
                      shape_str(shape));
  }
}

void norm_stats(const NormProblem& p, DType dtype, const void* x, double* mean, double* var) {
  if (p.reduced() == 0) {
    for (int64_t j = 0; j < p.stats(); ++j) mean[j] = var[j] = std::numeric_limits<double>::quiet_NaN();
    return;
  }
  if (p.stats() == 0) return;
  util::with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    statistics(p, static_cast<const T*>(x), mean, var);
  });
}

void norm_fwd(const NormProblem& p, DType dtype, const void* x, const void* weight,
              const void* bias, bool use_input_stats, double eps, double* mean, double* var,
              void* y) {
  if (!(eps >= 0)) invalid(p.op, "eps must be non-negative, but got " + std::to_string(eps));
  if (use_input_stats && p.kind == NormKind::batch && p.reduced() == 1) {
    invalid(p.op, "Expected more than 1 value per channel when training, got input size [" +
                      std::to_string(p.N) + ", " + std::to_string(p.C) + ", ...]");
  }
  if (use_input_stats && p.reduced() == 0) {  // statistics of nothing
    for (int64_t j = 0; j < p.stats(); ++j) mean[j] = var[j] = std::numeric_limits<double>::quiet_NaN();
  }
  if (p.N * p.C * p.S == 0) return;
  util::with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    forward(p, static_cast<const T*>(x), static_cast<const T*>(weight),
            static_cast<const T*>(bias), use_input_stats, eps, mean, var, static_cast<T*>(y));
  });
}

void norm_bwd(const NormProblem& p, DType dtype, const void* x, const void* dy,
              const void* weight, bool use_input_stats, double eps, const double* mean,
              const double* var, void* dx, void* dweight, void* dbias) {
  if (!(eps >= 0)) invalid(p.op, "eps must be non-negative, but got " + std::to_string(eps));
  util::with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    if (p.N * p.C * p.S == 0) {  // nothing flows; parameter gradients are zero
      for (T* g : {static_cast<T*>(dweight), static_cast<T*>(dbias)})
        if (g) std::fill(g, g + p.params(), T(0));
      return;
    }
    backward(p, static_cast<const T*>(x), static_cast<const T*>(dy),
             static_cast<const T*>(weight), use_input_stats, eps, mean, var,
             static_cast<T*>(dx), static_cast<T*>(dweight), static_cast<T*>(dbias));
  });
}

}  // namespace fastconv
