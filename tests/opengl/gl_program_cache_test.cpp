// The OpenGL plugin's program cache through the C ABI alone, with a host
// whose blob store is an in-memory map, so every event can be counted:
//  - with SPARKLE_GL_PROGRAM_CACHE_CAPACITY=1, programs of live plans survive
//    eviction and stay correct, released ones are evicted (and come back from
//    the blob store);
//  - a payload the driver refuses is rejected once and recompiled;
//  - an ABI 1.0 host (no blob services) gets compiles only.
// Exits 77 where the plugin finds no EGL device.
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

#include "gl_plugin_harness.hpp"

namespace {

using namespace gltest;

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
  sparkle_host_services h = minimal_host();
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

struct Plan {
  sparkle_plan h = nullptr;
  Plan(const Device& dev, const sparkle_conv2d_desc& d) {
    REQUIRE_OK(g_plugin->plan_conv2d(dev.handle, &d, &h));
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
  REQUIRE_OK(g_plugin->buffer_create(dev.handle, x.size() * 4, &bx));
  REQUIRE_OK(g_plugin->buffer_create(dev.handle, w.size() * 4, &bw));
  REQUIRE_OK(g_plugin->buffer_create(dev.handle, y.size() * 4, &by));
  REQUIRE_OK(g_plugin->buffer_upload(bx, 0, x.data(), x.size() * 4));
  REQUIRE_OK(g_plugin->buffer_upload(bw, 0, w.data(), w.size() * 4));
  REQUIRE_OK(g_plugin->buffer_upload(by, 0, y.data(), y.size() * 4));
  sparkle_fence fence = nullptr;
  REQUIRE_OK(g_plugin->enqueue_conv2d(plan.h, bx, bw, nullptr, by, &fence));
  REQUIRE_OK(g_plugin->fence_wait(fence));
  g_plugin->fence_destroy(fence);
  REQUIRE_OK(g_plugin->buffer_download(by, 0, y.data(), y.size() * 4));
  for (auto b : {bx, bw, by}) g_plugin->buffer_destroy(b);
  const auto e = compare_with_reference(d, x, w, {}, y);
  return e.non_finite != 0 ? INFINITY : e.max_rel_error;
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
        if (take(g_plugin->plan_conv2d(dev.handle, &d, &p)).code == SPARKLE_OK)
          g_plugin->plan_destroy(p);
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

int main(int argc, char** argv) { return gltest::run_plugin_tests(argc, argv, &g_host); }
