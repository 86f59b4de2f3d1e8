// util/format.hpp — formatting for error messages.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fastconv::util {

/// "[1, 3, 224, 224]", as PyTorch prints sizes.
inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace fastconv::util
