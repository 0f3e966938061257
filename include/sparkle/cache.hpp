// The persistent program cache seen from outside: statistics of this
// process, the entries on disk, and clearing them. See docs/CACHE.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparkle {

struct CacheStats {
  // This process:
  int64_t memory_hits = 0;  // live programs reused
  int64_t disk_hits = 0;    // programs loaded from disk instead of compiled
  int64_t compiles = 0;     // programs compiled from source
  double compile_ms = 0;    // time spent compiling
  double saved_ms = 0;      // compile time the disk hits avoided (as first measured)
  // On disk now:
  int64_t entries = 0;
  uint64_t bytes_on_disk = 0;
  std::string directory;
  bool enabled = true;  // false with SPARKLE_CACHE_DISABLE=1 or no cache folder
};

struct CacheEntry {
  std::string file, plugin, kind, name, device_fingerprint;
  uint64_t bytes = 0;
  double compile_ms = 0;
  int64_t age_s = 0;    // since last use
  std::string problem;  // empty when valid for this build
};

CacheStats cache_stats();
std::vector<CacheEntry> cache_entries();
// Removes every program entry, the selector profile and the tuning records;
// returns the count of files removed.
size_t cache_clear();

}  // namespace sparkle
