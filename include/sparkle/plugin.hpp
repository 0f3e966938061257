// C++ helper for plugin authors: write a backend as C++ classes and let
// SPARKLE_DEFINE_PLUGIN generate the C descriptor of plugin.h. Every
// trampoline catches all exceptions, so none crosses the ABI.
#pragma once

#include <sparkle/plugin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sparkle::plugin {

// Throw this inside a plugin; the trampoline turns it into a status.
class Error : public std::runtime_error {
 public:
  Error(sparkle_code code, const std::string& message) : std::runtime_error(message), code_(code) {}
  sparkle_code code() const noexcept { return code_; }

 private:
  sparkle_code code_;
};

class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual void upload(size_t offset, const void* src, size_t bytes) = 0;
  virtual void download(size_t offset, void* dst, size_t bytes) = 0;
  // since 1.3: the persistent CPU address of staging memory (or of any
  // buffer of a host-memory device), or nullptr when there is none.
  virtual void* map() { return nullptr; }
  // since 1.3: the size in bytes, for range checks (SIZE_MAX: unknown).
  virtual size_t size() const { return SIZE_MAX; }
};

class Fence {
 public:
  virtual ~Fence() = default;
  virtual bool poll() = 0;
  // Blocks; throws if the fenced work failed.
  virtual void wait() = 0;
  // Device time of the fenced work in ns, or -1 when the device cannot tell.
  virtual int64_t elapsed_ns() { return -1; }
};

class Plan {
 public:
  virtual ~Plan() = default;
  virtual const char* kernel_name() const = 0;
  // bias is nullptr unless the descriptor has one.
  virtual std::unique_ptr<Fence> enqueue(Buffer* x, Buffer* w, Buffer* bias, Buffer* y) = 0;
};

class Plan;

// since 1.3: the fences an enqueue waits for (see plugin.h's rules). They
// may be destroyed once the enqueue returns, so keep what you need of them.
using WaitList = std::span<Fence* const>;

// since 1.3: an in-order queue of one device. Each call waits for `waits`,
// runs after everything enqueued before it on this queue, and returns a
// fence for its own completion.
class Queue {
 public:
  virtual ~Queue() = default;
  // src must stay valid until the fence signals.
  virtual std::unique_ptr<Fence> write(Buffer* dst, size_t offset, const void* src, size_t bytes,
                                       WaitList waits) = 0;
  // dst holds the data once the fence signals.
  virtual std::unique_ptr<Fence> read(Buffer* src, size_t offset, void* dst, size_t bytes,
                                      WaitList waits) = 0;
  virtual std::unique_ptr<Fence> copy(Buffer* src, size_t src_offset, Buffer* dst,
                                      size_t dst_offset, size_t bytes, WaitList waits) = 0;
  // bias is nullptr unless the plan's descriptor has one.
  virtual std::unique_ptr<Fence> conv2d(Plan* plan, Buffer* x, Buffer* w, Buffer* bias, Buffer* y,
                                        WaitList waits) = 0;
};

// since 1.4: one kernel variant of an op, for a host-side tuner (see
// sparkle_variant_info in plugin.h; 0 means unknown).
struct VariantInfo {
  std::string name;         // stable for one plugin build and device
  std::string family;       // "gemm", "winograd4", ...
  bool is_default = false;  // what plan_conv2d picks without a tuning record
  uint64_t work_groups = 0;
  uint32_t group_size = 0;
  uint32_t shared_bytes = 0;
  uint32_t registers = 0;
  uint32_t passes = 1;
  double flops = 0;
  double bytes = 0;
  double efficiency = 0;
};

