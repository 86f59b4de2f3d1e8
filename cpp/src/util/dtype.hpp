// util/dtype.hpp — from the runtime DType to a C++ element type.
#pragma once

#include <cstddef>

#include "fastconv/conv.hpp"

namespace fastconv::util {

/// The DType of an element type (float or double).
template <typename T>
constexpr DType dtype_of() {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "float or double");
  return sizeof(T) == 4 ? DType::f32 : DType::f64;
}

/// Bytes of one element of dtype.
inline std::size_t dtype_size(DType dtype) {
  return dtype == DType::f32 ? sizeof(float) : sizeof(double);
}

/// Calls f(float{}) or f(double{}) for dtype and returns its result; f is a generic lambda
/// taking the element type (returning the same type, or nothing, for both).
template <typename F>
auto with_dtype(DType dtype, F&& f) {
  return dtype == DType::f32 ? f(float{}) : f(double{});
}

}  // namespace fastconv::util
