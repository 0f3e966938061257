// Plugin discovery and validation. Boost.DLL is used header-only with
// std::filesystem (BOOST_DLL_USE_STD_FS), so no Boost library is linked.
#define BOOST_DLL_USE_STD_FS
#include "registry/plugin_registry.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sparkle/text.hpp>
#include <sstream>

#include "cache/blob_store.hpp"
#include "cache/cache_stats.hpp"
#include "log/log.hpp"
#include "registry/elf_check.hpp"

struct sparkle_status_t {
  sparkle_code code;
  std::string message;
};

namespace sparkle::registry {
namespace fs = std::filesystem;

#ifndef SPARKLE_INSTALL_PLUGIN_DIR
#define SPARKLE_INSTALL_PLUGIN_DIR ""
#endif

namespace {

sparkle_status make_status(sparkle_code code, const char* message) {
  try {
    return new sparkle_status_t{code, message != nullptr ? message : ""};
  } catch (...) {
    return nullptr;  // out of memory while reporting: nothing better to do
  }
}

void plugin_log(sparkle_log_level level, const char* plugin, const char* message) {
  try {
    log::write(level, plugin != nullptr ? plugin : "plugin", message != nullptr ? message : "");
  } catch (...) {
  }
}

void* blob_get(const sparkle_blob_key* key, size_t* size) {
  try {
    double compile_ms = 0;
    auto blob = cache::BlobStore::instance().get(*key, &compile_ms);
    if (!blob) return nullptr;
    void* copy = std::malloc(blob->size() > 0 ? blob->size() : 1);
    if (copy == nullptr) return nullptr;
    std::memcpy(copy, blob->data(), blob->size());
    *size = blob->size();
    cache::counters().saved_us += static_cast<int64_t>(compile_ms * 1000);
    return copy;
  } catch (...) {
    return nullptr;
  }
}

void blob_release(void* data) { std::free(data); }

void blob_put(const sparkle_blob_key* key, const void* data, size_t size, double compile_ms) {
  try {
    cache::BlobStore::instance().put(*key, data, size, compile_ms);
  } catch (...) {
  }
}

void blob_reject(const sparkle_blob_key* key, const char* why) {
  try {
    cache::BlobStore::instance().reject(*key, why != nullptr ? why : "");
  } catch (...) {
  }
}

void cache_event(sparkle_cache_event event, double ms) { cache::record_event(event, ms); }

const sparkle_host_services kHost = {sizeof(sparkle_host_services),
                                     SPARKLE_PLUGIN_ABI_VERSION,
                                     &make_status,
                                     &plugin_log,
                                     &blob_get,
                                     &blob_release,
                                     &blob_put,
                                     &blob_reject,
                                     &cache_event};

std::string own_library_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&own_library_dir), &info) == 0 || info.dli_fname == nullptr)
    return {};
  std::error_code ec;
  auto p = fs::canonical(info.dli_fname, ec);
  return ec ? std::string{} : p.parent_path().string();
}

std::string executable_dir() {
  std::error_code ec;
  auto p = fs::canonical("/proc/self/exe", ec);
  return ec ? std::string{} : p.parent_path().string();
}

// The members a v1.0 descriptor must have, with their names for messages.
struct Required {
  const char* name;
  bool present;
};

// A plugin file loaded and initialised once per process, shared by every
// Engine: plugins keep global state (one GL thread, one device list), so a
// second init or an early shutdown by another Engine would break the first.
struct SharedPlugin {
  std::shared_ptr<boost::dll::shared_library> library;
  // The plugin's descriptor copied into a host-sized struct: members past
  // the plugin's struct_size (added in later minors) read as NULL.
  sparkle_plugin normalized{};
  const sparkle_plugin* api = nullptr;  // &normalized
  ~SharedPlugin() {
    try {
      if (api != nullptr && api->shutdown != nullptr) api->shutdown();
    } catch (...) {
    }
  }
};

std::mutex& shared_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::string, std::weak_ptr<SharedPlugin>>& shared_plugins() {
  static std::map<std::string, std::weak_ptr<SharedPlugin>> loaded;
  return loaded;
}

// Boost.DLL wraps dlerror's text as "boost::dll::shared_library::load()
// failed (dlerror system message: TEXT): <strerror of a stale errno>"; the
// errno part is unrelated noise ("Bad file descriptor"), so only TEXT is kept.
std::string dlopen_message(const std::string& what) {
  const std::string tag = "(dlerror system message: ";
  const size_t a = what.find(tag), b = what.rfind("): ");
  if (a == std::string::npos || b == std::string::npos || b < a + tag.size()) return what;
  return what.substr(a + tag.size(), b - a - tag.size());
}

