// The AMDGPU backend's host side driven end to end against the fake libdrm:
// discovery, buffers of each memory kind, queues, fences and wait lists,
// submissions (each IB decoded and checked by the fake), the program cache,
// and failures injected into libdrm calls reaching the caller as clear
// errors. No AMD GPU is involved: see docs/AMDGPU.md for what this does and
// does not show.
#include <doctest/doctest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <sparkle/plugin.hpp>
#include <string>
#include <vector>

#include "backend.hpp"
#include "device.hpp"
#include "fake_drm.hpp"
#include "program_cache.hpp"
#include "registers.hpp"

using namespace sparkle::amdgpu;
using sparkle::amdgpu::test::amdgpu_node;
using sparkle::amdgpu::test::FakeDrm;
using sparkle::amdgpu::test::other_node;
namespace plugin = sparkle::plugin;

namespace {

class EnvVar {
 public:
  EnvVar(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~EnvVar() {
    if (had_) {
      setenv(name_.c_str(), old_.c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

std::shared_ptr<FakeDrm> fake_with(std::initializer_list<std::string> targets) {
  auto fake = std::make_shared<FakeDrm>();
  int i = 128;
  for (const auto& t : targets)
    fake->nodes.push_back(amdgpu_node("/dev/dri/renderD" + std::to_string(i++), t));
  if (targets.size() > 0)
    if (const auto* e = embedded_code_object(*targets.begin()))
      fake->set_program(load_embedded(*e));
  return fake;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}

#define CHECK_CLEAN(fake) CHECK_MESSAGE((fake).violations().empty(), joined((fake).violations()))

std::string property(const plugin::DeviceEntry& e, const std::string& key) {
  for (const auto& [k, v] : e.properties)
    if (k == key) return v;
  return "<missing " + key + ">";
}

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

template <class Fn>
plugin::Error error_of(Fn&& fn) {
  try {
    fn();
  } catch (const plugin::Error& e) {
    return e;
  }
  FAIL("no plugin::Error was thrown");
  return plugin::Error(SPARKLE_OK, "");
}

sparkle_conv2d_desc conv_desc(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t r,
                              int64_t groups, bool bias) {
  sparkle_conv2d_desc d{};
  d.struct_size = sizeof d;
  d.n = n, d.c = c, d.h = h, d.w = w, d.k = k, d.r = r, d.s = r;
  d.stride_h = d.stride_w = 1;
  d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = r / 2;
  d.dilation_h = d.dilation_w = 1;
  d.groups = groups;
  d.has_bias = bias ? 1 : 0;
  d.out_h = h + 2 * (r / 2) - r + 1;
  d.out_w = w + 2 * (r / 2) - r + 1;
  return d;
}

}  // namespace

// ---- discovery ----

TEST_CASE("no /dev/dri: zero devices and the reason says so") {
  auto fake = std::make_shared<FakeDrm>();
  fake->devices_rc = -ENOENT;
  AmdBackend b(fake);
  CHECK(b.devices().empty());
  CHECK(b.unavailable_reason().find("no /dev/dri") != std::string::npos);
  CHECK_CLEAN(*fake);
}

TEST_CASE("DRM devices of other vendors and drivers give zero devices, naming each") {
  auto fake = std::make_shared<FakeDrm>();
  fake->nodes.push_back(other_node("/dev/dri/renderD128", "i915", 0x8086));
  fake->nodes.push_back(other_node("/dev/dri/renderD129", "radeon", 0x1002));
  AmdBackend b(fake);
  CHECK(b.devices().empty());
  const std::string why = b.unavailable_reason();
  INFO(why);
  CHECK(why.find("renderD128: vendor 0x8086, not AMD") != std::string::npos);
  CHECK(why.find("renderD129: kernel driver is radeon, not amdgpu") != std::string::npos);
  CHECK(fake->count("device_initialize") == 0);  // never on a non-amdgpu node
  CHECK(fake->live_objects().empty());           // the radeon node was closed again
  CHECK_CLEAN(*fake);
}

TEST_CASE("an amdgpu render node becomes a device with its target, fingerprint and properties") {
  auto fake = fake_with({"gfx1100"});
  {
    AmdBackend b(fake);
    const auto devices = b.devices();
    REQUIRE(devices.size() == 1);
    const auto& e = devices[0];
    CHECK(e.kind == SPARKLE_DEVICE_GPU);
    CHECK(e.description == "AMD Radeon RX 7900 XTX (gfx1100, /dev/dri/renderD128)");
    CHECK(e.fingerprint == "amdgpu-1002:744c-revc8-gfx1100-amdgpu3.54.0");
    CHECK(property(e, "gfx_target") == "gfx1100");
    CHECK(property(e, "generation") == "gfx11");
    CHECK(property(e, "kernel_driver") == "amdgpu 3.54.0");
    CHECK(property(e, "compute_units") == "96");
    CHECK(property(e, "compute_rings") == "4");
    CHECK(property(e, "wavefront_size") == "32");
    CHECK(property(e, "render_node") == "/dev/dri/renderD128");
    // The sequence discovery runs, in order.
    std::vector<std::string> want = {"get_devices",       "open_node",      "get_version",
                                     "device_initialize", "query_gpu_info", "query_hw_ip_info",
                                     "query_hw_ip_info"};
    auto calls = fake->calls();
    calls.resize(want.size());
    CHECK(calls == want);
  }
  CHECK(fake->live_objects().empty());
  CHECK_CLEAN(*fake);
}

TEST_CASE("the fingerprint is stable and changes with the kernel driver version") {
  auto fake = fake_with({"gfx1030"});
  const std::string first = AmdBackend(fake).devices().at(0).fingerprint;
  CHECK(AmdBackend(fake).devices().at(0).fingerprint == first);
  fake->nodes[0].version.minor = 55;
  CHECK(AmdBackend(fake).devices().at(0).fingerprint != first);
}

TEST_CASE("each default target is identified from family, revision and hw-ip version") {
  auto fake = fake_with({"gfx1100", "gfx1030", "gfx90a"});
  AmdBackend b(fake);
  const auto devices = b.devices();
  REQUIRE(devices.size() == 3);
  CHECK(property(devices[0], "gfx_target") == "gfx1100");
  CHECK(property(devices[1], "gfx_target") == "gfx1030");
  CHECK(property(devices[1], "generation") == "gfx10.3");
  CHECK(property(devices[2], "gfx_target") == "gfx90a");
  CHECK(property(devices[2], "generation") == "gfx9");
  CHECK(property(devices[2], "wavefront_size") == "64");
}

TEST_CASE("GPUs the build cannot drive are skipped with the reason") {
  SUBCASE("a target without a code object") {
    auto fake = fake_with({"gfx1101"});
    AmdBackend b(fake);
    CHECK(b.devices().empty());
    CHECK(b.unavailable_reason().find("gfx1101 (Navi 32) has no code object in this build") !=
          std::string::npos);
  }
  SUBCASE("gfx10.1") {
    auto fake = fake_with({"gfx1010"});
    AmdBackend b(fake);
    CHECK(b.devices().empty());
    CHECK(b.unavailable_reason().find("gfx10.1") != std::string::npos);
  }
  SUBCASE("a hw-ip version that disagrees with the family") {
    auto fake = fake_with({"gfx1100"});
    fake->nodes[0].gfx.hw_ip_version_major = 10;
    AmdBackend b(fake);
    CHECK(b.devices().empty());
    CHECK(b.unavailable_reason().find("GFX hw-ip version is 10.x, not 11.x") != std::string::npos);
  }
  SUBCASE("no compute ring") {
    auto fake = fake_with({"gfx1100"});
    fake->nodes[0].compute.available_rings = 0;
    AmdBackend b(fake);
    CHECK(b.devices().empty());
    CHECK(b.unavailable_reason().find("no compute ring") != std::string::npos);
  }
  SUBCASE("amdgpu_device_initialize fails") {
    auto fake = fake_with({"gfx1100"});
    fake->fail("device_initialize", -EACCES);
    AmdBackend b(fake);
    CHECK(b.devices().empty());
    CHECK(b.unavailable_reason().find("amdgpu_device_initialize failed (Permission denied)") !=
          std::string::npos);
    CHECK(fake->live_objects().empty());
  }
}

TEST_CASE("SPARKLE_AMDGPU_DEVICE selects one node, and a non-amdgpu node is a clear error") {
  auto fake = fake_with({"gfx1100", "gfx1030"});
  fake->nodes.push_back(other_node("/dev/dri/renderD130", "i915", 0x8086));
  auto card = amdgpu_node("/dev/dri/card0", "gfx1100");
  card.listed = false;
  fake->nodes.push_back(card);
  SUBCASE("an amdgpu render node") {
    EnvVar env("SPARKLE_AMDGPU_DEVICE", "/dev/dri/renderD129");
    AmdBackend b(fake);
    REQUIRE(b.devices().size() == 1);
    CHECK(property(b.devices()[0], "gfx_target") == "gfx1030");
  }
  SUBCASE("another driver's node") {
    EnvVar env("SPARKLE_AMDGPU_DEVICE", "/dev/dri/renderD130");
    AmdBackend b(fake);
    CHECK(b.devices().empty());
    CHECK(b.unavailable_reason() ==
          "SPARKLE_AMDGPU_DEVICE=/dev/dri/renderD130 is a i915 device, not amdgpu");
  }
  SUBCASE("a path that does not exist") {
    EnvVar env("SPARKLE_AMDGPU_DEVICE", "/dev/dri/renderD200");
    AmdBackend b(fake);
    CHECK(b.devices().empty());
    CHECK(b.unavailable_reason() ==
          "SPARKLE_AMDGPU_DEVICE=/dev/dri/renderD200: cannot open (No such file or directory)");
  }
  SUBCASE("an amdgpu node that is not a render node") {
    EnvVar env("SPARKLE_AMDGPU_DEVICE", "/dev/dri/card0");
    AmdBackend b(fake);
    CHECK(b.devices().empty());
    CHECK(b.unavailable_reason().find("not a render node") != std::string::npos);
  }
  CHECK(fake->live_objects().empty());
  CHECK_CLEAN(*fake);
}

// ---- buffers, queues, submissions ----

namespace {

struct Rig {
  std::shared_ptr<FakeDrm> fake;
  std::unique_ptr<AmdBackend> backend;
  std::unique_ptr<plugin::Device> device;
  AmdDevice& dev() { return *static_cast<AmdDevice*>(device.get()); }

  explicit Rig(const std::string& target = "gfx1100") : fake(fake_with({target})) {
    backend = std::make_unique<AmdBackend>(fake);
    REQUIRE(backend->devices().size() == 1);
    device = backend->open_device(0);
  }
  ~Rig() {
    device.reset();
    backend.reset();
    CHECK(fake->live_objects().empty());
    CHECK_CLEAN(*fake);
  }
  std::unique_ptr<plugin::Buffer> buffer(size_t bytes,
                                         sparkle_memory_kind kind = SPARKLE_MEMORY_DEVICE) {
    sparkle_buffer_desc d{};
    d.struct_size = sizeof d;
    d.kind = kind;
    d.bytes = bytes;
    return device->create_buffer_ex(d);
  }
};

}  // namespace

TEST_CASE("memory kinds: DEVICE is unmapped VRAM, UPLOAD write-combined GTT, READBACK cached GTT") {
  Rig rig;
  auto dev_buf = rig.buffer(1000);
  auto up = rig.buffer(5000, SPARKLE_MEMORY_UPLOAD);
  auto rb = rig.buffer(70, SPARKLE_MEMORY_READBACK);
  const auto allocs = rig.fake->allocations();
  REQUIRE(allocs.size() == 3);
  CHECK(allocs[0].preferred_heap == AMDGPU_GEM_DOMAIN_VRAM);
  CHECK(allocs[0].alloc_size == 4096);
  CHECK(allocs[1].preferred_heap == AMDGPU_GEM_DOMAIN_GTT);
  CHECK(allocs[1].flags == AMDGPU_GEM_CREATE_CPU_GTT_USWC);
  CHECK(allocs[1].alloc_size == 8192);
  CHECK(allocs[2].preferred_heap == AMDGPU_GEM_DOMAIN_GTT);
  CHECK(allocs[2].flags == 0);
  CHECK(dev_buf->map() == nullptr);
  CHECK(up->map() != nullptr);
  CHECK(rb->map() != nullptr);
  sparkle_buffer_desc bad{};
  bad.struct_size = sizeof bad;
  bad.kind = 7;
  bad.bytes = 16;
  CHECK(error_of([&] { rig.device->create_buffer_ex(bad); }).code() == SPARKLE_UNSUPPORTED);
}

TEST_CASE("write then read of a device buffer returns the bytes, at any offset") {
  Rig rig;
  auto q = rig.device->create_queue(0);
  auto buf = rig.buffer(10000);
  const auto data = random_bytes(10000, 1);
  q->write(buf.get(), 0, data.data(), data.size(), {})->wait();
  std::vector<uint8_t> back(10000, 0);
  q->read(buf.get(), 0, back.data(), back.size(), {})->wait();
  CHECK(back == data);
  // Unaligned: the byte copy kernel.
  const auto patch = random_bytes(333, 2);
  q->write(buf.get(), 1001, patch.data(), patch.size(), {})->wait();
  std::vector<uint8_t> got(333, 0);
  q->read(buf.get(), 1001, got.data(), got.size(), {})->wait();
  CHECK(got == patch);
  std::vector<std::string> kernels;
  for (const auto& s : rig.fake->submissions())
    for (const auto& d : s.dispatches) kernels.push_back(d.kernel);
  CHECK(kernels ==
        std::vector<std::string>{"copy_words", "copy_words", "copy_bytes", "copy_bytes"});
  // Out of range is the caller's fault.
  CHECK(error_of([&] { q->write(buf.get(), 9990, data.data(), 11, {}); }).code() ==
        SPARKLE_INVALID_ARGUMENT);
}

TEST_CASE("a read of host memory that a later write uses as its source is delivered first") {
  Rig rig;
  auto q = rig.device->create_queue(0);
  auto a = rig.buffer(4096), b = rig.buffer(4096);
  const auto data = random_bytes(4096, 3);
  q->write(a.get(), 0, data.data(), data.size(), {})->wait();
  std::vector<uint8_t> host(4096, 0);
  auto read = q->read(a.get(), 0, host.data(), host.size(), {});
  // Nobody waited on the read; the write must still copy what it delivered.
  auto write = q->write(b.get(), 0, host.data(), host.size(), {});
  std::vector<uint8_t> back(4096, 0);
  q->read(b.get(), 0, back.data(), back.size(), {})->wait();
  CHECK(back == data);
  CHECK(read->poll());
}

TEST_CASE(
    "work waiting on another queue's read completes only after the read's data is delivered") {
  Rig rig;
  auto q1 = rig.device->create_queue(0);
  auto q2 = rig.device->create_queue(0);
  auto a = rig.buffer(4096), b = rig.buffer(4096);
  const auto data = random_bytes(4096, 10);
  q1->write(a.get(), 0, data.data(), data.size(), {})->wait();
  std::vector<uint8_t> host(4096, 0);
  rig.fake->hang = true;  // the read stays pending, so the copy must depend on it
  auto read = q1->read(a.get(), 0, host.data(), host.size(), {});
  plugin::Fence* waits[] = {read.get()};
  auto copy = q2->copy(a.get(), 0, b.get(), 0, 16, waits);
  read.reset();  // the host may drop a fence once it is in a wait list
  rig.fake->hang = false;
  copy->wait();  // only q2's fence is waited for
  CHECK(host == data);
  CHECK(rig.fake->submissions().back().dependencies == 1);
}

TEST_CASE("copies, and wait lists across queues become submission dependencies") {
  Rig rig;
  auto q1 = rig.device->create_queue(0);
  auto q2 = rig.device->create_queue(SPARKLE_QUEUE_TRANSFER);
  auto a = rig.buffer(8192), b = rig.buffer(8192, SPARKLE_MEMORY_READBACK);
  const auto data = random_bytes(8192, 4);
  q1->write(a.get(), 0, data.data(), data.size(), {})->wait();
  rig.fake->hang = true;  // keep the copy pending so the read must depend on it
  auto copied = q1->copy(a.get(), 4, b.get(), 8, 4000, {});
  plugin::Fence* waits[] = {copied.get()};
  auto readback = q2->read(b.get(), 8, nullptr, 0, waits);
  rig.fake->hang = false;
  copied->wait();
  readback->wait();
  const auto subs = rig.fake->submissions();
  CHECK(subs.back().dependencies == 1);
  CHECK(std::memcmp(static_cast<uint8_t*>(b->map()) + 8, data.data() + 4, 4000) == 0);
  // A signalled fence adds no dependency.
  plugin::Fence* done[] = {copied.get()};
  q2->copy(a.get(), 0, b.get(), 0, 16, done)->wait();
  CHECK(rig.fake->submissions().back().dependencies == 0);
}

TEST_CASE("a conv2d dispatch decodes back to the planned launch, on each generation") {
  for (const char* target : {"gfx1100", "gfx1030", "gfx90a"}) {
    CAPTURE(target);
    Rig rig(target);
    const Generation gen = *generation_of(target);
    for (const char* kernel : {"direct", "tiled"}) {
      CAPTURE(kernel);
      EnvVar env("SPARKLE_AMDGPU_KERNEL", kernel);
      auto device = rig.backend->open_device(0);
      const auto d = conv_desc(2, 6, 9, 7, 10, 3, 2, true);
      auto plan = device->plan_conv2d(d);
      auto* amd_plan = static_cast<AmdPlan*>(plan.get());
      auto x = device->create_buffer(4 * 2 * 6 * 9 * 7);
      auto w = device->create_buffer(4 * 10 * 3 * 3 * 3);
      auto bias = device->create_buffer(4 * 10);
      auto y = device->create_buffer(4 * 2 * 10 * 9 * 7);
      auto q = device->create_queue(0);
      q->conv2d(plan.get(), x.get(), w.get(), bias.get(), y.get(), {})->wait();
      const auto sub = rig.fake->submissions().back();
      REQUIRE(sub.dispatches.size() == 1);
      const auto& rec = sub.dispatches[0];
      const Launch& l = amd_plan->launch();
      CHECK(rec.kernel == l.kernel);
      CHECK(rec.kernel == std::string("conv2d_") + kernel);
      for (int i = 0; i < 3; ++i) {
        CHECK(rec.groups[i] == l.groups[i]);
        CHECK(rec.group_size[i] == l.group_size[i]);
      }
      CHECK(rec.args.at("x") == static_cast<AmdBuffer*>(x.get())->bo()->va());
      CHECK(rec.args.at("w") == static_cast<AmdBuffer*>(w.get())->bo()->va());
      CHECK(rec.args.at("bias") == static_cast<AmdBuffer*>(bias.get())->bo()->va());
      CHECK(rec.args.at("y") == static_cast<AmdBuffer*>(y.get())->bo()->va());
      for (const auto& a : l.args)
        if (a.operand == Operand::Value) CHECK_MESSAGE(rec.args.at(a.name) == a.value, a.name);
      // The program registers, from the generation's table.
      const auto& kd = amd_plan->kernel().descriptor;
      CHECK(rec.registers.at(0x2E12) == kd.compute_pgm_rsrc1);
      if (gen == Generation::Gfx9) {
        CHECK(rec.registers.count(0x2E28) == 0);  // that is COMPUTE_STATIC_THREAD_MGMT_SE7 there
        CHECK(rec.registers.at(0x2E2D) == kd.compute_pgm_rsrc3);
      } else {
        CHECK(rec.registers.at(0x2E28) == kd.compute_pgm_rsrc3);
      }
      // Every IB: flush, invalidate, timestamp, dispatch, flush, timestamp.
      CHECK(sub.decoded.acquires == 1);
      CHECK(sub.decoded.timestamps.size() == 2);
      CHECK(sub.decoded.events == std::vector<uint32_t>{7, 7});
      CHECK(sub.ib.size() % 8 == 0);
    }
  }
}

TEST_CASE("fence_elapsed_ns comes from the IB's two GPU timestamps") {
  Rig rig;
  rig.fake->ticks_per_submission = 12345;  // at 100 MHz (gpu_counter_freq 100000 kHz)
  auto q = rig.device->create_queue(0);
  auto buf = rig.buffer(64);
  const auto data = random_bytes(64, 5);
  auto f = q->write(buf.get(), 0, data.data(), 64, {});
  CHECK(f->elapsed_ns() == 123450);
}

TEST_CASE("the v1.0 synchronous calls run on the device's own queue") {
  Rig rig;
  auto buf = rig.device->create_buffer(256);
  const auto data = random_bytes(256, 6);
  buf->upload(0, data.data(), 256);
  std::vector<uint8_t> back(256, 0);
  buf->download(0, back.data(), 256);
  CHECK(back == data);
  auto plan = rig.device->plan_conv2d(conv_desc(1, 1, 8, 8, 1, 1, 1, false));
  auto x = rig.device->create_buffer(256), w = rig.device->create_buffer(4),
       y = rig.device->create_buffer(256);
  auto f = plan->enqueue(x.get(), w.get(), nullptr, y.get());
  f->wait();
  CHECK(f->poll());
  CHECK(std::string(plan->kernel_name()) == "conv2d_direct");
  CHECK(rig.fake->submissions().back().dispatches.at(0).args.at("bias") == 0);
}

// ---- failures reaching the caller ----

TEST_CASE("ENOMEM from amdgpu_bo_alloc is SPARKLE_OUT_OF_MEMORY naming the request") {
  Rig rig;
  rig.fake->fail("bo_alloc", -ENOMEM);
  const auto e = error_of([&] { rig.device->create_buffer(1 << 20); });
  CHECK(e.code() == SPARKLE_OUT_OF_MEMORY);
  CHECK(std::string(e.what()) ==
        "amdgpu_bo_alloc(1048576 bytes of VRAM for a device buffer) on /dev/dri/renderD128: out of "
        "GPU memory: Cannot allocate memory (errno 12)");
  // The device keeps working.
  CHECK(rig.device->create_buffer(16) != nullptr);
}

TEST_CASE("a failed step of buffer creation undoes the earlier ones") {
  Rig rig;
  SUBCASE("VA range") { rig.fake->fail("va_range_alloc", -ENOMEM); }
  SUBCASE("VA map") { rig.fake->fail("bo_va_op_map", -EINVAL); }
  SUBCASE("CPU map") { rig.fake->fail("bo_cpu_map", -EFAULT); }
  const auto e = error_of([&] { rig.buffer(4096, SPARKLE_MEMORY_UPLOAD); });
  CHECK(e.code() != SPARKLE_OK);
  // Rig's destructor checks nothing leaked.
}

TEST_CASE("a fence that does not signal is a timeout error after SPARKLE_AMDGPU_FENCE_TIMEOUT_MS") {
  EnvVar env("SPARKLE_AMDGPU_FENCE_TIMEOUT_MS", "25");
  Rig rig;
  auto q = rig.device->create_queue(0);
  auto buf = rig.buffer(64);
  const auto data = random_bytes(64, 7);
  rig.fake->hang = true;
  auto f = q->write(buf.get(), 0, data.data(), 64, {});
  CHECK_FALSE(f->poll());
  const auto e = error_of([&] { f->wait(); });
  CHECK(e.code() == SPARKLE_DEVICE_ERROR);
  CHECK(std::string(e.what()).find("write of 64 bytes (sequence 1) did not finish within 25 ms") !=
        std::string::npos);
  CHECK(rig.fake->last_fence_timeout_ns() == 25000000);
  rig.fake->hang = false;  // let the queue's teardown finish
}

TEST_CASE("a bad SPARKLE_AMDGPU_FENCE_TIMEOUT_MS is an error naming the variable") {
  EnvVar env("SPARKLE_AMDGPU_FENCE_TIMEOUT_MS", "soon");
  auto fake = fake_with({"gfx1100"});
  AmdBackend b(fake);
  CHECK(b.devices().empty());
  CHECK(b.unavailable_reason().find("SPARKLE_AMDGPU_FENCE_TIMEOUT_MS=soon must be") !=
        std::string::npos);
}

TEST_CASE("a lost device fails the call and every later one, saying the device must be reopened") {
  Rig rig;
  auto q = rig.device->create_queue(0);
  auto buf = rig.buffer(64);
  const auto data = random_bytes(64, 8);
  SUBCASE("at submission (GPU reset: -ECANCELED)") {
    rig.fake->fail("cs_submit", -ECANCELED);
    const auto e = error_of([&] { q->write(buf.get(), 0, data.data(), 64, {}); });
    CHECK(e.code() == SPARKLE_DEVICE_ERROR);
    CHECK(std::string(e.what()).find(
              "amdgpu_cs_submit(write of 64 bytes) on /dev/dri/renderD128: the "
              "GPU was reset or removed") != std::string::npos);
  }
  SUBCASE("while waiting (device removed: -ENODEV)") {
    auto f = q->write(buf.get(), 0, data.data(), 64, {});
    rig.fake->fail("cs_query_fence_status", -ENODEV);
    const auto e = error_of([&] { f->wait(); });
    CHECK(std::string(e.what()).find("must be reopened") != std::string::npos);
    // The fence keeps reporting its failure.
    CHECK(error_of([&] { f->wait(); }).code() == SPARKLE_DEVICE_ERROR);
  }
  const auto later = error_of([&] { rig.device->create_buffer(16); });
  CHECK(later.code() == SPARKLE_DEVICE_ERROR);
  CHECK(std::string(later.what()).find("the GPU was reset or removed") != std::string::npos);
  CHECK(error_of([&] {
          rig.device->check_supported(conv_desc(1, 1, 4, 4, 1, 1, 1, false));
        }).code() == SPARKLE_DEVICE_ERROR);
}

TEST_CASE("unsupported sizes are refused with the reason") {
  Rig rig;
  auto d = conv_desc(1, 1, 4, 4, 1, 1, 1, false);
  d.n = int64_t{1} << 32;
  const auto e = error_of([&] { rig.device->check_supported(d); });
  CHECK(e.code() == SPARKLE_UNSUPPORTED);
  CHECK(std::string(e.what()).find("n=4294967296 does not fit") != std::string::npos);
}

TEST_CASE("SPARKLE_AMDGPU_KERNEL picks the kernel; a bad value names the variable") {
  Rig rig;
  const auto d = conv_desc(1, 8, 16, 16, 16, 3, 1, false);
  {
    EnvVar env("SPARKLE_AMDGPU_KERNEL", nullptr);
    CHECK(std::string(rig.backend->open_device(0)->plan_conv2d(d)->kernel_name()) ==
          "conv2d_tiled");
  }
  {
    EnvVar env("SPARKLE_AMDGPU_KERNEL", "direct");
    CHECK(std::string(rig.backend->open_device(0)->plan_conv2d(d)->kernel_name()) ==
          "conv2d_direct");
  }
  {
    EnvVar env("SPARKLE_AMDGPU_KERNEL", "fast");
    const auto e = error_of([&] { rig.backend->open_device(0); });
    CHECK(std::string(e.what()) == "SPARKLE_AMDGPU_KERNEL=fast must be auto, direct or tiled");
  }
}

// ---- the program cache ----

namespace {

struct BlobHost {
  static std::map<std::string, std::vector<uint8_t>> blobs;
  static std::vector<std::string> events;
  static std::string last_kind, last_options;
  static size_t last_source_size;
  static std::string key(const sparkle_blob_key* k) {
    return std::string(k->plugin) + "|" + k->plugin_build_id + "|" + k->kind + "|" +
           k->device_fingerprint + "|" + k->options + "|" +
           std::string(static_cast<const char*>(k->source), k->source_size);
  }
  static void* get(const sparkle_blob_key* k, size_t* size) {
    last_kind = k->kind;
    last_options = k->options;
    last_source_size = k->source_size;
    auto it = blobs.find(key(k));
    if (it == blobs.end()) return nullptr;
    void* p = std::malloc(it->second.size());
    std::memcpy(p, it->second.data(), it->second.size());
    *size = it->second.size();
    return p;
  }
  static void release(void* p) { std::free(p); }
  static void put(const sparkle_blob_key* k, const void* data, size_t size, double) {
    blobs[key(k)] = std::vector<uint8_t>(static_cast<const uint8_t*>(data),
                                         static_cast<const uint8_t*>(data) + size);
    events.push_back("put");
  }
  static void reject(const sparkle_blob_key* k, const char*) {
    blobs.erase(key(k));
    events.push_back("reject");
  }
  static void event(sparkle_cache_event e, double) {
    events.push_back(e == SPARKLE_CACHE_MEMORY_HIT ? "memory"
                     : e == SPARKLE_CACHE_DISK_HIT ? "disk"
                                                   : "compile");
  }
  static sparkle_status make_status(sparkle_code, const char*) { return nullptr; }
};
std::map<std::string, std::vector<uint8_t>> BlobHost::blobs;
std::vector<std::string> BlobHost::events;
std::string BlobHost::last_kind, BlobHost::last_options;
size_t BlobHost::last_source_size = 0;

}  // namespace

TEST_CASE("code objects go through the live cache and the blob store; bad entries are reloaded") {
  sparkle_host_services host{};
  host.struct_size = sizeof host;
  host.abi_version = SPARKLE_PLUGIN_ABI_VERSION;
  host.make_status = &BlobHost::make_status;
  host.blob_get = &BlobHost::get;
  host.blob_release = &BlobHost::release;
  host.blob_put = &BlobHost::put;
  host.blob_reject = &BlobHost::reject;
  host.cache_event = &BlobHost::event;
  auto& state = plugin::detail::state();
  const auto* saved = state.host;
  state.host = &host;
  BlobHost::blobs.clear();
  BlobHost::events.clear();
  {
    Rig rig;
    const auto d = conv_desc(1, 2, 5, 5, 3, 3, 1, false);
    rig.device->plan_conv2d(d);                   // miss everywhere: load the ELF, store it
    rig.device->plan_conv2d(d);                   // live hit
    rig.backend->open_device(0)->plan_conv2d(d);  // a new device: disk hit
    CHECK(BlobHost::events == std::vector<std::string>{"compile", "put", "memory", "disk"});
    CHECK(BlobHost::last_kind == "amdgpu-loaded-code-object");
    CHECK(BlobHost::last_options.find("-nogpulib") != std::string::npos);
    CHECK(BlobHost::last_source_size == embedded_code_object("gfx1100")->size);
    // A corrupt entry is rejected and the object loaded again.
    REQUIRE(BlobHost::blobs.size() == 1);
    auto& payload = BlobHost::blobs.begin()->second;
    payload[payload.size() / 2] ^= 0xFF;
    BlobHost::events.clear();
    rig.backend->open_device(0)->plan_conv2d(d);
    CHECK(BlobHost::events == std::vector<std::string>{"reject", "compile", "put"});
  }
  state.host = saved;
}

// ---- the C ABI, as the host drives it ----

namespace {

std::shared_ptr<FakeDrm> g_abi_fake;

class FakeBackedPlugin final : public plugin::Backend {
 public:
  FakeBackedPlugin() : inner_(g_abi_fake) {}
  std::vector<plugin::DeviceEntry> devices() override { return inner_.devices(); }
  std::string unavailable_reason() override { return inner_.unavailable_reason(); }
  std::unique_ptr<plugin::Device> open_device(size_t i) override { return inner_.open_device(i); }

 private:
  AmdBackend inner_;
};

sparkle_code last_code = SPARKLE_OK;
std::string last_message;
sparkle_status record_status(sparkle_code code, const char* message) {
  last_code = code;
  last_message = message;
  return reinterpret_cast<sparkle_status>(&last_code);
}

}  // namespace

TEST_CASE("through the C ABI: queues, staging maps, async transfers and error statuses") {
  g_abi_fake = fake_with({"gfx1100"});
  const sparkle_plugin* p =
      plugin::detail::descriptor<FakeBackedPlugin>("amdgpu", "test", "test-build");
  REQUIRE(bool(p->queue_create));
  sparkle_host_services host{};
  host.struct_size = sizeof host;
  host.abi_version = SPARKLE_PLUGIN_ABI_VERSION;
  host.make_status = &record_status;
  auto& state = plugin::detail::state();
  const auto* saved = state.host;
  REQUIRE(p->init(&host) == nullptr);
  REQUIRE(p->device_count() == 1);
  sparkle_device dev = nullptr;
  REQUIRE(p->open_device(0, &dev) == nullptr);
  sparkle_queue q = nullptr;
  REQUIRE(p->queue_create(dev, 0, &q) == nullptr);
  sparkle_buffer_desc bd{};
  bd.struct_size = sizeof bd;
  bd.kind = SPARKLE_MEMORY_UPLOAD;
  bd.bytes = 512;
  sparkle_buffer up = nullptr, device_buf = nullptr;
  REQUIRE(p->buffer_create_ex(dev, &bd, &up) == nullptr);
  bd.kind = SPARKLE_MEMORY_DEVICE;
  REQUIRE(p->buffer_create_ex(dev, &bd, &device_buf) == nullptr);
  auto* mapped = static_cast<uint8_t*>(p->buffer_map(up));
  REQUIRE(mapped != nullptr);
  CHECK(p->buffer_map(device_buf) == nullptr);
  const auto data = random_bytes(512, 9);
  std::memcpy(mapped, data.data(), 512);
  sparkle_fence copied = nullptr, read = nullptr;
  REQUIRE(p->enqueue_copy(q, up, 0, device_buf, 0, 512, nullptr, 0, &copied) == nullptr);
  std::vector<uint8_t> back(512, 0);
  REQUIRE(p->enqueue_read(q, device_buf, 0, back.data(), 512, &copied, 1, &read) == nullptr);
  p->fence_destroy(copied);  // allowed right after the enqueue
  REQUIRE(p->fence_wait(read) == nullptr);
  CHECK(p->fence_poll(read) == 1);
  CHECK(p->fence_elapsed_ns(read) > 0);
  p->fence_destroy(read);
  CHECK(back == data);
  // An error crosses the ABI as a status with the plugin's message.
  sparkle_fence f = nullptr;
  CHECK(p->enqueue_write(q, device_buf, 500, data.data(), 100, nullptr, 0, &f) != nullptr);
  CHECK(last_code == SPARKLE_INVALID_ARGUMENT);
  CHECK(last_message.find("runs past the 512-byte buffer") != std::string::npos);
  p->buffer_destroy(up);
  p->buffer_destroy(device_buf);
  p->queue_destroy(q);
  p->close_device(dev);
  p->shutdown();
  state.host = saved;
  CHECK(g_abi_fake->live_objects().empty());
  CHECK_CLEAN(*g_abi_fake);
  g_abi_fake.reset();
}
