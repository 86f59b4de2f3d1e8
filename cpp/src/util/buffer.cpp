// util/buffer.cpp — allocation behind AlignedBuffer (buffer.hpp): large blocks cached per thread.
//
// The cache holds at most kSlots blocks and kMaxCached bytes of the calling thread's recently
// released large buffers; a request takes the smallest cached block that fits, else allocates.
// Per thread, so no lock (and nothing held across fork()); a thread's blocks are freed when it
// exits or calls release_cached_buffers().
#include "buffer.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fastconv/errors.hpp"
#include "fastconv/runtime.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace fastconv::util {

namespace {

constexpr std::size_t kCacheMin = std::size_t(1) << 20;     // smaller: the C heap serves well
constexpr std::size_t kHugeMin = std::size_t(4) << 20;      // 2 MiB aligned, huge pages
constexpr std::size_t kHugePage = std::size_t(2) << 20;
constexpr std::size_t kMaxCached = std::size_t(64) << 20;
constexpr int kSlots = 4;

struct Cache {
  void* block[kSlots] = {};
  std::size_t size[kSlots] = {};

  std::size_t total() const {
    std::size_t t = 0;
    for (std::size_t s : size) t += s;
    return t;
  }
  void clear() noexcept {
    for (int i = 0; i < kSlots; ++i) {
      std::free(block[i]);
      block[i] = nullptr;
      size[i] = 0;
    }
  }
  ~Cache() { clear(); }
};

thread_local Cache cache;

// A fresh block of at least `bytes`, rounded to its alignment (*rounded): 64 bytes, or 2 MiB
// with the transparent-huge-page hint from kHugeMin on; null when the heap has none.
void* fresh_block(std::size_t bytes, std::size_t* rounded) {
  const std::size_t align = bytes >= kHugeMin ? kHugePage : 64;
  *rounded = (std::max<std::size_t>(bytes, 1) + align - 1) / align * align;
  if (*rounded < bytes) return nullptr;
  void* p = std::aligned_alloc(align, *rounded);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (p && align == kHugePage) madvise(p, *rounded, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
  return p;
}

}  // namespace

void* acquire_buffer(std::size_t bytes, std::size_t* capacity, const char* what) {
  const std::size_t align = bytes >= kHugeMin ? kHugePage : 64;
  const std::size_t rounded = (bytes + align - 1) / align * align;
  if (rounded < bytes) throw OutOfMemory(std::string("cannot allocate ") + what);
  if (rounded >= kCacheMin) {  // the smallest cached block that fits, 2 MiB aligned for a
    int best = -1;             // request of kHugeMin or more
    const auto aligned = [](const void* b) {
      return reinterpret_cast<std::uintptr_t>(b) % kHugePage == 0;
    };
    for (int i = 0; i < kSlots; ++i)
      if (cache.block[i] && cache.size[i] >= rounded &&
          (align != kHugePage || aligned(cache.block[i])) &&
          (best < 0 || cache.size[i] < cache.size[best]))
        best = i;
    if (best >= 0) {
      void* p = cache.block[best];
      *capacity = cache.size[best];
      cache.block[best] = nullptr;
      cache.size[best] = 0;
      return p;
    }
  }
  std::size_t got = 0;
  void* p = fresh_block(bytes, &got);
  if (!p && rounded >= kCacheMin) {  // cached blocks may be what is missing
    cache.clear();
    p = fresh_block(bytes, &got);
  }
  if (!p) {
    throw OutOfMemory(std::string("cannot allocate ") + std::to_string(bytes) + " bytes for " +
                      what);
  }
  *capacity = got;
  return p;
}

void release_buffer(void* p, std::size_t capacity) noexcept {
  if (!p) return;
  if (capacity < kCacheMin || capacity > kMaxCached) {
    std::free(p);
    return;
  }
  // Keep it in a free slot, or in place of the smallest block if that is smaller; then drop the
  // smallest blocks while over the byte limit.
  int slot = -1;
  for (int i = 0; i < kSlots && slot < 0; ++i)
    if (!cache.block[i]) slot = i;
  if (slot < 0) {
    slot = 0;
    for (int i = 1; i < kSlots; ++i)
      if (cache.size[i] < cache.size[slot]) slot = i;
    if (cache.size[slot] >= capacity) {
      std::free(p);
      return;
    }
    std::free(cache.block[slot]);
  }
  cache.block[slot] = p;
  cache.size[slot] = capacity;
  while (cache.total() > kMaxCached) {
    int smallest = -1;
    for (int i = 0; i < kSlots; ++i)
      if (cache.block[i] && i != slot && (smallest < 0 || cache.size[i] < cache.size[smallest]))
        smallest = i;
    if (smallest < 0) break;
    std::free(cache.block[smallest]);
    cache.block[smallest] = nullptr;
    cache.size[smallest] = 0;
  }
}

std::size_t release_cached_buffers() noexcept {
  const std::size_t bytes = cache.total();
  cache.clear();
  return bytes;
}

}  // namespace fastconv::util

namespace fastconv {

// Arrays of 1 MiB and more come from, and return to, the calling thread's cache like the
// scratch buffers: a fresh block's pages are faulted in and zeroed by the OS on first touch
// (measured: a 25 MiB output cost 2.3 ms that way, a fifth of its 1x1 convolution). free_array
// learns a block's size from the C library, where it can (glibc); elsewhere arrays bypass the
// cache.
void* allocate_array(std::size_t bytes) {
#if defined(__GLIBC__)
  std::size_t capacity = 0;
  return util::acquire_buffer(bytes, &capacity, "an array");
#else
  std::size_t rounded = 0;
  void* p = util::fresh_block(bytes, &rounded);
  if (!p && util::release_cached_buffers() > 0) p = util::fresh_block(bytes, &rounded);
  if (!p) throw OutOfMemory("cannot allocate " + std::to_string(bytes) + " bytes for an array");
  return p;
#endif
}

void free_array(void* p) noexcept {
#if defined(__GLIBC__)
  if (p) util::release_buffer(p, malloc_usable_size(p));
#else
  std::free(p);
#endif
}

}  // namespace fastconv
