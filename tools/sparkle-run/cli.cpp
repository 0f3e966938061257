// Helpers shared by the sparkle-run subcommands.
#include "cli.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

namespace sparkle::cli {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (ch < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", ch);
          out += buf;
        } else {
          out += static_cast<char>(ch);
        }
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::vector<float> random_tensor(int64_t count, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(count));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto& x : v) x = dist(rng);
  return v;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t m = values.size() / 2;
  return values.size() % 2 ? values[m] : 0.5 * (values[m - 1] + values[m]);
}

Timing time_conv2d(Engine& engine, const Conv2dDesc& d, const std::vector<float>& x,
                   const std::vector<float>& w, const std::vector<float>& bias,
                   std::vector<float>& y, const RunOptions& run, int64_t warmup, int64_t repeat,
                   bool wall_only) {
  Timing t;
  for (int64_t i = 0; i < warmup; ++i) t.last = engine.conv2d(d, x, w, bias, y, run);
  std::vector<double> device_ms, wall_ms;
  for (int64_t i = 0; i < repeat; ++i) {
    t.last = engine.conv2d(d, x, w, bias, y, run);
    if (t.last.device_ms > 0) device_ms.push_back(t.last.device_ms);
    wall_ms.push_back(t.last.wall_ms);
  }
  const bool every_run_timed = !device_ms.empty() && device_ms.size() == wall_ms.size();
  t.device_timed = !wall_only && every_run_timed;
  t.wall_ms = median(wall_ms);
  if (every_run_timed) t.kernel_ms = median(device_ms);
  t.ms = t.device_timed ? t.kernel_ms : t.wall_ms;
  return t;
}

void check_fits_in_memory(const std::string& name, int64_t elements) {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return;
  const double bytes = static_cast<double>(elements) * sizeof(float);
  const double total = static_cast<double>(pages) * static_cast<double>(page);
  if (bytes > total) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s needs %.1f GB, more than this machine's %.1f GB of memory",
                  name.c_str(), bytes / 1e9, total / 1e9);
    throw Error(ErrorCode::invalid_argument, buf);
  }
}

}  // namespace sparkle::cli
