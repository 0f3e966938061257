// The blob store: keys, lookups, atomic writes and LRU eviction. The entry
// format and its checked reader are in blob_entry.cpp.
#include "cache/blob_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sparkle/text.hpp>

#include "cache/blob_entry.hpp"
#include "cache/cache_dir.hpp"
#include "cache/sha256.hpp"
#include "log/log.hpp"

namespace sparkle::detail {
extern const char* const kBuildId;
}

namespace sparkle::cache {
namespace fs = std::filesystem;

namespace {

constexpr const char* kSuffix = ".blob";

std::string str(const char* s) { return s != nullptr ? s : ""; }

std::string source_of(const sparkle_blob_key& k) {
  return k.source != nullptr ? std::string(static_cast<const char*>(k.source), k.source_size)
                             : std::string();
}

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v, &end, 10);
  if (end == v || *end != '\0') {
    log::warn("cache", std::string(name) + "='" + v + "' is not a byte count; using default");
    return fallback;
  }
  return n;
}

}  // namespace

BlobStoreConfig BlobStoreConfig::from_environment() {
  BlobStoreConfig c;
  const std::string root = cache_directory();
  c.dir = root.empty() ? std::string() : root + "/programs";
  c.max_bytes = env_u64("SPARKLE_CACHE_MAX_BYTES", c.max_bytes);
  const char* disable = std::getenv("SPARKLE_CACHE_DISABLE");
  c.enabled = !c.dir.empty() && !(disable != nullptr && std::strcmp(disable, "1") == 0);
  c.core_build_id = detail::kBuildId;
  return c;
}

BlobStore::BlobStore(BlobStoreConfig config) : config_(std::move(config)) {}

BlobStore& BlobStore::instance() {
  static BlobStore store(BlobStoreConfig::from_environment());
  return store;
}

EntryHeader BlobStore::entry_header(const sparkle_blob_key& k, double compile_ms,
                                    const std::string& payload_sha, uint64_t payload_size) const {
  EntryHeader h;
  const std::string source = source_of(k);
  h.fields = {config_.core_build_id,
              str(k.plugin),
              str(k.plugin_build_id),
              str(k.kind),
              str(k.name),
              str(k.device_fingerprint),
              str(k.options),
              sha256_hex(source.data(), source.size())};
  h.compile_ms = compile_ms;
  h.payload_size = payload_size;
  h.payload_sha = payload_sha;
  return h;
}

std::string BlobStore::path_of(const sparkle_blob_key& k) const {
  Sha256 s;
  s.field("sparkle-blob-1").field(config_.core_build_id);
  for (const char* f :
       {k.plugin, k.plugin_build_id, k.kind, k.name, k.device_fingerprint, k.options})
    s.field(str(f));
  s.field(source_of(k));
  return config_.dir + "/" + s.hex() + kSuffix;
}

void BlobStore::warn_once(const std::string& what, const std::string& message) {
  std::lock_guard lock(mutex_);
  if (warned_.insert(what).second) log::warn("cache", message);
}

std::optional<std::string> BlobStore::get(const sparkle_blob_key& key, double* compile_ms) {
  if (!config_.enabled) return std::nullopt;
  const std::string path = path_of(key);
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) return std::nullopt;  // a plain miss
  EntryHeader h;
  std::string payload, why;
  if (read_entry_file(path, config_.max_bytes, &h, &payload, &why)) {
    const EntryHeader want = entry_header(key, 0, h.payload_sha, h.payload_size);
    static const char* names[] = {"core build",         "plugin",  "plugin build", "kind", "name",
                                  "device fingerprint", "options", "source"};
    for (size_t i = 0; i < want.fields.size() && why.empty(); ++i)
      if (h.fields[i] != want.fields[i])
        why = std::string("belongs to another ") + names[i] + " ('" +
              printable(h.fields[i].substr(0, 60)) + "')";
  }
  if (!why.empty()) {
    // A folder in the entry's place stays (it is not ours to remove); the
    // rest is replaced by the next put.
    warn_once(path, "cache entry " + path + " " + why + "; it will be recompiled" +
                        (why == "not a regular file" ? "" : " and replaced"));
    return std::nullopt;
  }
  // Most recently used: the eviction order is by modification time.
  ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);
  if (compile_ms) *compile_ms = h.compile_ms;
  return payload;
}

