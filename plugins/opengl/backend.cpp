// Entry point of libsparkle-opengl.so: finds EGL devices (one sparkle device
// per GPU), with no link-time dependency on libEGL or libGL.
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <sparkle/plugin.hpp>
#include <string>
#include <vector>

#include "../common/env.hpp"
#include "conv2d_program.hpp"
#include "conv2d_variants.hpp"
#include "gl_caps.hpp"
#include "gl_context.hpp"
#include "gl_device.hpp"
#include "gl_queue.hpp"
#include "program_cache.hpp"
#include "shader_templates.hpp"

namespace sparkle::opengl {
namespace {

using plugin::Error;

bool has_word(const char* list, const char* word) {
  if (list == nullptr) return false;
  const size_t n = std::strlen(word);
  for (const char* p = list; (p = std::strstr(p, word)) != nullptr; p += n) {
    if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ')) return true;
  }
  return false;
}

// SPARKLE_GL_DEVICE: the index of the one device to expose, or nullopt.
std::optional<int64_t> device_override() { return gpu::env_int("SPARKLE_GL_DEVICE", 0, INT32_MAX); }

// Every SPARKLE_GL_* variable, parsed by the function that uses it, at
// init: a bad value is an error naming it (SPARKLE_INVALID_ARGUMENT, so no
// Engine starts), never a silent default or a failure at the first conv.
void check_environment() {
  try {
    (void)device_override();
    (void)forced_compute_units();
    (void)dispatch_limit(0);
    (void)transfer_queues_requested();
    (void)program_cache_capacity();
    check_variant_environment();
  } catch (const Error& e) {
    throw Error(SPARKLE_INVALID_ARGUMENT, e.what());
  }
}

struct Found {
  std::shared_ptr<GlContext> ctx;
  plugin::DeviceEntry entry;
};

class GlBackend final : public plugin::Backend {
 public:
  GlBackend() {
    check_environment();  // outside the try: a bad value is an error, not "no devices"
    try {
      discover();
    } catch (const std::exception& e) {
      found_.clear();
      reason_ = e.what();
    }
  }

  ~GlBackend() override {
    forget_caps();
    found_.clear();  // joins the GL threads
    if (!xdg_dir_.empty()) rmdir(xdg_dir_.c_str());
  }

  std::vector<plugin::DeviceEntry> devices() override {
    std::vector<plugin::DeviceEntry> out;
    for (const auto& f : found_) out.push_back(f.entry);
    return out;
  }

  std::string unavailable_reason() override {
    return reason_.empty() ? "no EGL device gives OpenGL 4.5 compute" : reason_;
  }

  std::unique_ptr<plugin::Device> open_device(size_t index) override {
    if (index >= found_.size()) throw Error(SPARKLE_NOT_FOUND, "device index out of range");
    return std::make_unique<GlDevice>(found_[index].ctx);
  }

 private:
  void note(const std::string& why) {
    plugin::log(SPARKLE_LOG_DEBUG, why);
    if (!reason_.empty()) reason_ += "; ";
    reason_ += why;
  }

  // Mesa warns "XDG_RUNTIME_DIR is invalid" on stderr when it is unset; give
  // it a private empty directory instead (removed at shutdown).
  void ensure_runtime_dir() {
    if (std::getenv("XDG_RUNTIME_DIR") != nullptr) return;
    char tmpl[] = "/tmp/sparkle-xdg-XXXXXX";
    if (mkdtemp(tmpl) != nullptr) {
      xdg_dir_ = tmpl;
      setenv("XDG_RUNTIME_DIR", tmpl, 0);
    }
  }

