// BlobStore: the persistent, content-addressed store of compiled programs
// (and anything else a plugin derives from generated source). One file per
// entry: a header repeating every key field, a header checksum, then the
// payload with its own checksum. Entries are written atomically; a corrupt,
// stale or foreign entry is a miss, never trusted.
#pragma once

#include <sparkle/plugin.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sparkle::cache {

struct EntryHeader;

struct BlobInfo {
  std::string file;  // full path
  std::string plugin, kind, name, device_fingerprint;
  uint64_t bytes = 0;  // file size
  double compile_ms = 0;
  int64_t age_s = 0;    // since last use
  std::string problem;  // empty if the entry is valid for this build
};

struct BlobStoreConfig {
  std::string dir;                    // entries live here
  uint64_t max_bytes = 512ull << 20;  // SPARKLE_CACHE_MAX_BYTES
  bool enabled = true;                // SPARKLE_CACHE_DISABLE=1 turns it off
  std::string core_build_id;          // part of every key
  // From the environment: SPARKLE_CACHE_DIR / XDG_CACHE_HOME / HOME,
  // SPARKLE_CACHE_MAX_BYTES, SPARKLE_CACHE_DISABLE.
  static BlobStoreConfig from_environment();
};

class BlobStore {
 public:
  explicit BlobStore(BlobStoreConfig config);
  // The process-wide store the plugins reach through the host services.
  static BlobStore& instance();

  std::optional<std::string> get(const sparkle_blob_key& key, double* compile_ms = nullptr);
  void put(const sparkle_blob_key& key, const void* data, size_t size, double compile_ms);
  // The device refused a payload: the entry goes.
  void reject(const sparkle_blob_key& key, const std::string& why);

  std::vector<BlobInfo> list() const;
  size_t clear();  // removes every entry; returns how many
  const BlobStoreConfig& config() const { return config_; }
  std::string path_of(const sparkle_blob_key& key) const;

 private:
  EntryHeader entry_header(const sparkle_blob_key& key, double compile_ms,
                           const std::string& payload_sha, uint64_t payload_size) const;
  void warn_once(const std::string& what, const std::string& message);
  void evict_to_fit(const std::string& keep);

  BlobStoreConfig config_;
  std::mutex mutex_;  // guards warned_ and eviction
  std::set<std::string> warned_;
  std::atomic<bool> writable_{true};
};

}  // namespace sparkle::cache