class Device {
 public:
  virtual ~Device() = default;
  // Throw Error(SPARKLE_UNSUPPORTED, why) when the op cannot run here.
  virtual void check_supported(const sparkle_conv2d_desc& desc) = 0;
  virtual std::unique_ptr<Buffer> create_buffer(size_t bytes) = 0;
  // Zero-copy view of caller memory; nullptr when the device cannot.
  virtual std::unique_ptr<Buffer> wrap_host(void* /*host*/, size_t /*bytes*/) { return nullptr; }
  virtual std::unique_ptr<Plan> plan_conv2d(const sparkle_conv2d_desc& desc) = 0;
  // since 1.3: a buffer of a memory kind. The default serves device memory
  // (dense layout whatever the dims) through create_buffer and refuses
  // staging kinds.
  virtual std::unique_ptr<Buffer> create_buffer_ex(const sparkle_buffer_desc& desc) {
    if (desc.kind != SPARKLE_MEMORY_DEVICE)
      throw Error(SPARKLE_UNSUPPORTED, "device has no staging memory");
    return create_buffer(desc.bytes);
  }
  // since 1.3: a new in-order queue (flags: SPARKLE_QUEUE_*), or nullptr
  // when the device runs synchronously only (the host then adapts).
  virtual std::unique_ptr<Queue> create_queue(uint32_t /*flags*/) { return nullptr; }
  // since 1.4: the kernel variants a tuner may choose between for desc, in a
  // deterministic order. The default offers none: plan_conv2d alone plans.
  virtual std::vector<VariantInfo> conv2d_variants(const sparkle_conv2d_desc& /*desc*/) {
    return {};
  }
  // since 1.4: plan_conv2d with variant `index` of conv2d_variants(desc).
  virtual std::unique_ptr<Plan> plan_conv2d_variant(const sparkle_conv2d_desc& /*desc*/,
                                                    size_t /*index*/) {
    throw Error(SPARKLE_UNSUPPORTED, "device offers no kernel variants");
  }
};

struct DeviceEntry {
  sparkle_device_kind kind = SPARKLE_DEVICE_CPU;
  std::string description;
  std::string fingerprint;
  std::vector<std::pair<std::string, std::string>> properties;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::vector<DeviceEntry> devices() = 0;
  // Why devices() is empty, for `sparkle-run devices`.
  virtual std::string unavailable_reason() { return "no devices found"; }
  virtual std::unique_ptr<Device> open_device(size_t index) = 0;
};

