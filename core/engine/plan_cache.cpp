// The engine's per-device plan cache (see plan_cache.hpp).
#include "engine/plan_cache.hpp"

#include <cstdlib>
#include <sparkle/error.hpp>
#include <sparkle/text.hpp>

namespace sparkle {

exec::PlanRef PlanCache::get(const std::string& key, const std::function<exec::PlanRef()>& make) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  exec::PlanRef fresh = make();
  std::lock_guard lock(mutex_);
  if (auto it = index_.find(key); it != index_.end()) return it->second->second;  // lost the race
  lru_.emplace_front(key, fresh);
  index_[key] = lru_.begin();
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return fresh;
}

size_t PlanCache::size() {
  std::lock_guard lock(mutex_);
  return lru_.size();
}

void PlanCache::clear() {
  std::lock_guard lock(mutex_);
  index_.clear();
  lru_.clear();
}

size_t plan_cache_capacity() {
  const char* v = std::getenv("SPARKLE_PLAN_CACHE_CAPACITY");
  if (v == nullptr || *v == '\0') return 256;
  const ParsedInteger n = parse_integer(v);
  if (n.problem != IntegerProblem::none || n.value < 1 || n.value > 1000000)
    throw Error(ErrorCode::invalid_argument, "SPARKLE_PLAN_CACHE_CAPACITY=" + printable(v) +
                                                 " must be an integer from 1 to 1000000");
  return static_cast<size_t>(n.value);
}

}  // namespace sparkle
