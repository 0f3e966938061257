// Thread-tagged stderr logging with one write per line, so concurrent lines
// never interleave.
#include "log/log.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sparkle::log {
namespace {

sparkle_log_level threshold() {
  static const sparkle_log_level level = [] {
    const char* env = std::getenv("SPARKLE_LOG_LEVEL");
    if (env == nullptr) return SPARKLE_LOG_WARN;
    if (std::strcmp(env, "debug") == 0) return SPARKLE_LOG_DEBUG;
    if (std::strcmp(env, "info") == 0) return SPARKLE_LOG_INFO;
    if (std::strcmp(env, "error") == 0) return SPARKLE_LOG_ERROR;
    return SPARKLE_LOG_WARN;
  }();
  return level;
}

int thread_tag() {
  static std::atomic<int> next{0};
  thread_local const int tag = next.fetch_add(1);
  return tag;
}

const char* level_name(sparkle_log_level level) {
  switch (level) {
    case SPARKLE_LOG_DEBUG:
      return "debug";
    case SPARKLE_LOG_INFO:
      return "info";
    case SPARKLE_LOG_WARN:
      return "warning";
    case SPARKLE_LOG_ERROR:
      return "error";
  }
  return "log";
}

}  // namespace

bool enabled(sparkle_log_level level) { return level >= threshold(); }

namespace {
void emit(const char* label, const std::string& component, const std::string& message) {
  const std::string line = "sparkle[t" + std::to_string(thread_tag()) + "] " + label + ": " +
                           component + ": " + message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}
}  // namespace

void write(sparkle_log_level level, const std::string& component, const std::string& message) {
  if (enabled(level)) emit(level_name(level), component, message);
}

void note(const std::string& component, const std::string& message) {
  emit("note", component, message);
}

}  // namespace sparkle::log