namespace detail {

struct State {
  const sparkle_host_services* host = nullptr;
  const char* name = "";
  std::unique_ptr<Backend> backend;
  std::vector<DeviceEntry> devices;
  std::vector<std::vector<sparkle_property>> properties;
  std::string reason;
};

inline State& state() {
  static State s;
  return s;
}

inline sparkle_status make(sparkle_code code, const char* msg) {
  const auto* host = state().host;
  if (host == nullptr || host->make_status == nullptr) return nullptr;
  return host->make_status(code, msg);
}

// Runs fn and converts any exception into a status.
template <class Fn>
sparkle_status guard(Fn&& fn) noexcept {
  try {
    fn();
    return nullptr;
  } catch (const Error& e) {
    return make(e.code(), e.what());
  } catch (const std::bad_alloc&) {
    return make(SPARKLE_OUT_OF_MEMORY, "out of host memory");
  } catch (const std::exception& e) {
    return make(SPARKLE_INTERNAL, e.what());
  } catch (...) {
    return make(SPARKLE_INTERNAL, "unknown exception in plugin");
  }
}

template <class T, class H>
T* from(H handle) {
  return reinterpret_cast<T*>(handle);
}
template <class H, class T>
H to(T* object) {
  return reinterpret_cast<H>(object);
}

template <class BackendT>
sparkle_status init(const sparkle_host_services* host) {
  auto& s = state();
  s.host = host;
  return guard([&] {
    s.backend = std::make_unique<BackendT>();
    s.devices = s.backend->devices();
    s.properties.clear();
    for (auto& d : s.devices) {
      std::vector<sparkle_property> props;
      for (auto& [k, v] : d.properties) props.push_back({k.c_str(), v.c_str()});
      s.properties.push_back(std::move(props));
    }
    if (s.devices.empty()) s.reason = s.backend->unavailable_reason();
  });
}

inline void shutdown() {
  auto& s = state();
  try {
    s.backend.reset();
  } catch (...) {
  }
  s.devices.clear();
  s.properties.clear();
}

inline size_t device_count() { return state().devices.size(); }
inline const char* unavailable_reason() {
  return state().devices.empty() ? state().reason.c_str() : nullptr;
}

inline sparkle_status device_info(size_t index, sparkle_device_info* out) {
  auto& s = state();
  if (index >= s.devices.size()) return make(SPARKLE_NOT_FOUND, "device index out of range");
  const auto& d = s.devices[index];
  out->kind = d.kind;
  out->description = d.description.c_str();
  out->fingerprint = d.fingerprint.c_str();
  out->properties = s.properties[index].data();
  out->property_count = s.properties[index].size();
  return nullptr;
}

inline sparkle_status open_device(size_t index, sparkle_device* out) {
  return guard([&] {
    auto& s = state();
    if (index >= s.devices.size()) throw Error(SPARKLE_NOT_FOUND, "device index out of range");
    *out = to<sparkle_device>(s.backend->open_device(index).release());
  });
}
inline void close_device(sparkle_device d) { delete from<Device>(d); }

inline sparkle_status supports_conv2d(sparkle_device d, const sparkle_conv2d_desc* desc) {
  return guard([&] { from<Device>(d)->check_supported(*desc); });
}
inline sparkle_status buffer_create(sparkle_device d, size_t bytes, sparkle_buffer* out) {
  return guard([&] { *out = to<sparkle_buffer>(from<Device>(d)->create_buffer(bytes).release()); });
}
inline sparkle_status buffer_wrap_host(sparkle_device d, void* host, size_t bytes,
                                       sparkle_buffer* out) {
  return guard([&] {
    auto b = from<Device>(d)->wrap_host(host, bytes);
    if (!b) throw Error(SPARKLE_UNSUPPORTED, "device cannot wrap host memory");
    *out = to<sparkle_buffer>(b.release());
  });
}
inline void buffer_destroy(sparkle_buffer b) { delete from<Buffer>(b); }
inline sparkle_status buffer_upload(sparkle_buffer b, size_t off, const void* src, size_t n) {
  return guard([&] { from<Buffer>(b)->upload(off, src, n); });
}
inline sparkle_status buffer_download(sparkle_buffer b, size_t off, void* dst, size_t n) {
  return guard([&] { from<Buffer>(b)->download(off, dst, n); });
}
inline sparkle_status plan_conv2d(sparkle_device d, const sparkle_conv2d_desc* desc,
                                  sparkle_plan* out) {
  return guard([&] { *out = to<sparkle_plan>(from<Device>(d)->plan_conv2d(*desc).release()); });
}
inline void plan_destroy(sparkle_plan p) { delete from<Plan>(p); }
inline const char* plan_kernel_name(sparkle_plan p) { return from<Plan>(p)->kernel_name(); }
inline sparkle_status enqueue_conv2d(sparkle_plan p, sparkle_buffer x, sparkle_buffer w,
                                     sparkle_buffer b, sparkle_buffer y, sparkle_fence* out) {
  return guard([&] {
    *out = to<sparkle_fence>(
        from<Plan>(p)
            ->enqueue(from<Buffer>(x), from<Buffer>(w), from<Buffer>(b), from<Buffer>(y))
            .release());
  });
}
inline int fence_poll(sparkle_fence f) {
  try {
    return from<Fence>(f)->poll() ? 1 : 0;
  } catch (...) {
    return 1;  // fence_wait reports the error
  }
}
inline sparkle_status fence_wait(sparkle_fence f) {
  return guard([&] { from<Fence>(f)->wait(); });
}
inline int64_t fence_elapsed_ns(sparkle_fence f) {
  try {
    return from<Fence>(f)->elapsed_ns();
  } catch (...) {
    return -1;
  }
}
inline void fence_destroy(sparkle_fence f) { delete from<Fence>(f); }

// since 1.3
inline sparkle_status queue_create(sparkle_device d, uint32_t flags, sparkle_queue* out) {
  return guard([&] {
    auto q = from<Device>(d)->create_queue(flags);
    if (!q) throw Error(SPARKLE_UNSUPPORTED, "device has no queues; it runs synchronously");
    *out = to<sparkle_queue>(q.release());
  });
}
inline void queue_destroy(sparkle_queue q) { delete from<Queue>(q); }
inline sparkle_status buffer_create_ex(sparkle_device d, const sparkle_buffer_desc* desc,
                                       sparkle_buffer* out) {
  return guard([&] {
    if (desc == nullptr || desc->struct_size < sizeof(sparkle_buffer_desc))
      throw Error(SPARKLE_INVALID_ARGUMENT, "buffer desc is missing or too small");
    *out = to<sparkle_buffer>(from<Device>(d)->create_buffer_ex(*desc).release());
  });
}
inline void* buffer_map(sparkle_buffer b) {
  try {
    return from<Buffer>(b)->map();
  } catch (...) {
    return nullptr;
  }
}
inline std::vector<Fence*> wait_list(const sparkle_fence* waits, size_t count) {
  std::vector<Fence*> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i)
    if (waits[i] != nullptr) out.push_back(from<Fence>(waits[i]));
  return out;
}
inline sparkle_status enqueue_write(sparkle_queue q, sparkle_buffer dst, size_t offset,
                                    const void* src, size_t bytes, const sparkle_fence* waits,
                                    size_t wait_count, sparkle_fence* out) {
  return guard([&] {
    const auto list = wait_list(waits, wait_count);
    *out = to<sparkle_fence>(
        from<Queue>(q)->write(from<Buffer>(dst), offset, src, bytes, list).release());
  });
}
inline sparkle_status enqueue_read(sparkle_queue q, sparkle_buffer src, size_t offset, void* dst,
                                   size_t bytes, const sparkle_fence* waits, size_t wait_count,
                                   sparkle_fence* out) {
  return guard([&] {
    const auto list = wait_list(waits, wait_count);
    *out = to<sparkle_fence>(
        from<Queue>(q)->read(from<Buffer>(src), offset, dst, bytes, list).release());
  });
}
inline sparkle_status enqueue_copy(sparkle_queue q, sparkle_buffer src, size_t src_offset,
                                   sparkle_buffer dst, size_t dst_offset, size_t bytes,
                                   const sparkle_fence* waits, size_t wait_count,
                                   sparkle_fence* out) {
  return guard([&] {
    const auto list = wait_list(waits, wait_count);
    *out = to<sparkle_fence>(
        from<Queue>(q)
            ->copy(from<Buffer>(src), src_offset, from<Buffer>(dst), dst_offset, bytes, list)
            .release());
  });
}
inline sparkle_status enqueue_conv2d_on(sparkle_queue q, sparkle_plan p, sparkle_buffer x,
                                        sparkle_buffer w, sparkle_buffer b, sparkle_buffer y,
                                        const sparkle_fence* waits, size_t wait_count,
                                        sparkle_fence* out) {
  return guard([&] {
    const auto list = wait_list(waits, wait_count);
    *out = to<sparkle_fence>(from<Queue>(q)
                                 ->conv2d(from<Plan>(p), from<Buffer>(x), from<Buffer>(w),
                                          from<Buffer>(b), from<Buffer>(y), list)
                                 .release());
  });
}

