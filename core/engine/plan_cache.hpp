// PlanCache: the plans of one device, by descriptor and flags, with a
// capacity and least-recently-used eviction. A plan holds compiled
// programs (and packed weights), so an engine that sees many shapes must
// let old ones go; jobs and streams hold their own reference, so eviction
// never pulls a plan from under work in flight. Thread-safe.
#pragma once

#include <cstddef>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <string>

#include "exec/plan.hpp"

namespace sparkle {

class PlanCache {
 public:
  explicit PlanCache(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

  // The cached plan for key, else make() (outside the lock; two threads may
  // both make one, and the first stored wins).
  exec::PlanRef get(const std::string& key, const std::function<exec::PlanRef()>& make);
  size_t size();
  void clear();

 private:
  size_t capacity_;
  std::mutex mutex_;
  std::list<std::pair<std::string, exec::PlanRef>> lru_;  // most recent first
  std::map<std::string, std::list<std::pair<std::string, exec::PlanRef>>::iterator> index_;
};

// SPARKLE_PLAN_CACHE_CAPACITY (plans per device), default 256.
size_t plan_cache_capacity();

}  // namespace sparkle
