// Environment variables that GPU backends read, parsed one way: an unset or
// empty variable means "not given", a malformed one is an error that names
// the variable and what it must be (never silently ignored).
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <sparkle/plugin.hpp>
#include <string>
#include <vector>

namespace sparkle::gpu {

// The value of name, or nullopt when it is unset or empty.
inline std::optional<std::string> env_string(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

// An integer in [min, max], or nullopt when unset. Throws
// plugin::Error(SPARKLE_INVALID_ARGUMENT) for anything else.
inline std::optional<int64_t> env_int(const char* name, int64_t min, int64_t max) {
  const auto text = env_string(name);
  if (!text) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text->c_str(), &end, 10);
  if (errno != 0 || end == text->c_str() || *end != '\0' || v < min || v > max) {
    throw plugin::Error(SPARKLE_INVALID_ARGUMENT,
                        std::string(name) + "=" + *text + " must be an integer in [" +
                            std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return v;
}

// One of `choices`, or nullopt when unset. Throws for anything else.
inline std::optional<std::string> env_choice(const char* name,
                                             const std::vector<std::string>& choices) {
  const auto text = env_string(name);
  if (!text) return std::nullopt;
  std::string list;
  for (const auto& c : choices) {
    if (*text == c) return text;
    list += (list.empty() ? "" : ", ") + c;
  }
  throw plugin::Error(SPARKLE_INVALID_ARGUMENT,
                      std::string(name) + "=" + *text + " must be one of " + list);
}

}  // namespace sparkle::gpu
