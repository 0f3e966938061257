// LiveCache: a thread-safe LRU of live objects (compiled programs) for any
// backend to instantiate. Header-only, because plugins do not link
// libsparkle.
//  - capacity: at most `capacity` entries are kept, except entries in use;
//  - reference counts: values are shared_ptrs; an entry whose value is held
//    outside the cache is never evicted, and a holder keeps it alive anyway;
//  - single flight: concurrent misses on one key run the factory once, and
//    the other callers wait for its result (or its exception).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace sparkle {

template <class Key, class Value, class Hash = std::hash<Key>>
class LiveCache {
 public:
  explicit LiveCache(size_t capacity) : capacity_(capacity) {}
  LiveCache(const LiveCache&) = delete;
  LiveCache& operator=(const LiveCache&) = delete;

  // The value for key, made by make() (returning std::shared_ptr<Value>) on
  // a miss. *hit tells whether it was already there (or being made).
  template <class Make>
  std::shared_ptr<Value> get(const Key& key, Make&& make, bool* hit = nullptr) {
    std::unique_lock lock(mutex_);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      auto entry = it->second;  // keep the slot alive while we wait
      touch(entry);
      cv_.wait(lock, [&] { return entry->ready; });
      if (entry->error) std::rethrow_exception(entry->error);
      if (hit) *hit = true;
      return entry->value;
    }
    auto entry = std::make_shared<Slot>();
    entry->key = key;
    lru_.push_front(entry);
    entry->lru = lru_.begin();
    entries_.emplace(key, entry);
    lock.unlock();

    std::shared_ptr<Value> value;
    std::exception_ptr error;
    try {
      value = make();
    } catch (...) {
      error = std::current_exception();
    }

    // Values evicted here are released after the lock is dropped, so that a
    // value's destructor may call back into the cache.
    std::vector<std::shared_ptr<Value>> evicted;
    lock.lock();
    entry->ready = true;
    entry->value = value;
    entry->error = error;
    if (error) forget(entry);  // a failed make is not cached; later calls retry
    evict(&evicted);
    lock.unlock();
    cv_.notify_all();
    if (error) std::rethrow_exception(error);
    if (hit) *hit = false;
    return value;
  }

  size_t size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }
  bool contains(const Key& key) const {
    std::lock_guard lock(mutex_);
    return entries_.count(key) != 0;
  }
  // Keys from most to least recently used.
  std::vector<Key> keys() const {
    std::lock_guard lock(mutex_);
    std::vector<Key> out;
    for (const auto& e : lru_) out.push_back(e->key);
    return out;
  }
  void set_capacity(size_t capacity) {
    std::vector<std::shared_ptr<Value>> evicted;
    std::lock_guard lock(mutex_);
    capacity_ = capacity;
    evict(&evicted);
  }

 private:
  struct Slot {
    Key key;
    std::shared_ptr<Value> value;
    std::exception_ptr error;
    bool ready = false;
    typename std::list<std::shared_ptr<Slot>>::iterator lru;
  };

  void touch(const std::shared_ptr<Slot>& s) { lru_.splice(lru_.begin(), lru_, s->lru); }

  void forget(const std::shared_ptr<Slot>& s) {
    lru_.erase(s->lru);
    entries_.erase(s->key);
  }

  // Oldest first; skips entries being made and entries in use elsewhere.
  void evict(std::vector<std::shared_ptr<Value>>* out) {
    for (auto it = lru_.end(); entries_.size() > capacity_ && it != lru_.begin();) {
      --it;
      auto slot = *it;
      if (!slot->ready || (slot->value && slot->value.use_count() > 1)) continue;
      out->push_back(std::move(slot->value));
      entries_.erase(slot->key);
      it = lru_.erase(it);
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  size_t capacity_;
  std::list<std::shared_ptr<Slot>> lru_;
  std::unordered_map<Key, std::shared_ptr<Slot>, Hash> entries_;
};

}  // namespace sparkle
