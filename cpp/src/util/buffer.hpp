// util/buffer.hpp — an owning, 64-byte aligned, uninitialised buffer whose allocation failure
// is a fastconv::OutOfMemory naming what it was for.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <string>

#include "fastconv/errors.hpp"

namespace fastconv::util {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(std::size_t bytes, const char* what) {
    if (bytes == 0) return;
    const std::size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded < bytes) throw OutOfMemory(std::string("cannot allocate ") + what);
    void* p = std::aligned_alloc(64, rounded);
    if (!p) {
      throw OutOfMemory(std::string("cannot allocate ") + std::to_string(bytes) + " bytes for " +
                        what);
    }
    data_.reset(p);
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_.get());
  }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> data_;
};

}  // namespace fastconv::util
