// fastconv/version.hpp — library version.
#pragma once

#define FASTCONV_VERSION_STRING "0.1.0"

namespace fastconv {
inline constexpr const char* version = FASTCONV_VERSION_STRING;
}  // namespace fastconv