// Why a directory entry named like a plugin is not a file to open, or "".
std::string link_problem(const fs::path& f) {
  std::error_code ec;
  const auto link = fs::symlink_status(f, ec);
  if (ec) return "cannot stat: " + ec.message();
  const auto target = fs::status(f, ec);
  if (ec) {
    if (!fs::is_symlink(link)) return "cannot stat: " + ec.message();
    std::error_code read_ec;
    const auto to = fs::read_symlink(f, read_ec).string();
    if (ec == std::errc::too_many_symbolic_link_levels) return "symbolic link loop (" + to + ")";
    if (ec == std::errc::no_such_file_or_directory) return "dangling symbolic link to " + to;
    return "symbolic link to " + to + " cannot be followed: " + ec.message();
  }
  if (fs::is_regular_file(target)) return {};
  const char* kind = fs::is_fifo(target)        ? "a FIFO"
                     : fs::is_directory(target) ? "a directory"
                     : fs::is_socket(target)    ? "a socket"
                                                : "a device";
  return std::string("not a regular file (") + kind +
         (fs::is_symlink(link) ? ", through a link)" : ")");
}

std::string abi_string(uint32_t v) {
  return std::to_string(v >> 16) + "." + std::to_string(v & 0xffff);
}

}  // namespace

const sparkle_host_services* host_services() { return &kHost; }

namespace {

const char* kind_name(sparkle_device_kind kind) {
  switch (kind) {
    case SPARKLE_DEVICE_CPU:
      return "cpu";
    case SPARKLE_DEVICE_GPU:
      return "gpu";
    case SPARKLE_DEVICE_SOFTWARE_GPU:
      return "software-gpu";
    case SPARKLE_DEVICE_SIMULATED:
      return "simulated";
  }
  return "unknown";
}

}  // namespace

std::optional<DeviceProperties> describe_device(const sparkle_plugin* api, size_t index,
                                                std::string* why) {
  sparkle_device_info info{};
  info.struct_size = sizeof(info);
  if (sparkle_status st = api->device_info(index, &info); st != nullptr) {
    const std::string message = take_message(st);
    if (why != nullptr) *why = message;
    return std::nullopt;
  }
  DeviceProperties props;
  props.backend = api->name;
  props.index = index;
  props.name = props.backend + ":" + std::to_string(index);
  props.kind = kind_name(info.kind);
  props.description = info.description != nullptr ? info.description : "";
  props.fingerprint = info.fingerprint != nullptr ? info.fingerprint : "";
  for (size_t p = 0; p < info.property_count; ++p)
    props.properties.emplace_back(info.properties[p].key ? info.properties[p].key : "",
                                  info.properties[p].value ? info.properties[p].value : "");
  return props;
}

std::string take_message(sparkle_status status, sparkle_code* code) {
  if (status == nullptr) {
    if (code != nullptr) *code = SPARKLE_INTERNAL;
    return "plugin failed without a status (out of memory?)";
  }
  std::unique_ptr<sparkle_status_t> owned(status);
  if (code != nullptr) *code = owned->code;
  return owned->message;
}

void throw_if_error(sparkle_status status, const std::string& context) {
  if (status == nullptr) return;
  sparkle_code code = SPARKLE_INTERNAL;
  std::string message = take_message(status, &code);
  if (code == SPARKLE_OK) code = SPARKLE_INTERNAL;
  throw Error(static_cast<ErrorCode>(code), context + ": " + message);
}

std::vector<std::pair<std::string, std::string>> search_folders(const EngineOptions& options) {
  std::vector<std::pair<std::string, std::string>> dirs;
  for (const auto& d : options.plugin_paths) dirs.emplace_back(d, "EngineOptions::plugin_paths");
  if (!options.use_default_paths) return dirs;
  if (const char* env = std::getenv("SPARKLE_PLUGIN_PATH")) {
    std::stringstream ss(env);
    std::string dir;
    while (std::getline(ss, dir, ':'))
      if (!dir.empty()) dirs.emplace_back(dir, "SPARKLE_PLUGIN_PATH");
  }
  if (auto exe = executable_dir(); !exe.empty())
    dirs.emplace_back(exe + "/../lib/sparkle/plugins", "next to the executable");
  if (auto lib = own_library_dir(); !lib.empty())
    dirs.emplace_back(lib + "/sparkle/plugins", "next to libsparkle");
  if (std::string(SPARKLE_INSTALL_PLUGIN_DIR).size() > 0)
    dirs.emplace_back(SPARKLE_INSTALL_PLUGIN_DIR, "install libdir");
  return dirs;
}

std::vector<std::string> search_path(const EngineOptions& options) {
  std::vector<std::string> dirs;
  for (const auto& [dir, origin] : search_folders(options)) dirs.push_back(dir);
  return dirs;
}

bool is_plugin_file_name(const std::string& name) {
  return name.rfind("libsparkle-", 0) == 0 && name.size() > 14 &&
         name.compare(name.size() - 3, 3, ".so") == 0;
}

