// What the OpenGL plugin tests share: they dlopen libsparkle-opengl.so
// (SPARKLE_GL_PLUGIN) and drive it through the C ABI alone, as the engine
// would, with a host-services table of their own. Results are judged by
// libsparkle's float64 reference (the plugin itself never links libsparkle).
#pragma once

#include <doctest/doctest.h>
#include <sparkle/plugin.h>

#include <sparkle/reference.hpp>
#include <string>
#include <vector>

// The host's error object: what make_status returns and take() frees.
struct sparkle_status_t {
  sparkle_code code;
  std::string message;
};

namespace gltest {

// The plugin under test, valid while the doctest cases run.
extern const sparkle_plugin* g_plugin;

// Host services every test host starts from.
sparkle_status make_status(sparkle_code code, const char* message);
void host_log(sparkle_log_level level, const char* plugin, const char* message);
// struct_size, abi_version, make_status and log; no blob store.
sparkle_host_services minimal_host();

// Takes ownership of a status: SPARKLE_OK and no message for NULL.
struct Status {
  sparkle_code code = SPARKLE_OK;
  std::string message;
};
Status take(sparkle_status s);

#define REQUIRE_OK(expr)                               \
  do {                                                 \
    const ::gltest::Status st_ = ::gltest::take(expr); \
    INFO(st_.message);                                 \
    REQUIRE(st_.code == SPARKLE_OK);                   \
  } while (0)

struct Device {
  sparkle_device handle = nullptr;
  explicit Device(size_t index = 0);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
};

// y (d's output, NCHW) against libsparkle's float64 reference; b may be
// empty when !d.has_bias.
sparkle::Comparison compare_with_reference(const sparkle_conv2d_desc& d,
                                           const std::vector<float>& x, const std::vector<float>& w,
                                           const std::vector<float>& b,
                                           const std::vector<float>& y);

// The whole main(): loads the plugin, checks its name is "opengl", inits it
// with host, returns 77 (meson: skipped) without an EGL device, else runs
// the doctest cases and shuts the plugin down.
int run_plugin_tests(int argc, char** argv, const sparkle_host_services* host);

}  // namespace gltest
