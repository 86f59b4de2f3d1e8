// util/dtype.hpp — from the runtime DType to a C++ element type.
#pragma once

#include "fastconv/conv.hpp"

namespace fastconv::util {

/// Calls f(float{}) or f(double{}) for dtype; f is a generic lambda taking the element type.
template <typename F>
void with_dtype(DType dtype, F&& f) {
  if (dtype == DType::f32) {
    f(float{});
  } else {
    f(double{});
  }
}

}  // namespace fastconv::util
