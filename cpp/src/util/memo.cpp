// util/memo.cpp — the registry of live memos (memo.hpp) that release_memos empties.
#include "util/memo.hpp"

#include <algorithm>
#include <mutex>
#include <vector>

namespace fastconv::util {

namespace {

struct Registry {
  std::mutex mutex;
  std::vector<MemoBase*> memos;
};

// Made on the first memo's construction, so that it outlives every memo (static objects are
// destroyed in the reverse order of their construction).
Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

MemoBase::MemoBase() {
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  r.memos.push_back(this);
}

MemoBase::~MemoBase() {
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  r.memos.erase(std::remove(r.memos.begin(), r.memos.end(), this), r.memos.end());
}

int64_t release_memos() {
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  int64_t freed = 0;
  for (MemoBase* m : r.memos) freed += m->release();
  return freed;
}

}  // namespace fastconv::util