PluginRegistry::PluginRegistry(const EngineOptions& options) {
  std::set<fs::path> seen_dirs;
  std::map<fs::path, std::string> seen_files;  // canonical path -> first path it was found at
  for (const auto& dir : search_path(options)) {
    std::error_code ec;
    // Relative entries are resolved here once; the current directory itself
    // is never searched implicitly (only if the caller names it).
    const fs::path canon = fs::canonical(dir, ec);
    if (ec || !fs::is_directory(canon, ec)) {
      log::debug("registry", "plugin folder " + printable(dir) +
                                 " skipped: " + (ec ? ec.message() : std::string("not a folder")));
      continue;
    }
    if (!seen_dirs.insert(canon).second) continue;
    log::debug("registry", "searching " + printable(canon.string()));
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(canon, ec)) {
      const std::string name = entry.path().filename().string();
      if (is_plugin_file_name(name))
        files.push_back(entry.path());
      else
        log::debug("registry", "ignoring " + printable(entry.path().string()) +
                                   ": not named libsparkle-<name>.so");
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      // Links are followed, but only to regular files; a dangling or looping
      // link, a FIFO (opening it would block start-up) or a folder gets a
      // row saying so instead of being dropped silently.
      const std::string skip = link_problem(f);
      if (!skip.empty()) {
        reject_file(f.string(), skip);
        continue;
      }
      const fs::path real = fs::canonical(f, ec);
      if (ec) {
        reject_file(f.string(), "cannot resolve: " + ec.message());
        continue;
      }
      if (auto [it, inserted] = seen_files.emplace(real, f.string()); !inserted) {
        reject_file(f.string(), "same file as " + it->second + "; loaded once");
        continue;
      }
      try_load(f.string());
    }
  }
}

void PluginRegistry::reject_file(const std::string& path, const std::string& why) {
  PluginRecord record;
  record.path = path;
  record.loaded = false;
  record.reason = why;
  log::warn("registry", "skipping plugin " + printable(path) + ": " + printable(why));
  records_.push_back(record);
}

PluginRegistry::~PluginRegistry() {
  // Later plugins first; each is shut down when its last Engine lets go.
  while (!plugins_.empty()) plugins_.pop_back();
}

