#define DOCTEST_CONFIG_IMPLEMENT
#include "gl_plugin_harness.hpp"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace gltest {

const sparkle_plugin* g_plugin = nullptr;

sparkle_status make_status(sparkle_code code, const char* message) {
  return new sparkle_status_t{code, message != nullptr ? message : ""};
}

void host_log(sparkle_log_level level, const char* plugin, const char* message) {
  if (level >= SPARKLE_LOG_WARN) std::fprintf(stderr, "[%s] %s\n", plugin, message);
}

sparkle_host_services minimal_host() {
  sparkle_host_services h;
  std::memset(&h, 0, sizeof h);
  h.struct_size = sizeof h;
  h.abi_version = SPARKLE_PLUGIN_ABI_VERSION;
  h.make_status = &make_status;
  h.log = &host_log;
  return h;
}

Status take(sparkle_status s) {
  Status out;
  if (s != nullptr) {
    out.code = s->code;
    out.message = s->message;
    delete s;
  }
  return out;
}

Device::Device(size_t index) { REQUIRE_OK(g_plugin->open_device(index, &handle)); }
Device::~Device() { g_plugin->close_device(handle); }

sparkle::Comparison compare_with_reference(const sparkle_conv2d_desc& d,
                                           const std::vector<float>& x, const std::vector<float>& w,
                                           const std::vector<float>& b,
                                           const std::vector<float>& y) {
  sparkle::Conv2dDesc cd;
  cd.n = d.n, cd.c = d.c, cd.h = d.h, cd.w = d.w, cd.k = d.k, cd.r = d.r, cd.s = d.s;
  cd.stride_h = d.stride_h, cd.stride_w = d.stride_w;
  cd.pad_top = d.pad_top, cd.pad_left = d.pad_left;
  cd.pad_bottom = d.pad_bottom, cd.pad_right = d.pad_right;
  cd.dilation_h = d.dilation_h, cd.dilation_w = d.dilation_w;
  cd.groups = d.groups, cd.has_bias = d.has_bias != 0, cd.relu = d.relu != 0;
  if (cd.output_elements() != static_cast<int64_t>(y.size())) {
    sparkle::Comparison wrong_size;  // a failure callers already check for
    wrong_size.non_finite = static_cast<int64_t>(y.size()) + 1;
    return wrong_size;
  }
  std::vector<double> want(y.size()), magnitude(y.size());
  sparkle::reference_conv2d(cd, x.data(), w.data(), b.empty() ? nullptr : b.data(), want.data(),
                            magnitude.data());
  return sparkle::compare(y.data(), want.data(), magnitude.data(), static_cast<int64_t>(y.size()));
}

int run_plugin_tests(int argc, char** argv, const sparkle_host_services* host) {
  const char* path = std::getenv("SPARKLE_GL_PLUGIN");
  if (path == nullptr) {
    std::fprintf(stderr, "set SPARKLE_GL_PLUGIN to libsparkle-opengl.so\n");
    return 1;
  }
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    std::fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
    return 1;
  }
  auto entry = reinterpret_cast<sparkle_plugin_entry_fn>(dlsym(lib, SPARKLE_PLUGIN_ENTRY_NAME));
  if (entry == nullptr || (g_plugin = entry(SPARKLE_PLUGIN_ABI_VERSION)) == nullptr) {
    std::fprintf(stderr, "%s: no usable %s\n", path, SPARKLE_PLUGIN_ENTRY_NAME);
    return 1;
  }
  if (g_plugin->struct_size < sizeof(sparkle_plugin) ||
      std::strcmp(g_plugin->name, "opengl") != 0) {
    std::fprintf(stderr, "unexpected plugin descriptor\n");
    return 1;
  }
  const Status st = take(g_plugin->init(host));
  if (st.code != SPARKLE_OK) {
    std::fprintf(stderr, "init failed: %s\n", st.message.c_str());
    return 1;
  }
  if (g_plugin->device_count() == 0) {
    std::printf("SKIP: no OpenGL device: %s\n", g_plugin->unavailable_reason());
    g_plugin->shutdown();
    return 77;
  }
  doctest::Context context(argc, argv);
  const int rc = context.run();
  g_plugin->shutdown();
  return rc;
}

}  // namespace gltest
