// Tuning records on disk: one checksummed line per op, per device file.
#include "tune/tuning_store.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "cache/cache_dir.hpp"
#include "cache/sha256.hpp"
#include "log/log.hpp"

namespace sparkle::tune {

namespace {

// Field text with the separators of the format escaped as %XX.
std::string escape(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (ch == '%' || ch == '\t' || ch == '\n' || ch == '\r' || ch == ';' || ch == ',' ||
        ch == '=' || ch == '|' || ch < 0x20) {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", ch);
      out += hex;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

bool unescape(const std::string& s, std::string* out) {
  out->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      *out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return false;
    char* end = nullptr;
    const std::string hex = s.substr(i + 1, 2);
    const long v = std::strtol(hex.c_str(), &end, 16);
    if (end != hex.c_str() + 2) return false;
    *out += static_cast<char>(v);
    i += 2;
  }
  return true;
}

std::string number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

bool parse_number(const std::string& s, double* v) {
  if (s.empty()) return false;
  char* end = nullptr;
  *v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

std::string checksum(const std::string& text) {
  return cache::sha256_hex(text.data(), text.size()).substr(0, 16);
}

std::string timing_text(const TimingRecord& t) {
  std::string samples;
  for (size_t i = 0; i < t.samples_ms.size(); ++i)
    samples += (i ? "|" : "") + number(t.samples_ms[i]);
  return escape(t.variant) + "," + escape(t.family) + "," + number(t.median_ms) + "," +
         number(t.min_ms) + "," + number(t.max_ms) + "," + number(t.plan_ms) + "," +
         number(t.max_rel_error) + "," + escape(t.error) + "," + samples;
}

bool parse_timing(const std::string& text, TimingRecord* t) {
  const auto f = split(text, ',');
  if (f.size() != 9) return false;
  if (!unescape(f[0], &t->variant) || !unescape(f[1], &t->family) ||
      !parse_number(f[2], &t->median_ms) || !parse_number(f[3], &t->min_ms) ||
      !parse_number(f[4], &t->max_ms) || !parse_number(f[5], &t->plan_ms) ||
      !parse_number(f[6], &t->max_rel_error) || !unescape(f[7], &t->error)) {
    return false;
  }
  t->samples_ms.clear();
  if (!f[8].empty()) {
    for (const auto& s : split(f[8], '|')) {
      double v = 0;
      if (!parse_number(s, &v)) return false;
      t->samples_ms.push_back(v);
    }
  }
  return !t->variant.empty();
}

bool same_key(const OpRecord& a, const OpRecord& b) {
  return a.plugin == b.plugin && a.plugin_build == b.plugin_build &&
         a.fingerprint == b.fingerprint && a.op == b.op;
}

}  // namespace

std::string TuningStore::format_line(const OpRecord& r) {
  std::string timings;
  for (size_t i = 0; i < r.timings.size(); ++i)
    timings += (i ? ";" : "") + timing_text(r.timings[i]);
  std::string line = "v1";
  const std::pair<const char*, std::string> fields[] = {
      {"plugin", escape(r.plugin)},
      {"build", escape(r.plugin_build)},
      {"fp", escape(r.fingerprint)},
      {"op", escape(r.op)},
      {"winner", escape(r.winner)},
      {"winner_ms", number(r.winner_ms)},
      {"default", escape(r.default_variant)},
      {"default_ms", number(r.default_ms)},
      {"timer", escape(r.timer)},
      {"tuned_at", std::to_string(r.tuned_at)},
      {"seconds", number(r.seconds)},
      {"timings", timings},
  };
  for (const auto& [k, v] : fields) line += std::string("\t") + k + "=" + v;
  return line + "\tcrc=" + checksum(line);
}

std::optional<OpRecord> TuningStore::parse_line(const std::string& line) {
  const size_t crc_at = line.rfind("\tcrc=");
  if (crc_at == std::string::npos || line.compare(0, 3, "v1\t") != 0) return std::nullopt;
  if (line.substr(crc_at + 5) != checksum(line.substr(0, crc_at))) return std::nullopt;
  OpRecord r;
  int seen = 0;
  for (const auto& field : split(line.substr(3, crc_at - 3), '\t')) {
    const size_t eq = field.find('=');
    if (eq == std::string::npos) return std::nullopt;
    const std::string key = field.substr(0, eq), value = field.substr(eq + 1);
    bool ok = true;
    double num = 0;
    if (key == "plugin") {
      ok = unescape(value, &r.plugin);
    } else if (key == "build") {
      ok = unescape(value, &r.plugin_build);
    } else if (key == "fp") {
      ok = unescape(value, &r.fingerprint);
    } else if (key == "op") {
      ok = unescape(value, &r.op);
    } else if (key == "winner") {
      ok = unescape(value, &r.winner);
    } else if (key == "winner_ms") {
      ok = parse_number(value, &r.winner_ms);
    } else if (key == "default") {
      ok = unescape(value, &r.default_variant);
    } else if (key == "default_ms") {
      ok = parse_number(value, &r.default_ms);
    } else if (key == "timer") {
      ok = unescape(value, &r.timer);
    } else if (key == "tuned_at") {
      ok = parse_number(value, &num);
      r.tuned_at = static_cast<int64_t>(num);
    } else if (key == "seconds") {
      ok = parse_number(value, &r.seconds);
    } else if (key == "timings") {
      if (!value.empty()) {
        for (const auto& t : split(value, ';')) {
          TimingRecord tr;
          if (!parse_timing(t, &tr)) return std::nullopt;
          r.timings.push_back(std::move(tr));
        }
      }
    } else {
      continue;  // a field a later minor added: ignored
    }
    if (!ok) return std::nullopt;
    ++seen;
  }
  if (seen < 12 || r.plugin.empty() || r.fingerprint.empty() || r.op.empty() || r.winner.empty())
    return std::nullopt;
  return r;
}

TuningStore::TuningStore(std::string dir) : dir_(std::move(dir)) {}

TuningStore& TuningStore::instance() {
  static TuningStore store([] {
    const std::string root = cache::cache_directory();
    return root.empty() ? std::string() : root + "/" + kTuningDirName;
  }());
  return store;
}

std::string TuningStore::path_of(const std::string& fingerprint) const {
  // Fingerprints are file-name safe ("gl-0123..."), but a plugin may send
  // anything: escape what is not.
  std::string name;
  for (unsigned char ch : fingerprint) {
    const bool safe = std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.';
    if (safe) {
      name += static_cast<char>(ch);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", ch);
      name += hex;
    }
  }
  return dir_ + "/" + name + ".txt";
}

TuningStore::File& TuningStore::load_locked(const std::string& fingerprint) {
  File& f = files_[fingerprint];
  if (f.loaded || dir_.empty()) {
    f.loaded = true;
    return f;
  }
  f.loaded = true;
  std::string text;
  const std::string path = path_of(fingerprint);
  if (!cache::read_file(path, &text)) return f;
  std::istringstream in(text);
  std::string line;
  int bad = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto r = parse_line(line);
    if (!r || r->fingerprint != fingerprint) {
      ++bad;
      continue;
    }
    // A later line of the same key replaces an earlier one.
    auto it = std::find_if(f.records.begin(), f.records.end(),
                           [&](const OpRecord& o) { return same_key(o, *r); });
    if (it != f.records.end()) {
      *it = std::move(*r);
    } else {
      f.records.push_back(std::move(*r));
    }
  }
  if (bad > 0 && warned_.insert(path).second) {
    log::warn("tune", path + ": " + std::to_string(bad) +
                          " corrupt or foreign tuning record(s) ignored; those ops count as "
                          "untuned and are replaced when tuned again");
  }
  return f;
}

std::optional<OpRecord> TuningStore::find(const std::string& plugin,
                                          const std::string& plugin_build,
                                          const std::string& fingerprint, const std::string& op) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& r : load_locked(fingerprint).records) {
    if (r.plugin == plugin && r.plugin_build == plugin_build && r.op == op) return r;
  }
  return std::nullopt;
}

