// cpp/tests/kernel_test.hpp — what the microkernel tests (test_kernels*.cpp) share: the check
// counter, seeded random data, and output buffers between guard regions of canaries that a
// kernel must leave untouched.
//
// An output goes in a Guarded buffer; its Expected contents say, per element, the reference value
// (summed in double) with the scale of its terms, or that the element must keep, bit for bit,
// what it held at Guarded::snapshot() (canaries, gaps between rows, unused lanes, accumulator
// starts). check_output then counts two checks: the values, and everything else untouched.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "fastconv/runtime.hpp"
#include "kernels/kernel_table.hpp"

namespace kernel_test {

inline int failures = 0, checks = 0;

inline void check(bool ok, const std::string& what) {
  ++checks;
  if (!ok && ++failures <= 20) std::printf("FAIL: %s\n", what.c_str());
}

// The summary line and the exit status of a test executable.
inline int finish() {
  std::printf("%d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}

// f(isa, table) for every ISA the CPU runs.
template <typename F>
void for_each_isa(F f) {
  for (const std::string& isa : fastconv::available_isas()) f(isa, fastconv::kernels::kernels_for(isa));
}

// Uniform in [-1, 1), from a seed.
template <typename T>
std::vector<T> random(int64_t n, uint32_t seed) {
  std::vector<T> v(static_cast<size_t>(n));
  for (T& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = T(double(seed >> 8) / double(1u << 24) * 2.0 - 1.0);
  }
  return v;
}

template <typename T>
T canary() {
  return T(-7.25e17);
}

template <typename T>
bool same(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// Per term scale of the reference sum: float32 within 1e-5 of the largest term sum, float64
// within 1e-12.
template <typename T>
double tolerance() {
  return sizeof(T) == 4 ? 1e-5 : 1e-12;
}

// "avx2 direct run 32-bit kb 3 ...": the words of a failing case, space separated.
template <typename... A>
std::string label(const A&... parts) {
  std::ostringstream s;
  ((s << parts << ' '), ...);
  std::string r = s.str();
  r.pop_back();
  return r;
}

template <typename T>
const char* bits() {
  return sizeof(T) == 4 ? "32-bit" : "64-bit";
}

// n elements at a 64-byte aligned data() (aligned for every ISA's non-temporal stores), between
// guard regions of at least `guard` canaries; the elements start as canaries too.
template <typename T>
class Guarded {
 public:
  explicit Guarded(int64_t n, int64_t guard = 32)
      : n_(n), storage_(static_cast<size_t>(n + 2 * guard) + 64 / sizeof(T), canary<T>()) {
    const auto addr = reinterpret_cast<uintptr_t>(storage_.data() + guard);
    begin_ = guard + static_cast<int64_t>((64 - addr % 64) % 64 / sizeof(T));
  }
  T* data() { return storage_.data() + begin_; }
  const T* data() const { return storage_.data() + begin_; }
  T& operator[](int64_t i) { return storage_[static_cast<size_t>(begin_ + i)]; }
  T operator[](int64_t i) const { return storage_[static_cast<size_t>(begin_ + i)]; }
  int64_t size() const { return n_; }
  void fill(const std::vector<T>& v) { std::copy(v.begin(), v.end(), data()); }
  // The contents an untouched element must keep: taken just before the kernel runs.
  void snapshot() { before_ = storage_; }

  // The element at storage index s is the data element s - begin_ (none when outside).
  int64_t begin() const { return begin_; }
  const std::vector<T>& storage() const { return storage_; }
  const std::vector<T>& before() const { return before_; }

 private:
  int64_t n_;
  int64_t begin_ = 0;
  std::vector<T> storage_, before_;
};

// What a kernel should leave in a Guarded buffer of n elements: put(i, value, scale) for each
// element it writes; the rest (and the guards) must keep their snapshot.
struct Expected {
  explicit Expected(int64_t n)
      : value(static_cast<size_t>(n)), scale(static_cast<size_t>(n)), set(static_cast<size_t>(n)) {}
  void put(int64_t i, double v, double s) {
    value[static_cast<size_t>(i)] = v;
    scale[static_cast<size_t>(i)] = s;
    set[static_cast<size_t>(i)] = 1;
  }
  std::vector<double> value, scale;
  std::vector<char> set;
};

// Two checks: written elements within tol * max(scale, 1) of the reference (tol = 0: equal),
// every other element as at the snapshot.
template <typename T>
void check_output(const Guarded<T>& y, const Expected& e, double tol, const std::string& where) {
  if (y.before().size() != y.storage().size()) {
    std::printf("test bug: no snapshot before %s\n", where.c_str());
    std::abort();
  }
  bool values = true, untouched = true;
  for (size_t s = 0; s < y.storage().size(); ++s) {
    const int64_t i = static_cast<int64_t>(s) - y.begin();
    if (i >= 0 && i < y.size() && e.set[static_cast<size_t>(i)]) {
      const double err = std::fabs(double(y.storage()[s]) - e.value[static_cast<size_t>(i)]);
      values &= err <= tol * std::max(e.scale[static_cast<size_t>(i)], 1.0);
    } else {
      untouched &= same(y.storage()[s], y.before()[s]);
    }
  }
  check(values, where + ": wrong values");
  check(untouched, where + ": wrote outside its output");
}

}  // namespace kernel_test
