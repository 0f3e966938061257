// Engine: validates a call, picks the device, moves data to it, runs the
// backend's plan and brings the result back.
#include <sparkle/engine.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>

#include "log/log.hpp"
#include "registry/plugin_registry.hpp"

namespace sparkle {
namespace detail {
extern const char* const kBuildId;
}

const char* version() noexcept { return "0.1.0"; }
const char* build_id() noexcept { return detail::kBuildId; }

namespace {

const char* kind_name(sparkle_device_kind kind) {
  switch (kind) {
    case SPARKLE_DEVICE_CPU: return "cpu";
    case SPARKLE_DEVICE_GPU: return "gpu";
    case SPARKLE_DEVICE_SOFTWARE_GPU: return "software-gpu";
    case SPARKLE_DEVICE_SIMULATED: return "simulated";
  }
  return "unknown";
}

// Static preference used by "auto" until the learning selector lands
// (issue 5): hardware GPUs, then the CPU, then GPU APIs emulated on the CPU.
int kind_rank(sparkle_device_kind kind) {
  switch (kind) {
    case SPARKLE_DEVICE_GPU: return 0;
    case SPARKLE_DEVICE_CPU: return 1;
    case SPARKLE_DEVICE_SOFTWARE_GPU: return 2;
    case SPARKLE_DEVICE_SIMULATED: return 3;
  }
  return 4;
}

// Owns one plugin handle and destroys it through the plugin's own function.
template <class H>
struct Handle {
  H h = nullptr;
  void (*destroy)(H) = nullptr;
  Handle() = default;
  Handle(H handle, void (*fn)(H)) : h(handle), destroy(fn) {}
  Handle(Handle&& other) noexcept : h(other.h), destroy(other.destroy) { other.h = nullptr; }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle& operator=(Handle&&) = delete;
  ~Handle() {
    if (h != nullptr && destroy != nullptr) destroy(h);
  }
};

}  // namespace

struct Engine::Impl {
  struct Device {
    const sparkle_plugin* api = nullptr;
    DeviceProperties props;
    sparkle_device_kind kind = SPARKLE_DEVICE_CPU;
    std::once_flag open_once;
    sparkle_device handle = nullptr;
    std::string open_error;
    // Plans by descriptor string. Plans may be enqueued concurrently.
    std::shared_mutex plans_mutex;
    std::map<std::string, sparkle_plan> plans;
  };

  explicit Impl(const EngineOptions& options) : registry(options) {
    for (const auto& plugin : registry.plugins()) {
      const size_t count = plugin.api->device_count();
      for (size_t i = 0; i < count; ++i) {
        sparkle_device_info info{};
        info.struct_size = sizeof(info);
        sparkle_status st = plugin.api->device_info(i, &info);
        if (st != nullptr) {
          log::warn("engine", std::string(plugin.api->name) + ": device " + std::to_string(i) +
                                  " skipped: " + registry::take_message(st));
          continue;
        }
        auto d = std::make_unique<Device>();
        d->api = plugin.api;
        d->kind = info.kind;
        d->props.backend = plugin.api->name;
        d->props.index = i;
        d->props.name = d->props.backend + ":" + std::to_string(i);
        d->props.kind = kind_name(info.kind);
        d->props.description = info.description != nullptr ? info.description : "";
        d->props.fingerprint = info.fingerprint != nullptr ? info.fingerprint : "";
        for (size_t p = 0; p < info.property_count; ++p)
          d->props.properties.emplace_back(info.properties[p].key ? info.properties[p].key : "",
                                           info.properties[p].value ? info.properties[p].value
                                                                    : "");
        devices.push_back(std::move(d));
      }
    }
  }

  ~Impl() {
    for (auto& d : devices) {
      for (auto& [key, plan] : d->plans) d->api->plan_destroy(plan);
      if (d->handle != nullptr) d->api->close_device(d->handle);
    }
    devices.clear();
    // registry_ is destroyed after this: plugins shut down, then unload.
  }

