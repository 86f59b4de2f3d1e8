// util/memo.hpp — a process-wide memo: values derived from keys once and shared by the calls
// that need them (FFT box tables, tile choices), kept within a budget of cost units and
// emptied when a new value would pass it, or by fastconv::release_memory (release_memos).
//
// Lookups and inserts hold a mutex; a value is made outside it, so two threads may both make
// one for a key: the first stored is kept and returned to both (the values must not depend on
// who made them). The callers take it on their calling thread, never inside a parallel region.
// Values are copies (or shared pointers): emptying a memo never pulls one from under a call.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>

namespace fastconv::util {

// What every memo registers while it lives, for release_memos.
class MemoBase {
 public:
  MemoBase(const MemoBase&) = delete;
  MemoBase& operator=(const MemoBase&) = delete;
  // Empties the memo; returns the bytes its values held, 0 if its costs are not bytes.
  virtual int64_t release() = 0;

 protected:
  MemoBase();
  virtual ~MemoBase();
};

// Empties every memo of the process; returns the bytes freed (of the memos that count bytes).
int64_t release_memos();

template <typename Key, typename Value>
class Memo final : public MemoBase {
 public:
  // budget: of cost units; costs_are_bytes: whether release() reports them as bytes.
  explicit Memo(int64_t budget, bool costs_are_bytes = false)
      : budget_(budget), costs_are_bytes_(costs_are_bytes) {}

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

  int64_t release() override {
    const std::lock_guard<std::mutex> lock(mutex_);
    const int64_t freed = costs_are_bytes_ ? kept_ : 0;
    values_.clear();
    kept_ = 0;
    return freed;
  }

 private:
  std::mutex mutex_;
  std::map<Key, Value> values_;
  int64_t kept_ = 0;
  const int64_t budget_;
  const bool costs_are_bytes_;
};

}  // namespace fastconv::util