std::optional<OpRecord> TuningStore::find_any_build(const std::string& fingerprint,
                                                    const std::string& op) {
  std::lock_guard<std::mutex> lock(mutex_);
  const OpRecord* best = nullptr;
  for (const auto& r : load_locked(fingerprint).records) {
    if (r.op == op && (best == nullptr || r.tuned_at > best->tuned_at)) best = &r;
  }
  if (best == nullptr) return std::nullopt;
  return *best;
}

std::vector<OpRecord> TuningStore::records(const std::string& fingerprint) {
  std::lock_guard<std::mutex> lock(mutex_);
  return load_locked(fingerprint).records;
}

bool TuningStore::put(const OpRecord& record) {
  std::lock_guard<std::mutex> lock(mutex_);
  File& f = load_locked(record.fingerprint);
  auto it = std::find_if(f.records.begin(), f.records.end(),
                         [&](const OpRecord& o) { return same_key(o, record); });
  if (it != f.records.end()) {
    *it = record;
  } else {
    f.records.push_back(record);
  }
  if (dir_.empty()) return false;
  // Merge with what another process may have written since we loaded.
  std::string text;
  std::vector<OpRecord> merged = f.records;
  if (cache::read_file(path_of(record.fingerprint), &text)) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      auto r = parse_line(line);
      if (!r || r->fingerprint != record.fingerprint) continue;
      const bool known = std::any_of(merged.begin(), merged.end(),
                                     [&](const OpRecord& o) { return same_key(o, *r); });
      if (!known) merged.push_back(std::move(*r));
    }
  }
  std::string out = "# sparkle tuning records, format 1: one op per line (docs/OPENGL.md)\n";
  for (const auto& r : merged) out += format_line(r) + "\n";
  std::string why;
  if (!cache::write_file_atomically(path_of(record.fingerprint), out, &why)) {
    if (warned_.insert("write:" + dir_).second)
      log::warn("tune", "tuning records not saved: " + why);
    return false;
  }
  f.records = std::move(merged);
  return true;
}

void TuningStore::reload() {
  std::lock_guard<std::mutex> lock(mutex_);
  files_.clear();
  warned_.clear();
}

}  // namespace sparkle::tune
