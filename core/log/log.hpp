// Log lines on stderr, each tagged with a level, a component and a thread
// tag. SPARKLE_LOG_LEVEL (debug|info|warn|error, default warn) filters them.
#pragma once

#include <sparkle/plugin.h>

#include <string>

namespace sparkle::log {

bool enabled(sparkle_log_level level);
void write(sparkle_log_level level, const std::string& component, const std::string& message);

// Printed whatever the level (asked-for diagnostics such as dispatch lines).
void note(const std::string& component, const std::string& message);

inline void warn(const std::string& component, const std::string& message) {
  write(SPARKLE_LOG_WARN, component, message);
}
inline void info(const std::string& component, const std::string& message) {
  write(SPARKLE_LOG_INFO, component, message);
}
inline void debug(const std::string& component, const std::string& message) {
  write(SPARKLE_LOG_DEBUG, component, message);
}

}  // namespace sparkle::log
