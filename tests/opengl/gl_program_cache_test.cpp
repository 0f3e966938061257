// The OpenGL plugin's program cache through the C ABI alone, with a host
// whose blob store is an in-memory map, so every event can be counted:
//  - with SPARKLE_GL_PROGRAM_CACHE_CAPACITY=1, programs of live plans survive
//    eviction and stay correct, released ones are evicted (and come back from
//    the blob store);
//  - a payload the driver refuses is rejected once and recompiled;
//  - an ABI 1.0 host (no blob services) gets compiles only.
// Exits 77 where the plugin finds no EGL device.
#define DOCTEST_CONFIG_IMPLEMENT
#include <dlfcn.h>
#include <doctest/doctest.h>
#include <sparkle/plugin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

struct sparkle_status_t {
  sparkle_code code;
  std::string message;
};

namespace {

// ---- the host ---------------------------------------------------------------

struct Counts {
  int memory_hits = 0, disk_hits = 0, compiles = 0, gets = 0, puts = 0, rejects = 0;
};

std::mutex g_mutex;
Counts g_counts;
std::map<std::string, std::string> g_store;  // key fields + source -> payload
std::vector<std::string> g_reject_reasons;

std::string key_of(const sparkle_blob_key* k) {
  std::string s;
  for (const char* f :
       {k->plugin, k->plugin_build_id, k->kind, k->name, k->device_fingerprint, k->options}) {
    s += f != nullptr ? f : "(null)";
    s += '\n';
  }
  s.append(static_cast<const char*>(k->source), k->source_size);
  return s;
}

sparkle_status make_status(sparkle_code code, const char* message) {
  return new sparkle_status_t{code, message != nullptr ? message : ""};
}
void host_log(sparkle_log_level level, const char* plugin, const char* message) {
  if (level >= SPARKLE_LOG_WARN) std::fprintf(stderr, "[%s] %s\n", plugin, message);
}
void* blob_get(const sparkle_blob_key* key, size_t* size) {
  std::lock_guard lock(g_mutex);
  ++g_counts.gets;
  auto it = g_store.find(key_of(key));
  if (it == g_store.end()) return nullptr;
  void* copy = std::malloc(it->second.size());
  std::memcpy(copy, it->second.data(), it->second.size());
  *size = it->second.size();
  return copy;
}
void blob_release(void* data) { std::free(data); }
void blob_put(const sparkle_blob_key* key, const void* data, size_t size, double compile_ms) {
  std::lock_guard lock(g_mutex);
  ++g_counts.puts;
  CHECK(compile_ms >= 0);
  CHECK(std::string(key->kind) == "gl-program-binary");
  CHECK(std::string(key->plugin) == "opengl");
  g_store[key_of(key)] = std::string(static_cast<const char*>(data), size);
}
void blob_reject(const sparkle_blob_key* key, const char* why) {
  std::lock_guard lock(g_mutex);
  ++g_counts.rejects;
  g_reject_reasons.push_back(why != nullptr ? why : "");
  g_store.erase(key_of(key));
}
void cache_event(sparkle_cache_event event, double ms) {
  std::lock_guard lock(g_mutex);
  CHECK(ms >= 0);
  if (event == SPARKLE_CACHE_MEMORY_HIT) ++g_counts.memory_hits;
  if (event == SPARKLE_CACHE_DISK_HIT) ++g_counts.disk_hits;
  if (event == SPARKLE_CACHE_COMPILE) ++g_counts.compiles;
}

sparkle_host_services full_host() {
  sparkle_host_services h;
  std::memset(&h, 0, sizeof h);
  h.struct_size = sizeof h;
  h.abi_version = SPARKLE_PLUGIN_ABI_VERSION;
  h.make_status = &make_status;
  h.log = &host_log;
  h.blob_get = &blob_get;
  h.blob_release = &blob_release;
  h.blob_put = &blob_put;
  h.blob_reject = &blob_reject;
  h.cache_event = &cache_event;
  return h;
}
sparkle_host_services g_host = full_host();

Counts counts() {
  std::lock_guard lock(g_mutex);
  return g_counts;
}

// ---- the plugin ---------------------------------------------------------------

const sparkle_plugin* g_plugin = nullptr;

std::string take(sparkle_status s) {
  if (s == nullptr) return {};
  std::string m = s->message.empty() ? "error" : s->message;
  delete s;
  return m;
}
#define REQUIRE_OK(expr)         \
  do {                           \
    std::string e_ = take(expr); \
    INFO(e_);                    \
    REQUIRE(e_.empty());         \
  } while (0)

// Re-initialises the plugin with a host: fresh GL contexts, empty LiveCaches.
void restart(const sparkle_host_services* host) {
  g_plugin->shutdown();
  REQUIRE_OK(g_plugin->init(host));
  REQUIRE(g_plugin->device_count() > 0);
}

sparkle_conv2d_desc shape(int64_t c, int64_t hw, int64_t k) {
  sparkle_conv2d_desc d;
  std::memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.n = 1, d.c = c, d.h = d.w = hw, d.k = k, d.r = d.s = 3;
  d.stride_h = d.stride_w = d.dilation_h = d.dilation_w = d.groups = 1;
  d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 1;
  d.out_h = d.out_w = hw;
  return d;
}

struct Device {
  sparkle_device h = nullptr;
  Device() { REQUIRE_OK(g_plugin->open_device(0, &h)); }
  ~Device() { g_plugin->close_device(h); }
};

struct Plan {
  sparkle_plan h = nullptr;
  Plan(const Device& dev, const sparkle_conv2d_desc& d) {
    REQUIRE_OK(g_plugin->plan_conv2d(dev.h, &d, &h));
  }
  ~Plan() { reset(); }
  void reset() {
    if (h != nullptr) g_plugin->plan_destroy(h);
    h = nullptr;
  }
};

// Runs plan on random data; the largest error relative to sum |x*w|.
double run_and_check(const Device& dev, const Plan& plan, const sparkle_conv2d_desc& d) {
  std::mt19937_64 rng(static_cast<uint64_t>(d.c * 131 + d.k));
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(d.c * d.h * d.w)), w(static_cast<size_t>(d.k * d.c * 9));
  for (auto& v : x) v = dist(rng);
  for (auto& v : w) v = dist(rng);
  std::vector<float> y(static_cast<size_t>(d.k * d.h * d.w),
                       std::numeric_limits<float>::quiet_NaN());
  sparkle_buffer bx, bw, by;
  REQUIRE_OK(g_plugin->buffer_create(dev.h, x.size() * 4, &bx));
  REQUIRE_OK(g_plugin->buffer_create(dev.h, w.size() * 4, &bw));
  REQUIRE_OK(g_plugin->buffer_create(dev.h, y.size() * 4, &by));
  REQUIRE_OK(g_plugin->buffer_upload(bx, 0, x.data(), x.size() * 4));
  REQUIRE_OK(g_plugin->buffer_upload(bw, 0, w.data(), w.size() * 4));
  REQUIRE_OK(g_plugin->buffer_upload(by, 0, y.data(), y.size() * 4));
  sparkle_fence fence = nullptr;
  REQUIRE_OK(g_plugin->enqueue_conv2d(plan.h, bx, bw, nullptr, by, &fence));
  REQUIRE_OK(g_plugin->fence_wait(fence));
  g_plugin->fence_destroy(fence);
  REQUIRE_OK(g_plugin->buffer_download(by, 0, y.data(), y.size() * 4));
  for (auto b : {bx, bw, by}) g_plugin->buffer_destroy(b);
  double worst = 0;
  for (int64_t k = 0; k < d.k; ++k)
    for (int64_t oy = 0; oy < d.h; ++oy)
      for (int64_t ox = 0; ox < d.w; ++ox) {
        double acc = 0, mag = 0;
        for (int64_t c = 0; c < d.c; ++c)
          for (int64_t r = 0; r < 3; ++r)
            for (int64_t s = 0; s < 3; ++s) {
              const int64_t iy = oy - 1 + r, ix = ox - 1 + s;
              if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w) continue;
              const double p = double(x[static_cast<size_t>((c * d.h + iy) * d.w + ix)]) *
                               w[static_cast<size_t>(((k * d.c + c) * 3 + r) * 3 + s)];
              acc += p;
              mag += std::fabs(p);
            }
        const double got = y[static_cast<size_t>((k * d.h + oy) * d.w + ox)];
        if (!std::isfinite(got)) return INFINITY;
        worst = std::max(worst, std::fabs(got - acc) / std::max(mag, 1e-30));
      }
  return worst;
}

