// util/checked.hpp — 64-bit size arithmetic that throws OverflowError instead of wrapping.
//
// Every size the core derives from user input (padded extents, element counts, byte counts,
// workspace sizes) goes through these helpers before anything is allocated or divided.
#pragma once

#include <cstdint>
#include <string>

#include "fastconv/errors.hpp"

namespace fastconv::util {

[[noreturn]] inline void throw_overflow(const std::string& what) {
  throw OverflowError(what + " overflows a 64-bit integer");
}

inline int64_t checked_add(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw_overflow(what);
  return r;
}

inline int64_t checked_mul(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw_overflow(what);
  return r;
}

// ceil(a / b) for b > 0 and any a, without the overflow of (a + b - 1) / b.
inline int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b > 0 ? 1 : 0); }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

}  // namespace fastconv::util
