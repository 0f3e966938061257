// TuningStore: the tuner's records in the cache folder. Per (plugin, plugin
// build, device fingerprint, op signature) it keeps the winning variant and
// every timing that chose it. One text file per device fingerprint,
// <cache>/tuning-v1/<fingerprint>.txt, one record per line, each line with
// its own checksum: a corrupt, truncated or foreign line is ignored with one
// warning, and the others still count. Files are replaced atomically.
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sparkle::tune {

// The format version: part of the folder name, so a later format starts
// empty instead of misreading this one.
constexpr const char* kTuningDirName = "tuning-v1";

struct TimingRecord {
  std::string variant;
  std::string family;
  double median_ms = -1, min_ms = -1, max_ms = -1;
  double plan_ms = 0;
  double max_rel_error = -1;
  std::string error;  // why it was dropped; empty if it ran correctly
  std::vector<double> samples_ms;
};

struct OpRecord {
  std::string plugin, plugin_build, fingerprint, op;
  std::string winner;
  double winner_ms = -1;
  std::string default_variant;
  double default_ms = -1;
  std::string timer;     // "device" or "wall"
  int64_t tuned_at = 0;  // unix seconds
  double seconds = 0;    // what tuning the op took
  std::vector<TimingRecord> timings;
};

class TuningStore {
 public:
  // dir: where the per-fingerprint files live; empty means nothing persists.
  explicit TuningStore(std::string dir);
  // The store in the cache folder (SPARKLE_CACHE_DIR etc.), or a store that
  // keeps nothing when there is none.
  static TuningStore& instance();

  std::optional<OpRecord> find(const std::string& plugin, const std::string& plugin_build,
                               const std::string& fingerprint, const std::string& op);
  // The newest record of (fingerprint, op) from any plugin build.
  std::optional<OpRecord> find_any_build(const std::string& fingerprint, const std::string& op);
  // Adds or replaces the record of its key and writes the file. False (with
  // one warning) when the file cannot be written; the record still counts
  // in this process.
  bool put(const OpRecord& record);
  // Every valid record of a fingerprint.
  std::vector<OpRecord> records(const std::string& fingerprint);
  const std::string& directory() const { return dir_; }
  // Forgets what was loaded (tests reload after corrupting files).
  void reload();

  // One record as a line and back; exposed for tests. parse_line returns
  // nullopt for anything malformed or with a wrong checksum.
  static std::string format_line(const OpRecord& r);
  static std::optional<OpRecord> parse_line(const std::string& line);

 private:
  struct File {
    bool loaded = false;
    std::vector<OpRecord> records;
  };
  File& load_locked(const std::string& fingerprint);
  std::string path_of(const std::string& fingerprint) const;

  std::string dir_;
  std::mutex mutex_;
  std::map<std::string, File> files_;
  std::set<std::string> warned_;
};

}  // namespace sparkle::tune
