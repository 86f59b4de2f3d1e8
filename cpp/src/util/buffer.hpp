// util/buffer.hpp — an owning, 64-byte aligned, uninitialised buffer whose allocation failure
// is a fastconv::OutOfMemory naming what it was for.
//
// Buffers of 1 MiB and more (packed weights, workspaces) come from, and return to, a small
// per-thread cache (buffer.cpp): a fresh allocation of that size is mapped from the OS and
// faulted in page by page on first touch, which measured 1.3 ms per MiB on the development
// machine — more than the arithmetic filling it for a stateless call. Those of 4 MiB and more
// are aligned to 2 MiB and marked for transparent huge pages where the kernel offers them.
#pragma once

#include <cstddef>
#include <memory>

namespace fastconv::util {

// Aligned memory of at least `bytes` (the cache may return a larger block: *capacity says how
// large), and its return. Throws OutOfMemory naming `what`.
void* acquire_buffer(std::size_t bytes, std::size_t* capacity, const char* what);
void release_buffer(void* p, std::size_t capacity) noexcept;

/// Frees the calling thread's cached blocks; returns their bytes.
std::size_t release_cached_buffers() noexcept;

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(std::size_t bytes, const char* what) {
    if (bytes == 0) return;
    std::size_t capacity = 0;
    void* p = acquire_buffer(bytes, &capacity, what);
    data_ = std::unique_ptr<void, Release>(p, Release{capacity});
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_.get());
  }

 private:
  struct Release {
    std::size_t capacity = 0;
    void operator()(void* p) const noexcept { release_buffer(p, capacity); }
  };
  std::unique_ptr<void, Release> data_{nullptr, Release{}};
};

}  // namespace fastconv::util
