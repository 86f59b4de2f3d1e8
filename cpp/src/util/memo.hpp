// util/memo.hpp — a process-wide memo: values derived from keys once and shared by the calls
// that need them (FFT box tables, tile choices), kept within a budget of cost units and
// emptied when a new value would pass it.
//
// Lookups and inserts hold a mutex; a value is made outside it, so two threads may both make
// one for a key: the first stored is kept and returned to both (the values must not depend on
// who made them). The callers take it on their calling thread, never inside a parallel region.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>

namespace fastconv::util {

template <typename Key, typename Value>
class Memo {
 public:
  explicit Memo(int64_t budget) : budget_(budget) {}

  // The value of key: the one kept, or make()'s, kept at `cost` units.
  template <typename Make>
  Value get(const Key& key, int64_t cost, Make make) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      const auto it = values_.find(key);
      if (it != values_.end()) return it->second;
    }
    Value value = make();
    const std::lock_guard<std::mutex> lock(mutex_);
    const auto it = values_.find(key);  // another thread's, made meanwhile
    if (it != values_.end()) return it->second;
    if (kept_ + cost > budget_) values_.clear(), kept_ = 0;
    values_.emplace(key, value);
    kept_ += cost;
    return value;
  }

 private:
  std::mutex mutex_;
  std::map<Key, Value> values_;
  int64_t kept_ = 0;
  const int64_t budget_;
};

}  // namespace fastconv::util