// since 1.4. Variant names and families are interned for the process, so
// the pointers handed to the host stay valid until shutdown as plugin.h says.
inline const char* intern(const std::string& text) {
  static std::mutex mutex;
  static std::set<std::string> strings;  // node-based: c_str() never moves
  std::lock_guard<std::mutex> lock(mutex);
  return strings.insert(text).first->c_str();
}
inline size_t conv2d_variant_count(sparkle_device d, const sparkle_conv2d_desc* desc) {
  try {
    return from<Device>(d)->conv2d_variants(*desc).size();
  } catch (...) {
    return 0;  // no variants: the host plans through plan_conv2d
  }
}
inline sparkle_status conv2d_variant_info(sparkle_device d, const sparkle_conv2d_desc* desc,
                                          size_t index, sparkle_variant_info* out) {
  return guard([&] {
    if (out == nullptr || out->struct_size < offsetof(sparkle_variant_info, flags) + 4)
      throw Error(SPARKLE_INVALID_ARGUMENT, "variant info is missing or too small");
    const auto variants = from<Device>(d)->conv2d_variants(*desc);
    if (index >= variants.size())
      throw Error(SPARKLE_NOT_FOUND, "variant " + std::to_string(index) + " of " +
                                         std::to_string(variants.size()) + " does not exist");
    const VariantInfo& v = variants[index];
    sparkle_variant_info full;
    std::memset(&full, 0, sizeof full);
    full.flags = v.is_default ? SPARKLE_VARIANT_DEFAULT : 0u;
    full.name = intern(v.name);
    full.family = intern(v.family);
    full.work_groups = v.work_groups;
    full.group_size = v.group_size;
    full.shared_bytes = v.shared_bytes;
    full.registers = v.registers;
    full.passes = v.passes;
    full.flops = v.flops;
    full.bytes = v.bytes;
    full.efficiency = v.efficiency;
    // A host built for an older minor passes a smaller struct: fill what it has.
    const uint32_t caller_size = out->struct_size;
    full.struct_size = caller_size;
    std::memcpy(out, &full, std::min<size_t>(caller_size, sizeof full));
  });
}
inline sparkle_status plan_conv2d_variant(sparkle_device d, const sparkle_conv2d_desc* desc,
                                          size_t index, sparkle_plan* out) {
  return guard([&] {
    *out = to<sparkle_plan>(from<Device>(d)->plan_conv2d_variant(*desc, index).release());
  });
}