  void discover() {
    ensure_runtime_dir();
    // dlopen first ourselves, only to report dlerror's text.
    void* egl = dlopen("libEGL.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (egl == nullptr) {
      const char* err = dlerror();
      reason_ = std::string("no EGL library: ") + (err != nullptr ? err : "libEGL.so.1 not found");
      return;
    }
    // The handle stays open: EGL drivers do not like being unloaded.
    if (gladLoaderLoadEGL(EGL_NO_DISPLAY) == 0) {
      reason_ = "libEGL.so.1 loaded but EGL entry points are missing";
      return;
    }
    const char* client = eglQueryString(EGL_NO_DISPLAY, EGL_EXTENSIONS);
    bool any_software = false;
    // glvnd (NVIDIA) advertises EGL_EXT_device_base, which contains both
    // EGL_EXT_device_enumeration and EGL_EXT_device_query.
    const bool device_base = has_word(client, "EGL_EXT_device_base");
    if ((device_base || has_word(client, "EGL_EXT_device_enumeration")) &&
        has_word(client, "EGL_EXT_platform_device") && eglQueryDevicesEXT != nullptr &&
        eglGetPlatformDisplayEXT != nullptr) {
      EGLint count = 0;
      eglQueryDevicesEXT(0, nullptr, &count);
      std::vector<EGLDeviceEXT> devices(static_cast<size_t>(std::max(count, 0)));
      if (count > 0) eglQueryDevicesEXT(count, devices.data(), &count);
      devices.resize(static_cast<size_t>(std::max(count, 0)));
      std::vector<std::string> drm_seen;
      for (size_t i = 0; i < devices.size(); ++i) {
        const char* dext = eglQueryDeviceStringEXT != nullptr
                               ? eglQueryDeviceStringEXT(devices[i], EGL_EXTENSIONS)
                               : nullptr;
        const bool software = has_word(dext, "EGL_MESA_device_software");
        std::string drm;
        if (has_word(dext, "EGL_EXT_device_drm")) {
          const char* f = eglQueryDeviceStringEXT(devices[i], EGL_DRM_DEVICE_FILE_EXT);
          if (f != nullptr) drm = f;
        }
        // llvmpipe can be listed more than once (once per vendor library);
        // one software device is enough, and one device per DRM node.
        if (software && any_software) continue;
        if (!drm.empty()) {
          if (std::find(drm_seen.begin(), drm_seen.end(), drm) != drm_seen.end()) continue;
          drm_seen.push_back(drm);
        }
        EGLDisplay display = eglGetPlatformDisplayEXT(EGL_PLATFORM_DEVICE_EXT, devices[i], nullptr);
        if (add_display(display, software, "EGL device " + std::to_string(i))) {
          any_software = any_software || found_.back().ctx->info().software;
        }
      }
    } else {
      note("EGL has no device enumeration (EGL_EXT_device_enumeration, EGL_EXT_platform_device)");
    }
    if (found_.empty()) {
      if (has_word(client, "EGL_MESA_platform_surfaceless") &&
          eglGetPlatformDisplayEXT != nullptr) {
        EGLDisplay display =
            eglGetPlatformDisplayEXT(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, nullptr);
        add_display(display, false, "surfaceless display");
      } else {
        note("no surfaceless platform (EGL_MESA_platform_surfaceless)");
      }
    }
    // Hardware first, so `opengl` (index 0) is the fastest device.
    std::stable_sort(found_.begin(), found_.end(), [](const Found& a, const Found& b) {
      return a.entry.kind == SPARKLE_DEVICE_GPU && b.entry.kind != SPARKLE_DEVICE_GPU;
    });
    if (const auto forced = device_override()) {
      const auto index = static_cast<size_t>(*forced);
      if (index >= found_.size()) {
        const size_t n = found_.size();
        found_.clear();
        reason_ = "SPARKLE_GL_DEVICE=" + std::to_string(index) + " but only " + std::to_string(n) +
                  " OpenGL device(s) exist";
        return;
      }
      Found keep = found_[index];
      found_.clear();
      found_.push_back(std::move(keep));
    }
    if (!found_.empty()) reason_.clear();
  }

