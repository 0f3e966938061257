// PluginRegistry: finds libsparkle-*.so files, validates each against the
// plugin ABI and keeps the accepted ones loaded for the registry's lifetime.
// A rejected plugin costs one warning line and never stops the engine.
#pragma once

#include <sparkle/plugin.h>

#include <memory>
#include <optional>
#include <sparkle/engine.hpp>
#include <string>
#include <vector>

namespace sparkle::registry {

struct LoadedPlugin {
  std::string path;
  const sparkle_plugin* api = nullptr;
  std::shared_ptr<void> library;  // process-wide: shut down and unmapped with the last user
};

// The folders searched, in order: explicit, SPARKLE_PLUGIN_PATH, then
// relative to the executable and to libsparkle, then the install libdir.
std::vector<std::string> search_path(const EngineOptions& options);
// The same, each with where it came from ("SPARKLE_PLUGIN_PATH", ...).
std::vector<std::pair<std::string, std::string>> search_folders(const EngineOptions& options);

// libsparkle-<name>.so: the only file names the registry looks at.
bool is_plugin_file_name(const std::string& name);

// The host-services table handed to every plugin.
const sparkle_host_services* host_services();

// Turns a status from a plugin into sparkle::Error (and frees it); no-op on
// success. `context` prefixes the message ("opengl: enqueue").
void throw_if_error(sparkle_status status, const std::string& context);
// Message and code of a status, freeing it.
std::string take_message(sparkle_status status, sparkle_code* code = nullptr);

// Device `index` of `api` as the host describes it ("cpu:0", kind, model,
// fingerprint, properties), or nullopt with the plugin's reason in *why.
std::optional<DeviceProperties> describe_device(const sparkle_plugin* api, size_t index,
                                                std::string* why);

class PluginRegistry {
 public:
  explicit PluginRegistry(const EngineOptions& options);
  ~PluginRegistry();
  PluginRegistry(const PluginRegistry&) = delete;
  PluginRegistry& operator=(const PluginRegistry&) = delete;

  const std::vector<PluginRecord>& records() const { return records_; }
  const std::vector<LoadedPlugin>& plugins() const { return plugins_; }

 private:
  void try_load(const std::string& path);
  // A row for a file that was not opened at all, and one warning line.
  void reject_file(const std::string& path, const std::string& why);

  std::vector<PluginRecord> records_;
  std::vector<LoadedPlugin> plugins_;
};

}  // namespace sparkle::registry