  sparkle_device open(Device& d) {
    std::call_once(d.open_once, [&] {
      sparkle_status st = d.api->open_device(d.props.index, &d.handle);
      if (st != nullptr) {
        d.open_error = registry::take_message(st);
        d.handle = nullptr;
      }
    });
    if (d.handle == nullptr)
      throw Error(ErrorCode::device_error, d.props.name + ": cannot open: " + d.open_error);
    return d.handle;
  }

  std::string available_names() const {
    std::string names;
    for (const auto& d : devices) names += (names.empty() ? "" : ", ") + d->props.name;
    return names.empty() ? "none" : names;
  }

  // "" if supported, else the reason.
  std::string unsupported_reason(Device& d, const sparkle_conv2d_desc& cdesc) {
    sparkle_device h = open(d);
    sparkle_status st = d.api->supports_conv2d(h, &cdesc);
    return st == nullptr ? std::string() : registry::take_message(st);
  }

  Device& resolve(const Conv2dDesc& desc, const sparkle_conv2d_desc& cdesc,
                  const RunOptions& options) {
    std::string want = options.device;
    if (want.empty()) {
      const char* env = std::getenv("SPARKLE_DEVICE");
      want = (env != nullptr && env[0] != '\0') ? env : "auto";
    }
    if (want == "auto") {
      Device* best = nullptr;
      std::string reasons;
      for (auto& d : devices) {
        std::string why;
        try {
          why = unsupported_reason(*d, cdesc);
        } catch (const Error& e) {
          why = e.what();
        }
        if (!why.empty()) {
          reasons += "; " + d->props.name + ": " + why;
          continue;
        }
        if (best == nullptr || kind_rank(d->kind) < kind_rank(best->kind)) best = d.get();
      }
      if (best == nullptr)
        throw Error(ErrorCode::unsupported,
                    "no device supports " + desc.to_string() +
                        (devices.empty() ? std::string(" (no devices loaded)") : reasons));
      return *best;
    }
    std::string backend = want;
    size_t index = 0;
    if (auto colon = want.find(':'); colon != std::string::npos) {
      backend = want.substr(0, colon);
      const std::string idx = want.substr(colon + 1);
      if (idx.empty() || idx.size() > 6 || !std::all_of(idx.begin(), idx.end(), ::isdigit))
        throw Error(ErrorCode::not_found,
                    "device '" + want + "': index '" + idx + "' is not a number");
      index = std::stoul(idx);
    }
    bool backend_known = false;
    for (auto& d : devices) {
      if (d->props.backend != backend) continue;
      backend_known = true;
      if (d->props.index == index) {
        std::string why = unsupported_reason(*d, cdesc);
        if (!why.empty())
          throw Error(ErrorCode::unsupported, d->props.name + " cannot run " + desc.to_string() +
                                                  ": " + why);
        return *d;
      }
    }
    for (const auto& rec : registry.records())
      if (!backend_known && rec.name == backend)
        throw Error(ErrorCode::not_found, "device '" + want + "': backend '" + backend +
                                              "' has no devices: " + rec.reason);
    throw Error(ErrorCode::not_found,
                "unknown device '" + want + "'; available: " + available_names());
  }

  sparkle_plan plan_for(Device& d, const Conv2dDesc& desc, const sparkle_conv2d_desc& cdesc) {
    const std::string key = desc.to_string();
    {
      std::shared_lock lock(d.plans_mutex);
      if (auto it = d.plans.find(key); it != d.plans.end()) return it->second;
    }
    sparkle_plan plan = nullptr;
    registry::throw_if_error(d.api->plan_conv2d(open(d), &cdesc, &plan), d.props.name + ": plan");
    std::unique_lock lock(d.plans_mutex);
    auto [it, inserted] = d.plans.emplace(key, plan);
    if (!inserted) d.api->plan_destroy(plan);  // another thread won the race
    return it->second;
  }

  struct DeviceBuffer {
    Handle<sparkle_buffer> handle;
    bool wrapped = false;  // aliases the caller's memory: no copies needed
  };