TEST_CASE("capacity 1: programs of live plans survive eviction") {
  restart(&g_host);
  g_store.clear();
  const auto a = shape(3, 8, 8), b = shape(5, 9, 16), c = shape(6, 7, 24);
  Device dev;
  const Counts c0 = counts();
  auto pa = std::make_unique<Plan>(dev, a);
  Plan pb(dev, b);
  CHECK(counts().compiles - c0.compiles == 2);  // A is in use: not evicted for B
  CHECK(counts().puts - c0.puts == 2);
  CHECK(run_and_check(dev, *pa, a) < 1e-5);
  CHECK(run_and_check(dev, pb, b) < 1e-5);
  {
    Plan pb2(dev, b);  // B is live: a memory hit
    CHECK(counts().memory_hits - c0.memory_hits == 1);
    CHECK(run_and_check(dev, pb2, b) < 1e-5);
  }
  pa.reset();  // A is now only in the cache: the next miss evicts it
  Plan pc(dev, c);
  CHECK(counts().compiles - c0.compiles == 3);
  Plan pa2(dev, a);  // evicted from memory, back from the blob store
  CHECK(counts().disk_hits - c0.disk_hits == 1);
  CHECK(counts().compiles - c0.compiles == 3);
  CHECK(counts().memory_hits - c0.memory_hits == 1);
  // B survived every eviction while its plan lived, and still runs.
  CHECK(run_and_check(dev, pb, b) < 1e-5);
  CHECK(run_and_check(dev, pc, c) < 1e-5);
  CHECK(run_and_check(dev, pa2, a) < 1e-5);
}

