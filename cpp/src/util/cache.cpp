// util/cache.cpp — the last-level cache size (cache.hpp): sysconf's levels 3, then 2 (glibc),
// else sysfs's cache indices of CPU 0, else 8 MiB.
#include "util/cache.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace fastconv::util {

namespace {

int64_t from_sysconf() {
  int64_t bytes = 0;
#ifdef _SC_LEVEL3_CACHE_SIZE
  bytes = std::max<int64_t>(bytes, sysconf(_SC_LEVEL3_CACHE_SIZE));
#endif
#ifdef _SC_LEVEL2_CACHE_SIZE
  bytes = std::max<int64_t>(bytes, sysconf(_SC_LEVEL2_CACHE_SIZE));
#endif
  return bytes;
}

// "size" of /sys/devices/system/cpu/cpu0/cache/index<i>: a number and a K or M suffix.
int64_t from_sysfs() {
  int64_t bytes = 0;
  for (int i = 0; i < 8; ++i) {
    std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/size");
    int64_t n = 0;
    char unit = 0;
    if (!(f >> n)) continue;
    f >> unit;
    bytes = std::max(bytes, n << (unit == 'K' ? 10 : unit == 'M' ? 20 : 0));
  }
  return bytes;
}

}  // namespace

int64_t last_level_cache_bytes() {
  static const int64_t bytes = [] {
    int64_t b = from_sysconf();
    if (b <= 0) b = from_sysfs();
    return b > 0 ? b : int64_t(8) << 20;
  }();
  return bytes;
}

}  // namespace fastconv::util
