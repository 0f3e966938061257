// Set-up diagnostics (include/sparkle/diagnostics.hpp): reads folders, the
// environment and /dev, /sys; loads nothing.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <sparkle/diagnostics.hpp>
#include <sparkle/text.hpp>

#include "registry/plugin_registry.hpp"

extern char** environ;

namespace sparkle {
namespace fs = std::filesystem;

namespace {

// "sparkle-foo.so", "libsparkle_foo.so", "libsparkle-foo.so.1": meant as a
// plugin, but the registry only opens libsparkle-<name>.so.
bool looks_like_plugin(const std::string& name) {
  const bool shared_object = name.size() > 3 && (name.compare(name.size() - 3, 3, ".so") == 0 ||
                                                 name.find(".so.") != std::string::npos);
  return shared_object && name.find("sparkle") != std::string::npos;
}

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

// glvnd's EGL vendor files: __EGL_VENDOR_LIBRARY_FILENAMES, else the
// JSON files in __EGL_VENDOR_LIBRARY_DIRS or the default folders.
bool egl_vendor_registered() {
  if (std::getenv("__EGL_VENDOR_LIBRARY_FILENAMES") != nullptr) return true;
  std::string dirs =
      env_or("__EGL_VENDOR_LIBRARY_DIRS", "/etc/glvnd/egl_vendor.d:/usr/share/glvnd/egl_vendor.d");
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dirs.substr(start, end - start), ec))
      if (e.path().extension() == ".json") return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

std::vector<SearchedFolder> plugin_search(const EngineOptions& options) {
  std::vector<SearchedFolder> out;
  std::set<fs::path> seen;
  for (const auto& [dir, origin] : registry::search_folders(options)) {
    SearchedFolder f{dir, origin, {}, {}};
    std::error_code ec;
    const fs::path canon = fs::canonical(dir, ec);
    if (ec) {
      f.problem = ec == std::errc::no_such_file_or_directory ? "does not exist" : ec.message();
    } else if (!fs::is_directory(canon, ec)) {
      f.problem = "not a folder";
    } else if (!seen.insert(canon).second) {
      f.problem = "same folder as an earlier entry (" + canon.string() + ")";
    } else {
      for (const auto& e : fs::directory_iterator(canon, ec)) {
        const std::string name = e.path().filename().string();
        std::error_code dec;
        // Sub-folders are never searched and are not worth a row.
        if (registry::is_plugin_file_name(name) || e.is_directory(dec)) continue;
        f.ignored.push_back(name + ": not named libsparkle-<name>.so" +
                            (looks_like_plugin(name) ? " (a misnamed plugin?)" : ""));
      }
      std::sort(f.ignored.begin(), f.ignored.end());
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> environment_in_effect() {
  static const char* const kPrefixes[] = {"SPARKLE_", "MESA_",  "LIBGL_", "GALLIUM_",
                                          "EGL_",     "__EGL_", "__GLX_"};
  static const char* const kNames[] = {"XDG_CACHE_HOME", "XDG_RUNTIME_DIR", "LD_LIBRARY_PATH"};
  std::vector<std::pair<std::string, std::string>> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry = *e;
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = entry.substr(0, eq);
    bool wanted = std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
    for (const char* p : kPrefixes) wanted = wanted || name.rfind(p, 0) == 0;
    if (wanted) out.emplace_back(name, entry.substr(eq + 1));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> setup_hints(const EngineOptions& options) {
  std::vector<std::string> hints;
  bool any_folder = false;
  for (const auto& f : plugin_search(options)) {
    if (f.problem.empty()) any_folder = true;
    if (f.origin == "SPARKLE_PLUGIN_PATH" && f.problem == "does not exist")
      hints.push_back("SPARKLE_PLUGIN_PATH names " + printable(f.path) + ", which does not exist");
    for (const auto& name : f.ignored)
      if (name.find("misnamed") != std::string::npos)
        hints.push_back(printable(f.path) + "/" + printable(name.substr(0, name.find(':'))) +
                        " is not loaded: plugin files must be named libsparkle-<name>.so");
  }
  if (!any_folder)
    hints.push_back("no plugin folder exists: set SPARKLE_PLUGIN_PATH or check the install");
  if (!egl_vendor_registered())
    hints.push_back(
        "no EGL vendor library is registered (no .json in /usr/share/glvnd/egl_vendor.d): "
        "install libegl-mesa0 (Mesa) or the GPU vendor's driver; the OpenGL backend has no "
        "devices without one");
  std::error_code ec;
  if (!fs::is_directory("/dev/dri", ec)) {
    hints.push_back(
        "no /dev/dri: no GPU is visible to this process (in a container, pass it through, e.g. "
        "docker run --device /dev/dri); OpenGL can still use Mesa's software renderer");
  } else {
    bool render = false, usable = false, amdgpu = false;
    for (const auto& e : fs::directory_iterator("/dev/dri", ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("renderD", 0) != 0) continue;
      render = true;
      usable = usable || ::access(e.path().c_str(), R_OK | W_OK) == 0;
      std::error_code lec;
      const auto driver = fs::read_symlink("/sys/class/drm/" + name + "/device/driver", lec);
      amdgpu = amdgpu || (!lec && driver.filename() == "amdgpu");
    }
    if (!render)
      hints.push_back("/dev/dri has no render node (renderD*): GPU backends have no devices");
    else if (!usable)
      hints.push_back(
          "no render node in /dev/dri is readable and writable by this user: add the user to "
          "the 'render' group (or the node's group)");
    if (render && !amdgpu)
      hints.push_back("no amdgpu render node: the amdgpu backend has no devices on this machine");
  }
  if (std::getenv("XDG_RUNTIME_DIR") == nullptr)
    hints.push_back("XDG_RUNTIME_DIR is not set: Mesa prints a warning on every GL context");
  return hints;
}

}  // namespace sparkle
