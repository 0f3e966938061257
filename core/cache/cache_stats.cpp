// Cache statistics and the public cache functions of include/sparkle/cache.hpp.
#include "cache/cache_stats.hpp"

#include <filesystem>
#include <sparkle/cache.hpp>

#include "cache/blob_store.hpp"
#include "cache/cache_dir.hpp"

namespace sparkle {
namespace cache {

Counters& counters() {
  static Counters c;
  return c;
}

void record_event(sparkle_cache_event event, double ms) {
  auto& c = counters();
  switch (event) {
    case SPARKLE_CACHE_MEMORY_HIT:
      ++c.memory_hits;
      break;
    case SPARKLE_CACHE_DISK_HIT:
      ++c.disk_hits;
      break;
    case SPARKLE_CACHE_COMPILE:
      ++c.compiles;
      c.compile_us += static_cast<int64_t>(ms * 1000);
      break;
  }
}

}  // namespace cache

CacheStats cache_stats() {
  const auto& c = cache::counters();
  auto& store = cache::BlobStore::instance();
  CacheStats s;
  s.memory_hits = c.memory_hits;
  s.disk_hits = c.disk_hits;
  s.compiles = c.compiles;
  s.compile_ms = static_cast<double>(c.compile_us.load()) / 1000.0;
  s.saved_ms = static_cast<double>(c.saved_us.load()) / 1000.0;
  s.directory = store.config().dir;
  s.enabled = store.config().enabled;
  for (const auto& e : store.list()) {
    ++s.entries;
    s.bytes_on_disk += e.bytes;
  }
  return s;
}

std::vector<CacheEntry> cache_entries() {
  std::vector<CacheEntry> out;
  for (auto& e : cache::BlobStore::instance().list())
    out.push_back({e.file, e.plugin, e.kind, e.name, e.device_fingerprint, e.bytes, e.compile_ms,
                   e.age_s, e.problem});
  return out;
}

size_t cache_clear() {
  size_t removed = cache::BlobStore::instance().clear();
  const std::string root = cache::cache_directory();
  std::error_code ec;
  // Earlier formats (v1, v2 text) are no longer read; clear them too.
  for (const char* name :
       {"/selector-profile-v3.json", "/selector-profile-v2.txt", "/selector-profile-v1.txt"})
    if (!root.empty() && std::filesystem::remove(root + name, ec)) ++removed;
  // Tuning records (core/tune): learned like the profile, so cleared with it.
  if (!root.empty()) {
    const auto n = std::filesystem::remove_all(root + "/tuning-v1", ec);
    if (!ec && n > 0) removed += static_cast<size_t>(n - 1);  // the files, not the folder
  }
  return removed;
}

}  // namespace sparkle