void PluginRegistry::try_load(const std::string& path) {
  PluginRecord record;
  record.path = path;
  auto reject = [&](const std::string& why) {
    record.loaded = false;
    record.reason = why;
    log::warn("registry", "skipping plugin " + printable(path) + ": " + printable(why));
    records_.push_back(record);
  };

  std::error_code ec;
  const std::string key = fs::canonical(path, ec).string();
  std::lock_guard lock(shared_mutex());
  if (auto shared = shared_plugins()[key].lock()) {
    for (const auto& p : plugins_)
      if (std::string(shared->api->name) == p.api->name)
        return reject("backend name '" + std::string(shared->api->name) + "' already provided by " +
                      p.path);
    record.name = shared->api->name;
    record.version = shared->api->version != nullptr ? shared->api->version : "";
    record.loaded = true;
    if (shared->api->device_count() == 0) {
      const char* why =
          shared->api->unavailable_reason ? shared->api->unavailable_reason() : nullptr;
      record.reason = why != nullptr ? why : "no devices";
    }
    records_.push_back(record);
    plugins_.push_back({path, shared->api, shared});
    return;
  }

  // A truncated file would be mapped anyway and raise SIGBUS on first touch.
  if (const std::string why = plugin_file_problem(path); !why.empty())
    return reject("not a loadable shared object: " + why);
  std::shared_ptr<boost::dll::shared_library> lib;
  try {
    // RTLD_NOW: an unresolved symbol fails here, as a rejection, instead of
    // ending the process with exit 127 when lazy binding first calls it.
    // RTLD_LOCAL keeps each plugin's symbols to itself. RTLD_NODELETE keeps
    // its code mapped after the last Engine shuts it down: worker threads of
    // shared runtimes (oneTBB) outlive the plugin and may still run its
    // thread_local destructors at exit, which would jump into unmapped code.
    lib = std::make_shared<boost::dll::shared_library>(
        path, static_cast<boost::dll::load_mode::type>(RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE));
  } catch (const std::exception& e) {
    return reject("not a loadable shared object: " + dlopen_message(e.what()));
  }
  if (!lib->has(SPARKLE_PLUGIN_ENTRY_NAME))
    return reject(std::string("missing entry point '") + SPARKLE_PLUGIN_ENTRY_NAME + "'");

  const sparkle_plugin* api = nullptr;
  try {
    auto entry = lib->get<const sparkle_plugin*(uint32_t)>(SPARKLE_PLUGIN_ENTRY_NAME);
    api = entry(SPARKLE_PLUGIN_ABI_VERSION);
  } catch (const std::exception& e) {
    return reject(std::string("entry point threw: ") + e.what());
  } catch (...) {
    return reject("entry point threw a non-standard exception");
  }
  if (api == nullptr)
    return reject("entry point returned NULL: plugin does not support host ABI " +
                  abi_string(SPARKLE_PLUGIN_ABI_VERSION));
  if (SPARKLE_PLUGIN_ABI_MAJOR_OF(api->abi_version) != SPARKLE_PLUGIN_ABI_MAJOR)
    return reject("wrong ABI version: plugin has " + abi_string(api->abi_version) +
                  ", host expects " + abi_string(SPARKLE_PLUGIN_ABI_VERSION));
  // Checked against the v1.0 layout, never against the host's own size:
  // members appended later are treated as absent when a plugin's
  // struct_size does not reach them (ONNX Runtime's rule).
  if (api->struct_size < SPARKLE_PLUGIN_V1_0_SIZE)
    return reject("descriptor struct_size " + std::to_string(api->struct_size) +
                  " too small for ABI " + abi_string(api->abi_version) +
                  ", expected >= " + std::to_string(SPARKLE_PLUGIN_V1_0_SIZE));
  auto shared = std::make_shared<SharedPlugin>();
  std::memcpy(&shared->normalized, api, std::min<size_t>(api->struct_size, sizeof(sparkle_plugin)));
  api = &shared->normalized;
  if (api->name == nullptr || api->name[0] == '\0') return reject("descriptor has no name");
  record.name = api->name;
  record.version = api->version != nullptr ? api->version : "";
  const Required required[] = {
      {"init", api->init != nullptr},
      {"device_count", api->device_count != nullptr},
      {"device_info", api->device_info != nullptr},
      {"open_device", api->open_device != nullptr},
      {"close_device", api->close_device != nullptr},
      {"supports_conv2d", api->supports_conv2d != nullptr},
      {"buffer_create", api->buffer_create != nullptr},
      {"buffer_destroy", api->buffer_destroy != nullptr},
      {"buffer_upload", api->buffer_upload != nullptr},
      {"buffer_download", api->buffer_download != nullptr},
      {"plan_conv2d", api->plan_conv2d != nullptr},
      {"plan_destroy", api->plan_destroy != nullptr},
      {"enqueue_conv2d", api->enqueue_conv2d != nullptr},
      {"fence_poll", api->fence_poll != nullptr},
      {"fence_wait", api->fence_wait != nullptr},
      {"fence_destroy", api->fence_destroy != nullptr},
  };
  for (const auto& r : required)
    if (!r.present) return reject(std::string("descriptor member '") + r.name + "' is NULL");
  // The v1.3 queue group is all or nothing (buffer_map is optional in it).
  if (api->queue_create != nullptr) {
    const Required group[] = {
        {"queue_destroy", api->queue_destroy != nullptr},
        {"buffer_create_ex", api->buffer_create_ex != nullptr},
        {"enqueue_write", api->enqueue_write != nullptr},
        {"enqueue_read", api->enqueue_read != nullptr},
        {"enqueue_copy", api->enqueue_copy != nullptr},
        {"enqueue_conv2d_on", api->enqueue_conv2d_on != nullptr},
    };
    for (const auto& r : group)
      if (!r.present)
        return reject(std::string("descriptor has queue_create but member '") + r.name +
                      "' is NULL");
  }
  for (const auto& p : plugins_)
    if (record.name == p.api->name)
      return reject("backend name '" + record.name + "' already provided by " + p.path);

  sparkle_status st = nullptr;
  try {
    st = api->init(&kHost);
  } catch (const std::exception& e) {
    return reject(std::string("init threw: ") + e.what());
  } catch (...) {
    return reject("init threw a non-standard exception");
  }
  if (st != nullptr) {
    sparkle_code code = SPARKLE_INTERNAL;
    const std::string message = take_message(st, &code);
    // A bad value in the plugin's environment variables: the user asked for
    // something that cannot be, so no Engine starts without it (the rule of
    // the core's own variables, check_environment()).
    if (code == SPARKLE_INVALID_ARGUMENT)
      throw Error(ErrorCode::invalid_argument,
                  "the " + record.name + " backend refuses its configuration: " + message);
    return reject("init failed: " + message);
  }
  record.loaded = true;
  if (api->device_count() == 0) {
    const char* why = api->unavailable_reason != nullptr ? api->unavailable_reason() : nullptr;
    record.reason = why != nullptr ? why : "no devices";
    log::info("registry", "plugin " + path + " has no devices: " + record.reason);
  }
  records_.push_back(record);
  shared->library = lib;
  shared->api = api;
  shared_plugins()[key] = shared;
  plugins_.push_back({path, api, shared});
}

}  // namespace sparkle::registry
