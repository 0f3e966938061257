// Set-up diagnostics for `sparkle-run devices --verbose` and for programs
// that want to say why a device is missing: what the plugin registry
// searches and skips, the environment in effect, and hints about drivers
// and device nodes. Nothing here loads a plugin.
#pragma once

#include <sparkle/engine.hpp>
#include <string>
#include <utility>
#include <vector>

namespace sparkle {

struct SearchedFolder {
  std::string path;    // as configured
  std::string origin;  // "SPARKLE_PLUGIN_PATH", "next to the executable", ...
  // Empty for a folder that was searched, else why it was not ("does not
  // exist", "not a folder", "same folder as an earlier entry").
  std::string problem;
  // Files in it that are not plugins by name, each "NAME: why".
  std::vector<std::string> ignored;
};

// The plugin folders in search order, as Engine(options) would search them.
std::vector<SearchedFolder> plugin_search(const EngineOptions& options = {});

// The variables that change what sparkle or its drivers do (SPARKLE_*,
// XDG_CACHE_HOME, XDG_RUNTIME_DIR, Mesa's and glvnd's), name and value.
std::vector<std::pair<std::string, std::string>> environment_in_effect();

// Actionable hints about this machine: no EGL vendor library registered, no
// /dev/dri, render nodes this user cannot open, no amdgpu node, plugin
// folders that do not exist, files that look like misnamed plugins.
std::vector<std::string> setup_hints(const EngineOptions& options = {});

}  // namespace sparkle

namespace sparkle {

// Validates the environment variables the core reads (SPARKLE_DEVICE,
// SPARKLE_CACHE_*, SPARKLE_LOG_LEVEL, SPARKLE_VERBOSE,
// SPARKLE_HOST_MEMORY_LIMIT, SPARKLE_PLAN_CACHE_CAPACITY) by one rule each, and warns about
// SPARKLE_* names nobody reads. Throws Error(invalid_argument) naming the first bad one;
// sparkle-run calls it first and exits 2. Backend variables (SPARKLE_CPU_*, SPARKLE_GL_*, ...) are
// validated by their plugins.
void check_environment();

}  // namespace sparkle