void BlobStore::put(const sparkle_blob_key& key, const void* data, size_t size, double compile_ms) {
  if (!config_.enabled || !writable_) return;
  const std::string_view payload(static_cast<const char*>(data), size);
  const std::string file =
      encode_entry(entry_header(key, compile_ms, sha256_hex(data, size), size), payload);
  if (file.size() > config_.max_bytes) {
    warn_once("full", "cache full: an entry of " + std::to_string(file.size()) +
                          " bytes exceeds SPARKLE_CACHE_MAX_BYTES=" +
                          std::to_string(config_.max_bytes) + "; not cached");
    return;
  }
  const std::string path = path_of(key);
  std::string why;
  if (!write_file_atomically(path, file, &why)) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      warn_once(path, "cache entry " + path + " is a directory; not replaced");
      return;
    }
    writable_ = false;
    warn_once("write", "cache folder " + config_.dir + " is not writable (" + why +
                           "); programs will not be cached this run");
    return;
  }
  evict_to_fit(path);
}

void BlobStore::reject(const sparkle_blob_key& key, const std::string& why) {
  const std::string path = path_of(key);
  warn_once(path, "cache entry " + path + " refused by the device (" + why + "); recompiling");
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) fs::remove(path, ec);
}

void BlobStore::evict_to_fit(const std::string& keep) {
  std::lock_guard lock(mutex_);
  struct Item {
    fs::file_time_type time;
    uint64_t bytes;
    fs::path path;
  };
  std::vector<Item> items;
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(config_.dir, ec)) {
    if (e.path().extension() != kSuffix || !e.is_regular_file(ec)) continue;
    const uint64_t bytes = e.file_size(ec);
    items.push_back({e.last_write_time(ec), bytes, e.path()});
    total += bytes;
  }
  if (total <= config_.max_bytes) return;
  std::sort(items.begin(), items.end(), [](auto& a, auto& b) { return a.time < b.time; });
  for (const auto& item : items) {
    if (total <= config_.max_bytes) break;
    if (item.path == keep) continue;
    if (fs::remove(item.path, ec)) total -= item.bytes;
  }
}

std::vector<BlobInfo> BlobStore::list() const {
  std::vector<BlobInfo> out;
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (const auto& e : fs::directory_iterator(config_.dir, ec)) {
    if (e.path().extension() != kSuffix) continue;
    BlobInfo info;
    info.file = e.path().string();
    info.bytes = e.is_regular_file(ec) ? e.file_size(ec) : 0;
    info.age_s =
        std::chrono::duration_cast<std::chrono::seconds>(now - e.last_write_time(ec)).count();
    // Headers only: listing checks sizes and the header checksum but does
    // not read every payload.
    EntryHeader h;
    std::string why;
    if (!read_entry_file(info.file, config_.max_bytes, &h, nullptr, &why)) {
      info.problem = why;
    } else {
      info.plugin = h.fields[1];
      info.kind = h.fields[3];
      info.name = h.fields[4];
      info.device_fingerprint = h.fields[5];
      info.compile_ms = h.compile_ms;
      if (h.fields[0] != config_.core_build_id) info.problem = "stale (other core build)";
    }
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.age_s < b.age_s; });
  return out;
}

size_t BlobStore::clear() {
  size_t removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(config_.dir, ec)) {
    const auto name = e.path().filename().string();
    if (e.path().extension() == kSuffix || name.find(".blob.tmp.") != std::string::npos)
      removed += fs::remove_all(e.path(), ec) > 0 ? 1 : 0;
  }
  return removed;
}

}  // namespace sparkle::cache
