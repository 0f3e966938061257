// Process-wide cache counters, fed by plugins through the host services.
#pragma once

#include <sparkle/plugin.h>

#include <atomic>

namespace sparkle::cache {

struct Counters {
  std::atomic<int64_t> memory_hits{0}, disk_hits{0}, compiles{0};
  std::atomic<int64_t> compile_us{0}, saved_us{0};
};

Counters& counters();
void record_event(sparkle_cache_event event, double ms);

}  // namespace sparkle::cache
