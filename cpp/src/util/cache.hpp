// util/cache.hpp — the size of the machine's last-level cache, and the rule the drivers use to
// write a large intermediate (transformed weights that the products read right after) with
// non-temporal stores or through the caches.
//
// Streaming stores save the read for ownership of every line, but put the data in memory: when
// the products read it back, it comes from there. Measured on the development machine (480 MiB
// of L3): VGG-16's 512-channel Winograd weights (38 MB), streamed, made a stateless call on 2
// threads 15 % slower than written through the cache. So an intermediate is streamed only when
// it would not fit in half the last-level cache.
#pragma once

#include <cstdint>

namespace fastconv::util {

/// Bytes of the last-level data cache (the largest level the C library or sysfs reports; 8 MiB
/// where neither does). Read once.
int64_t last_level_cache_bytes();

/// Whether an intermediate of `bytes`, written once and read back soon, bypasses the caches.
inline bool stream_intermediate(int64_t bytes) { return 2 * bytes > last_level_cache_bytes(); }

}  // namespace fastconv::util