  // Zero-copy for host-memory devices, else a device buffer plus upload.
  // The result is filled in place (guaranteed copy elision).
  DeviceBuffer buffer(Device& d, const float* data, size_t count, bool upload, const char* what) {
    const size_t bytes = count * sizeof(float);
    sparkle_device h = open(d);
    sparkle_buffer b = nullptr;
    if (d.api->buffer_wrap_host != nullptr) {
      sparkle_status st = d.api->buffer_wrap_host(h, const_cast<float*>(data), bytes, &b);
      if (st == nullptr) return {{b, d.api->buffer_destroy}, true};
      registry::take_message(st);  // unsupported: fall back to a copy
    }
    registry::throw_if_error(d.api->buffer_create(h, bytes, &b),
                             d.props.name + ": allocate " + what);
    DeviceBuffer owned{{b, d.api->buffer_destroy}, false};
    if (upload)
      registry::throw_if_error(d.api->buffer_upload(b, 0, data, bytes),
                               d.props.name + ": upload " + what);
    return owned;
  }

  registry::PluginRegistry registry;
  std::vector<std::unique_ptr<Device>> devices;
};

Engine::Engine() : Engine(EngineOptions{}) {}
Engine::Engine(const EngineOptions& options) : impl_(std::make_unique<Impl>(options)) {}
Engine::~Engine() = default;

const std::vector<PluginRecord>& Engine::plugins() const { return impl_->registry.records(); }

std::vector<DeviceProperties> Engine::devices() const {
  std::vector<DeviceProperties> out;
  for (const auto& d : impl_->devices) out.push_back(d->props);
  return out;
}

namespace {
void check_size(const char* name, size_t got, int64_t want) {
  if (static_cast<int64_t>(got) != want)
    throw Error(ErrorCode::invalid_argument, std::string(name) + " has " + std::to_string(got) +
                                                 " elements, desc needs " + std::to_string(want));
}
}  // namespace

std::string Engine::resolve_device(const Conv2dDesc& desc, const RunOptions& options) {
  desc.validate();
  const sparkle_conv2d_desc cdesc = desc.to_c();
  return impl_->resolve(desc, cdesc, options).props.name;
}

RunResult Engine::conv2d(const Conv2dDesc& desc, std::span<const float> x,
                         std::span<const float> w, std::span<const float> bias,
                         std::span<float> y, const RunOptions& options) {
  desc.validate();
  check_size("x", x.size(), desc.input_elements());
  check_size("w", w.size(), desc.weight_elements());
  check_size("bias", bias.size(), desc.bias_elements());
  check_size("y", y.size(), desc.output_elements());
  const sparkle_conv2d_desc cdesc = desc.to_c();
  auto& d = impl_->resolve(desc, cdesc, options);

  const auto start = std::chrono::steady_clock::now();
  sparkle_plan plan = impl_->plan_for(d, desc, cdesc);
  auto bx = impl_->buffer(d, x.data(), x.size(), true, "x");
  auto bw = impl_->buffer(d, w.data(), w.size(), true, "w");
  std::optional<Impl::DeviceBuffer> bb;
  if (desc.has_bias) bb.emplace(impl_->buffer(d, bias.data(), bias.size(), true, "bias"));
  auto by = impl_->buffer(d, y.data(), y.size(), false, "y");

  sparkle_fence fence = nullptr;
  registry::throw_if_error(d.api->enqueue_conv2d(plan, bx.handle.h, bw.handle.h,
                                                 bb ? bb->handle.h : nullptr, by.handle.h, &fence),
                           d.props.name + ": enqueue");
  Handle<sparkle_fence> owned_fence(fence, d.api->fence_destroy);
  registry::throw_if_error(d.api->fence_wait(fence), d.props.name + ": conv2d");
  RunResult result;
  result.device = d.props.name;
  result.kernel = d.api->plan_kernel_name != nullptr ? d.api->plan_kernel_name(plan) : "";
  if (d.api->fence_elapsed_ns != nullptr) {
    const int64_t ns = d.api->fence_elapsed_ns(fence);
    if (ns > 0) result.device_ms = static_cast<double>(ns) * 1e-6;
  }
  // A wrapped y already holds the result; a device buffer must be read back.
  if (!by.wrapped)
    registry::throw_if_error(
        d.api->buffer_download(by.handle.h, 0, y.data(), y.size() * sizeof(float)),
        d.props.name + ": download y");
  result.wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace sparkle