template <class BackendT>
const sparkle_plugin* descriptor(const char* name, const char* version, const char* build_id) {
  static const sparkle_plugin d = {
      sizeof(sparkle_plugin),
      SPARKLE_PLUGIN_ABI_VERSION,
      name,
      version,
      build_id,
      &init<BackendT>,
      &shutdown,
      &device_count,
      &unavailable_reason,
      &device_info,
      &open_device,
      &close_device,
      &supports_conv2d,
      &buffer_create,
      &buffer_wrap_host,
      &buffer_destroy,
      &buffer_upload,
      &buffer_download,
      &plan_conv2d,
      &plan_destroy,
      &plan_kernel_name,
      &enqueue_conv2d,
      &fence_poll,
      &fence_wait,
      &fence_elapsed_ns,
      &fence_destroy,
      &queue_create,
      &queue_destroy,
      &buffer_create_ex,
      &buffer_map,
      &enqueue_write,
      &enqueue_read,
      &enqueue_copy,
      &enqueue_conv2d_on,
      &conv2d_variant_count,
      &conv2d_variant_info,
      &plan_conv2d_variant,
  };
  state().name = name;
  return &d;
}

}  // namespace detail

// Logs through the host (adds the plugin name and a thread tag).
inline void log(sparkle_log_level level, const std::string& message) {
  const auto& s = detail::state();
  if (s.host != nullptr && s.host->log != nullptr) s.host->log(level, s.name, message.c_str());
}

// A fence for work that is already complete when enqueue returns.
class CompletedFence final : public Fence {
 public:
  explicit CompletedFence(int64_t elapsed_ns = -1) : elapsed_ns_(elapsed_ns) {}
  bool poll() override { return true; }
  void wait() override {}
  int64_t elapsed_ns() override { return elapsed_ns_; }

 private:
  int64_t elapsed_ns_;
};

}  // namespace sparkle::plugin

// Defines the entry point for BackendT (default-constructible, derived from
// sparkle::plugin::Backend). Use once per plugin, at namespace scope.
#define SPARKLE_DEFINE_PLUGIN(BackendT, NAME, VERSION, BUILD_ID)                                   \
  extern "C" SPARKLE_PLUGIN_EXPORT const sparkle_plugin* sparkle_plugin_entry(                     \
      uint32_t host_abi_version) {                                                                 \
    if (SPARKLE_PLUGIN_ABI_MAJOR_OF(host_abi_version) != SPARKLE_PLUGIN_ABI_MAJOR) return nullptr; \
    return ::sparkle::plugin::detail::descriptor<BackendT>(NAME, VERSION, BUILD_ID);               \
  }
