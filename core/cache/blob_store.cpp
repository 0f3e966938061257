// On-disk layout of an entry (little-endian):
//   "SPKBLOB1"                    magic + format version
//   u32 header_size, header bytes, 32-byte SHA-256 of the header
//   payload (header says its size and SHA-256)
// The header holds, length-prefixed: core build id, plugin, plugin build
// id, kind, name, device fingerprint, options, SHA-256 of the source, then
// compile ms (f64), payload size (u64), payload SHA-256 (hex).
#include "cache/blob_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "cache/cache_dir.hpp"
#include "cache/sha256.hpp"
#include "log/log.hpp"

namespace sparkle::detail {
extern const char* const kBuildId;
}

namespace sparkle::cache {
namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'S', 'P', 'K', 'B', 'L', 'O', 'B', '1'};
constexpr const char* kSuffix = ".blob";

std::string str(const char* s) { return s != nullptr ? s : ""; }

std::string source_of(const sparkle_blob_key& k) {
  return k.source != nullptr ? std::string(static_cast<const char*>(k.source), k.source_size)
                             : std::string();
}

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>(v >> (8 * i));
}

// Reads the header fields back; false if they do not parse.
struct Header {
  std::vector<std::string> fields;  // 8 strings, see the layout above
  double compile_ms = 0;
  uint64_t payload_size = 0;
  std::string payload_sha;
};

bool parse_header(const std::string& h, Header* out) {
  size_t pos = 0;
  auto u64 = [&](uint64_t* v) {
    if (pos + 8 > h.size()) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i) *v |= uint64_t{static_cast<uint8_t>(h[pos + i])} << (8 * i);
    pos += 8;
    return true;
  };
  auto string = [&](std::string* s) {
    uint64_t n = 0;
    if (!u64(&n) || n > h.size() - pos) return false;
    *s = h.substr(pos, n);
    pos += n;
    return true;
  };
  out->fields.resize(8);
  for (auto& f : out->fields)
    if (!string(&f)) return false;
  uint64_t ms_bits = 0;
  if (!u64(&ms_bits) || !u64(&out->payload_size) || !string(&out->payload_sha)) return false;
  std::memcpy(&out->compile_ms, &ms_bits, sizeof ms_bits);
  return pos == h.size();
}

// Splits a file into header and payload, checking magic and header checksum.
bool split_entry(const std::string& file, std::string* header, std::string* payload,
                 std::string* why) {
  if (file.size() < sizeof kMagic + 4 + 32) {
    *why = file.empty() ? "empty file" : "truncated (" + std::to_string(file.size()) + " bytes)";
    return false;
  }
  if (std::memcmp(file.data(), kMagic, sizeof kMagic) != 0) {
    *why = "not a sparkle cache entry of this format version";
    return false;
  }
  uint32_t hsize = 0;
  for (int i = 0; i < 4; ++i) hsize |= uint32_t{static_cast<uint8_t>(file[8 + i])} << (8 * i);
  if (hsize > file.size() - 12 - 32) {
    *why = "truncated header";
    return false;
  }
  *header = file.substr(12, hsize);
  const std::string stored_sha = file.substr(12 + hsize, 32);
  const auto sha = Sha256().update(*header).digest();
  if (std::memcmp(sha.data(), stored_sha.data(), 32) != 0) {
    *why = "corrupt header (checksum mismatch)";
    return false;
  }
  *payload = file.substr(12 + hsize + 32);
  return true;
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

std::string BlobStore::serialize_header(const sparkle_blob_key& k, double compile_ms,
                                        const std::string& payload_sha,
                                        uint64_t payload_size) const {
  std::string h;
  const std::string source = source_of(k);
  for (const std::string& f :
       {config_.core_build_id, str(k.plugin), str(k.plugin_build_id), str(k.kind), str(k.name),
        str(k.device_fingerprint), str(k.options), sha256_hex(source.data(), source.size())}) {
    put_u64(h, f.size());
    h += f;
  }
  uint64_t ms_bits = 0;
  std::memcpy(&ms_bits, &compile_ms, sizeof ms_bits);
  put_u64(h, ms_bits);
  put_u64(h, payload_size);
  put_u64(h, payload_sha.size());
  h += payload_sha;
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
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) return std::nullopt;  // a plain miss
  if (!fs::is_regular_file(status)) {
    warn_once(path, "cache entry " + path + " is not a regular file; skipped");
    return std::nullopt;
  }
  std::string file, header, payload, why;
  if (!read_file(path, &file)) {
    warn_once(path, "cannot read cache entry " + path + "; skipped");
    return std::nullopt;
  }
  Header h;
  if (split_entry(file, &header, &payload, &why) && !parse_header(header, &h))
    why = "unreadable header";
  if (why.empty()) {
    const std::string expected_sha = h.payload_sha;
    const Header want = [&] {
      Header w;
      parse_header(serialize_header(key, 0, expected_sha, h.payload_size), &w);
      return w;
    }();
    static const char* names[] = {"core build",         "plugin",  "plugin build", "kind", "name",
                                  "device fingerprint", "options", "source"};
    for (size_t i = 0; i < 8 && why.empty(); ++i)
      if (h.fields[i] != want.fields[i])
        why = std::string("belongs to another ") + names[i] + " ('" + h.fields[i].substr(0, 60) +
              "')";
    if (why.empty() && payload.size() != h.payload_size)
      why = "truncated payload (" + std::to_string(payload.size()) + " of " +
            std::to_string(h.payload_size) + " bytes)";
    if (why.empty() && sha256_hex(payload.data(), payload.size()) != h.payload_sha)
      why = "corrupt payload (checksum mismatch)";
  }
  if (!why.empty()) {
    warn_once(path, "cache entry " + path + " " + why + "; it will be recompiled and replaced");
    return std::nullopt;
  }
  // Most recently used: the eviction order is by modification time.
  ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);
  if (compile_ms) *compile_ms = h.compile_ms;
  return payload;
}

void BlobStore::put(const sparkle_blob_key& key, const void* data, size_t size, double compile_ms) {
  if (!config_.enabled || !writable_) return;
  const std::string payload(static_cast<const char*>(data), size);
  const std::string header =
      serialize_header(key, compile_ms, sha256_hex(payload.data(), payload.size()), size);
  std::string file(kMagic, sizeof kMagic);
  for (int i = 0; i < 4; ++i) file += static_cast<char>(header.size() >> (8 * i));
  file += header;
  const auto sha = Sha256().update(header).digest();
  file.append(reinterpret_cast<const char*>(sha.data()), sha.size());
  file += payload;
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
    std::string file, header, payload, why;
    Header h;
    if (!e.is_regular_file(ec) || !read_file(info.file, &file)) {
      info.problem = "unreadable";
    } else if (!split_entry(file, &header, &payload, &why) || !parse_header(header, &h)) {
      info.problem = why.empty() ? "unreadable header" : why;
    } else {
      info.plugin = h.fields[1];
      info.kind = h.fields[3];
      info.name = h.fields[4];
      info.device_fingerprint = h.fields[5];
      info.compile_ms = h.compile_ms;
      if (h.fields[0] != config_.core_build_id)
        info.problem = "stale (other core build)";
      else if (payload.size() != h.payload_size)
        info.problem = "truncated payload";
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