  bool add_display(EGLDisplay display, bool software, const std::string& label) {
    if (display == EGL_NO_DISPLAY) {
      note(label + ": no EGL display");
      return false;
    }
    EGLint major = 0, minor = 0;
    if (eglInitialize(display, &major, &minor) != EGL_TRUE) {
      char code[16];
      std::snprintf(code, sizeof code, "0x%04x", static_cast<unsigned>(eglGetError()));
      note(label + ": eglInitialize failed (" + code + ")");
      return false;
    }
    gladLoaderLoadEGL(display);  // now with the display's 1.5 entry points
    const char* dext = eglQueryString(display, EGL_EXTENSIONS);
    if (!has_word(dext, "EGL_KHR_surfaceless_context") && !(major > 1 || minor >= 5)) {
      note(label + ": no surfaceless contexts");
      return false;
    }
    std::shared_ptr<GlContext> ctx;
    try {
      ctx = std::make_shared<GlContext>(display, software, label);
    } catch (const std::exception& e) {
      note(label + ": " + e.what());
      return false;
    }
    for (const auto& f : found_) {
      // Same renderer through another path (e.g. the software device that a
      // second vendor library lists again).
      if (f.ctx->info().software && ctx->info().software) return false;
    }
    const GlInfo& info = ctx->info();
    Found f;
    f.ctx = ctx;
    f.entry.kind = info.software ? SPARKLE_DEVICE_SOFTWARE_GPU : SPARKLE_DEVICE_GPU;
    f.entry.description = info.renderer + " (OpenGL " + info.version + ")";
    f.entry.fingerprint = gl_fingerprint(info);
    const GlCaps& caps = caps_of(*ctx);
    auto count = [](const int64_t v[3]) {
      return std::to_string(v[0]) + "," + std::to_string(v[1]) + "," + std::to_string(v[2]);
    };
    f.entry.properties = {
        {"vendor", info.vendor},
        {"renderer", info.renderer},
        {"gl_version", info.version},
        {"glsl_version", info.glsl_version},
        {"max_work_group_invocations", std::to_string(info.max_invocations)},
        {"max_work_group_size", count(info.max_size)},
        {"max_work_group_count", count(info.max_count)},
        {"max_shared_memory_bytes", std::to_string(info.max_shared_bytes)},
        {"max_shader_storage_block_bytes", std::to_string(info.max_ssbo_block_bytes)},
        {"timer_queries", info.timer_queries ? "yes" : "no"},
        {"egl_fence_syncs", info.egl_syncs ? "yes" : "no"},
        {"program_binary_formats", info.binary_formats},
        {"egl_source", label},
        // Read by core/tune's occupancy model (0: unknown).
        {"compute_units", std::to_string(caps.units.count)},
        {"compute_units_source", caps.units_source},
        {"threads_per_compute_unit", std::to_string(caps.units.threads_per_cu)},
        {"registers_per_compute_unit", std::to_string(caps.units.registers_per_cu)},
        {"groups_per_compute_unit", std::to_string(caps.units.groups_per_cu)},
        {"subgroup_size", std::to_string(caps.subgroup_size)},
        {"subgroup_extension", caps.subgroup_extension.empty() ? "none" : caps.subgroup_extension},
        {"parallel_compile", caps.parallel_compile ? "yes" : "no"},
    };
    // Why other EGL paths were not used (for `sparkle-run devices`).
    if (!reason_.empty()) f.entry.properties.push_back({"egl_notes", reason_});
    found_.push_back(std::move(f));
    return true;
  }

  std::vector<Found> found_;
  std::string reason_;
  std::string xdg_dir_;
};

std::string build_id() {
  return std::string("opengl-") + SPARKLE_OPENGL_VERSION + "-" + shader_build_id();
}

}  // namespace

const char* plugin_build_id() {
  static const std::string id = build_id();
  return id.c_str();
}

}  // namespace sparkle::opengl

SPARKLE_DEFINE_PLUGIN(sparkle::opengl::GlBackend, "opengl", SPARKLE_OPENGL_VERSION,
                      sparkle::opengl::plugin_build_id())
