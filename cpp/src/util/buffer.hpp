// util/buffer.hpp — an owning, 64-byte aligned, uninitialised buffer whose allocation failure
// is a fastconv::OutOfMemory naming what it was for.
//
// Large blocks (kRecycleMin and up) are recycled through a small per-thread cache: a fresh
// multi-megabyte allocation is mapped by the OS page by page on first touch, which costs more
// than packing the weights it holds (≈ 2 ms for 9 MB here); when the next call of the same
// shapes reuses the block it costs nothing. The cache keeps at most kRecycleBlocks blocks and
// kRecycleBytes bytes per thread, freed when the thread ends.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fastconv/errors.hpp"

namespace fastconv::util {

namespace detail {

constexpr std::size_t kRecycleMin = std::size_t(1) << 20;
constexpr std::size_t kRecycleBlocks = 4;
constexpr std::size_t kRecycleBytes = std::size_t(64) << 20;

class BlockCache {
 public:
  ~BlockCache() {
    for (const Block& b : blocks_) std::free(b.ptr);
  }
  // A cached block of at least `bytes` and at most twice that (the smallest such; its size
  // goes to *size), or null.
  void* take(std::size_t bytes, std::size_t* size) {
    std::size_t best = blocks_.size();
    for (std::size_t i = 0; i < blocks_.size(); ++i)
      if (blocks_[i].bytes >= bytes && blocks_[i].bytes <= 2 * bytes &&
          (best == blocks_.size() || blocks_[i].bytes < blocks_[best].bytes))
        best = i;
    if (best == blocks_.size()) return nullptr;
    void* p = blocks_[best].ptr;
    *size = blocks_[best].bytes;
    total_ -= blocks_[best].bytes;
    blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(best));
    return p;
  }
  // Keep p (of `bytes`) for reuse, dropping the oldest blocks beyond the limits.
  void give(void* p, std::size_t bytes) {
    if (bytes > kRecycleBytes) {
      std::free(p);
      return;
    }
    blocks_.push_back({p, bytes});
    total_ += bytes;
    while (blocks_.size() > kRecycleBlocks || total_ > kRecycleBytes) {
      std::free(blocks_.front().ptr);
      total_ -= blocks_.front().bytes;
      blocks_.erase(blocks_.begin());
    }
  }

 private:
  struct Block {
    void* ptr;
    std::size_t bytes;
  };
  std::vector<Block> blocks_;
  std::size_t total_ = 0;
};

inline BlockCache& block_cache() {
  thread_local BlockCache cache;
  return cache;
}

// Frees a block, or gives a large one to the cache.
struct Release {
  std::size_t bytes = 0;
  void operator()(void* p) const {
    if (bytes >= kRecycleMin) {
      block_cache().give(p, bytes);
    } else {
      std::free(p);
    }
  }
};

}  // namespace detail

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(std::size_t bytes, const char* what) {
    if (bytes == 0) return;
    const std::size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded < bytes) throw OutOfMemory(std::string("cannot allocate ") + what);
    std::size_t size = rounded;
    void* p = rounded >= detail::kRecycleMin ? detail::block_cache().take(rounded, &size) : nullptr;
    if (!p) {
      p = std::aligned_alloc(64, rounded);
      if (!p) {
        throw OutOfMemory(std::string("cannot allocate ") + std::to_string(bytes) +
                          " bytes for " + what);
      }
    }
    data_.reset(p);
    data_.get_deleter().bytes = size;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_.get());
  }

 private:
  std::unique_ptr<void, detail::Release> data_;
};

}  // namespace fastconv::util