TEST_CASE("plans destroyed on other threads release their programs safely") {
  restart(&g_host);
  Device dev;
  const auto a = shape(4, 8, 8);
  for (int round = 0; round < 4; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        const auto d = shape(4 + t, 8, 8);
        sparkle_plan p = nullptr;
        if (take(g_plugin->plan_conv2d(dev.h, &d, &p)).empty()) g_plugin->plan_destroy(p);
      });
    }
    for (auto& th : threads) th.join();
  }
  Plan pa(dev, a);
  CHECK(run_and_check(dev, pa, a) < 1e-5);
}

TEST_CASE("a binary the driver refuses is rejected once and recompiled") {
  restart(&g_host);
  const auto a = shape(7, 10, 8);
  {
    Device dev;
    Plan p(dev, a);  // compiled and stored
  }
  {
    std::lock_guard lock(g_mutex);
    REQUIRE(!g_store.empty());
    for (auto& [key, payload] : g_store) {
      REQUIRE(payload.size() > 4);
      payload[0] = static_cast<char>(payload[0] ^ 0x5a);  // the binary format
    }
  }
  restart(&g_host);  // empty LiveCache: the next plan reads the store
  const Counts c0 = counts();
  {
    Device dev;
    Plan p(dev, a);
    const Counts c1 = counts();
    CHECK(c1.rejects - c0.rejects == 1);
    CHECK(c1.compiles - c0.compiles == 1);
    CHECK(c1.puts - c0.puts == 1);
    CHECK(c1.disk_hits - c0.disk_hits == 0);
    REQUIRE(!g_reject_reasons.empty());
    MESSAGE("rejected: " << g_reject_reasons.back());
    CHECK(run_and_check(dev, p, a) < 1e-5);
  }
  restart(&g_host);
  const Counts c1 = counts();
  {
    Device dev;
    Plan p(dev, a);
    CHECK(counts().disk_hits - c1.disk_hits == 1);
    CHECK(counts().compiles - c1.compiles == 0);
    CHECK(run_and_check(dev, p, a) < 1e-5);
  }
}

TEST_CASE("an ABI 1.0 host (no blob services) gets plain compiles") {
  static sparkle_host_services old = full_host();  // the plugin keeps the pointer
  old.struct_size = static_cast<uint32_t>(offsetof(sparkle_host_services, blob_get));
  old.abi_version = (1u << 16) | 0u;
  // Past struct_size: a plugin that read these would count into the map.
  restart(&old);
  const Counts c0 = counts();
  const auto a = shape(3, 11, 8);
  {
    Device dev;
    Plan p(dev, a);
    CHECK(run_and_check(dev, p, a) < 1e-5);
  }
  const Counts c1 = counts();
  CHECK(c1.gets == c0.gets);
  CHECK(c1.puts == c0.puts);
  CHECK(c1.compiles == c0.compiles);  // cache_event is past struct_size too
}

}  // namespace

int main(int argc, char** argv) {
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
  const std::string st = take(g_plugin->init(&g_host));
  if (!st.empty()) {
    std::fprintf(stderr, "init failed: %s\n", st.c_str());
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
