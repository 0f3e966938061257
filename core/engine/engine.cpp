// Engine: validates a call, picks the device, moves data to it, runs the
// backend's plan and brings the result back.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <sparkle/engine.hpp>
#include <thread>

#include "cache/cache_dir.hpp"
#include "exec/buffer_pool.hpp"
#include "log/log.hpp"
#include "registry/plugin_registry.hpp"
#include "select/selector.hpp"
#include "tune/tuned_plan.hpp"

namespace sparkle {
namespace detail {
extern const char* const kBuildId;
}

const char* version() noexcept { return "0.1.0"; }
const char* build_id() noexcept { return detail::kBuildId; }

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

// What a call cost the caller: wall time, or the device's own report when it
// is larger (a device may report work that finished asynchronously, and
// simulated devices report their modelled time).
double cost_ms(const RunResult& r) { return std::max(r.wall_ms, r.device_ms); }

bool dispatch_verbose() {
  const char* v = std::getenv("SPARKLE_VERBOSE");
  return v != nullptr && std::string(v).find("dispatch") != std::string::npos;
}

std::string profile_path() {
  const std::string dir = cache::cache_directory();
  return dir.empty() ? std::string() : dir + "/selector-profile-v1.txt";
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
    std::once_flag open_once;
    std::once_flag calibrate_once;
    std::once_flag pool_once;
    std::unique_ptr<exec::BufferPool> pool;  // device buffers reused between calls
    sparkle_device handle = nullptr;
    std::string open_error;
    // Plans by descriptor string. Plans may be enqueued concurrently.
    std::shared_mutex plans_mutex;
    std::map<std::string, sparkle_plan> plans;
  };

  explicit Impl(const EngineOptions& options) : registry(options), selector(profile_path()) {
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
        d->props.backend = plugin.api->name;
        d->props.index = i;
        d->props.name = d->props.backend + ":" + std::to_string(i);
        d->props.kind = kind_name(info.kind);
        d->props.description = info.description != nullptr ? info.description : "";
        d->props.fingerprint = info.fingerprint != nullptr ? info.fingerprint : "";
        for (size_t p = 0; p < info.property_count; ++p)
          d->props.properties.emplace_back(
              info.properties[p].key ? info.properties[p].key : "",
              info.properties[p].value ? info.properties[p].value : "");
        devices.push_back(std::move(d));
      }
    }
  }

  ~Impl() {
    selector.save();
    for (auto& d : devices) {
      for (auto& [key, plan] : d->plans) d->api->plan_destroy(plan);
      d->pool.reset();
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

  // The named device, or nullptr for "auto".
  Device* resolve_named(const Conv2dDesc& desc, const sparkle_conv2d_desc& cdesc,
                        const RunOptions& options) {
    std::string want = options.device;
    if (want.empty()) {
      const char* env = std::getenv("SPARKLE_DEVICE");
      want = (env != nullptr && env[0] != '\0') ? env : "auto";
    }
    if (want == "auto") return nullptr;
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
          throw Error(ErrorCode::unsupported,
                      d->props.name + " cannot run " + desc.to_string() + ": " + why);
        return d.get();
      }
    }
    for (const auto& rec : registry.records())
      if (!backend_known && rec.name == backend)
        throw Error(ErrorCode::not_found, "device '" + want + "': backend '" + backend +
                                              "' has no devices: " + rec.reason);
    throw Error(ErrorCode::not_found,
                "unknown device '" + want + "'; available: " + available_names());
  }

  // Every device, with why it cannot run the op (empty if it can).
  std::vector<select::Candidate> candidates(const sparkle_conv2d_desc& cdesc) {
    std::vector<select::Candidate> out;
    for (auto& d : devices) {
      select::Candidate c{d->props.name, d->props.fingerprint, {}};
      try {
        c.unsupported = unsupported_reason(*d, cdesc);
      } catch (const Error& e) {
        c.unsupported = e.what();
      }
      out.push_back(std::move(c));
    }
    return out;
  }

  // The selector's prior for a device: three probe ops, best of three runs
  // each, once per fingerprint (kept in the profile across processes).
  void calibrate(Device& d) {
    std::call_once(d.calibrate_once, [&] {
      if (selector.has_model(d.props.fingerprint)) return;
      auto best_of_three = [&](const Conv2dDesc& probe) {
        std::vector<float> x(probe.input_elements(), 0.5f), w(probe.weight_elements(), 0.25f),
            y(probe.output_elements());
        double best = 1e30;
        for (int i = 0; i < 3; ++i) best = std::min(best, cost_ms(run_on(d, probe, x, w, {}, y)));
        return best;
      };
      try {
        const double latency = best_of_three(select::latency_probe());
        const double compute = best_of_three(select::compute_probe());
        const double bandwidth = best_of_three(select::bandwidth_probe());
        const auto model = select::fit_model(latency, compute, bandwidth);
        selector.set_model(d.props.fingerprint, model);
        log::info("select", d.props.name + " calibrated: latency " +
                                std::to_string(model.latency_ms) + " ms, " +
                                std::to_string(model.gflops) + " GFLOPS, " +
                                std::to_string(model.gbps) + " GB/s");
      } catch (const Error& e) {
        log::warn("select",
                  d.props.name + ": calibration failed, device not auto-selected: " + e.what());
      }
    });
  }

  RunResult run_auto(const Conv2dDesc& desc, const sparkle_conv2d_desc& cdesc,
                     std::span<const float> x, std::span<const float> w,
                     std::span<const float> bias, std::span<float> y, bool explain,
                     uint32_t flags) {
    auto cands = candidates(cdesc);
    for (size_t i = 0; i < devices.size(); ++i) {
      if (!cands[i].unsupported.empty()) continue;
      calibrate(*devices[i]);
      if (!selector.has_model(cands[i].fingerprint)) cands[i].unsupported = "calibration failed";
    }
    select::Choice choice = selector.choose(cands, desc);
    if (choice.parts.empty()) {
      std::string reasons;
      for (const auto& c : cands) reasons += "; " + c.name + ": " + c.unsupported;
      throw Error(ErrorCode::unsupported,
                  "no device supports " + desc.to_string() +
                      (devices.empty() ? std::string(" (no devices loaded)") : reasons));
    }
    if (dispatch_verbose())
      for (const auto& line : choice.explanation) log::note("dispatch", line);

    RunResult result;
    if (choice.parts.size() == 1) {
      Device& d = *devices[choice.parts[0].first];
      result = run_on(d, desc, x, w, bias, y, flags);
      selector.record(d.props.fingerprint, desc, cost_ms(result), choice.explored);
    } else {
      result = run_split(choice.parts, desc, x, w, bias, y, flags);
    }
    if (explain) result.explanation = std::move(choice.explanation);
    return result;
  }

  // Runs the images of a batch on several devices at once. Each part writes
  // its own slice of y (NCHW: images are contiguous), so the result is the
  // same as one device's.
  RunResult run_split(const std::vector<std::pair<size_t, int64_t>>& parts, const Conv2dDesc& desc,
                      std::span<const float> x, std::span<const float> w,
                      std::span<const float> bias, std::span<float> y, uint32_t flags) {
    const int64_t x_image = desc.c * desc.h * desc.w;
    const int64_t y_image = desc.k * desc.out_h() * desc.out_w();
    std::vector<RunResult> results(parts.size());
    std::vector<std::exception_ptr> errors(parts.size());
    std::vector<std::thread> threads;
    const auto start = std::chrono::steady_clock::now();
    int64_t first = 0;
    for (size_t p = 0; p < parts.size(); ++p) {
      Conv2dDesc piece = desc;
      piece.n = parts[p].second;
      auto px =
          x.subspan(static_cast<size_t>(first * x_image), static_cast<size_t>(piece.n * x_image));
      auto py =
          y.subspan(static_cast<size_t>(first * y_image), static_cast<size_t>(piece.n * y_image));
      first += piece.n;
      threads.emplace_back([&, p, piece, px, py] {
        try {
          Device& d = *devices[parts[p].first];
          results[p] = run_on(d, piece, px, w, bias, py, flags);
          selector.record(d.props.fingerprint, piece, cost_ms(results[p]));
        } catch (...) {
          errors[p] = std::current_exception();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
    RunResult r;
    for (size_t p = 0; p < parts.size(); ++p) {
      r.device += (p ? "+" : "") + results[p].device;
      r.kernel += (p ? "+" : "") + results[p].kernel;
      r.device_ms = std::max(r.device_ms, results[p].device_ms);
    }
    r.wall_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return r;
  }

  // flags: SPARKLE_CONV2D_* bits for the plugin (part of the plan's key).
  RunResult run_on(Device& d, const Conv2dDesc& desc, std::span<const float> x,
                   std::span<const float> w, std::span<const float> bias, std::span<float> y,
                   uint32_t flags = 0);

  sparkle_plan plan_for(Device& d, const Conv2dDesc& desc, const sparkle_conv2d_desc& cdesc) {
    const std::string key = desc.to_string() + " flags=" + std::to_string(cdesc.flags);
    {
      std::shared_lock lock(d.plans_mutex);
      if (auto it = d.plans.find(key); it != d.plans.end()) return it->second;
    }
    sparkle_plan plan = nullptr;
    // The tuner's winner when the op was tuned on this device, else the
    // plugin's own choice (core/tune/tuned_plan.hpp).
    registry::throw_if_error(tune::plan_conv2d(d.api, open(d), d.props.fingerprint, cdesc, &plan),
                             d.props.name + ": plan");
    std::unique_lock lock(d.plans_mutex);
    auto [it, inserted] = d.plans.emplace(key, plan);
    if (!inserted) d.api->plan_destroy(plan);  // another thread won the race
    return it->second;
  }

  // A buffer for one call: the caller's memory wrapped (host devices), or a
  // pooled device buffer that goes back to the pool afterwards.
  struct DeviceBuffer {
    DeviceBuffer(const sparkle_plugin* api, sparkle_buffer h) : api(api), h(h), wrapped(true) {}
    DeviceBuffer(exec::BufferPool* pool, sparkle_buffer h, size_t capacity)
        : pool(pool), h(h), capacity(capacity) {}
    DeviceBuffer(DeviceBuffer&& o) noexcept
        : api(o.api), pool(o.pool), h(o.h), capacity(o.capacity), wrapped(o.wrapped) {
      o.h = nullptr;
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(DeviceBuffer&&) = delete;
    ~DeviceBuffer() {
      if (h == nullptr) return;
      if (wrapped)
        api->buffer_destroy(h);
      else
        pool->release(h, capacity);
    }
    const sparkle_plugin* api = nullptr;
    exec::BufferPool* pool = nullptr;
    sparkle_buffer h = nullptr;
    size_t capacity = 0;
    bool wrapped = false;  // aliases the caller's memory: no copies needed
  };

  exec::BufferPool& pool_of(Device& d) {
    std::call_once(d.pool_once, [&] {
      // Idle device memory kept for reuse; the rest is returned to the driver.
      d.pool = std::make_unique<exec::BufferPool>(d.api, open(d), d.props.name, size_t{2} << 30);
    });
    return *d.pool;
  }

  // Zero-copy for host-memory devices, else a pooled device buffer plus upload.
  DeviceBuffer buffer(Device& d, const float* data, size_t count, bool upload, const char* what) {
    const size_t bytes = count * sizeof(float);
    sparkle_device h = open(d);
    sparkle_buffer b = nullptr;
    if (d.api->buffer_wrap_host != nullptr) {
      sparkle_status st = d.api->buffer_wrap_host(h, const_cast<float*>(data), bytes, &b);
      if (st == nullptr) return DeviceBuffer(d.api, b);
      registry::take_message(st);  // unsupported: fall back to a copy
    }
    auto& pool = pool_of(d);
    size_t capacity = 0;
    b = pool.acquire(bytes, &capacity, what);
    DeviceBuffer owned(&pool, b, capacity);
    if (upload)
      registry::throw_if_error(d.api->buffer_upload(b, 0, data, bytes),
                               d.props.name + ": upload " + what);
    return owned;
  }

  // The plugin descriptor of desc with the call's options as flags.
  static sparkle_conv2d_desc c_desc(const Conv2dDesc& desc, const RunOptions& options) {
    sparkle_conv2d_desc c = desc.to_c();
    if (options.constant_weights) c.flags |= SPARKLE_CONV2D_CONSTANT_WEIGHTS;
    return c;
  }

  registry::PluginRegistry registry;
  select::Selector selector;
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
  if (Impl::Device* d = impl_->resolve_named(desc, cdesc, options)) return d->props.name;
  auto cands = impl_->candidates(cdesc);
  std::string best;
  double best_ms = 0;
  for (size_t i = 0; i < cands.size(); ++i) {
    if (!cands[i].unsupported.empty()) continue;
    impl_->calibrate(*impl_->devices[i]);
    if (!impl_->selector.has_model(cands[i].fingerprint)) continue;
    const double ms = impl_->selector.estimate_ms(cands[i].fingerprint, desc, nullptr);
    if (best.empty() || ms < best_ms) best = cands[i].name, best_ms = ms;
  }
  if (best.empty()) throw Error(ErrorCode::unsupported, "no device supports " + desc.to_string());
  return best;
}

bool Engine::save_profile() { return impl_->selector.save(); }

std::string Engine::prepare(const Conv2dDesc& desc, const RunOptions& options) {
  std::string name = resolve_device(desc, options);
  for (auto& d : impl_->devices)
    if (d->props.name == name) impl_->plan_for(*d, desc, impl_->c_desc(desc, options));
  return name;
}

RunResult Engine::conv2d(const Conv2dDesc& desc, std::span<const float> x, std::span<const float> w,
                         std::span<const float> bias, std::span<float> y,
                         const RunOptions& options) {
  desc.validate();
  check_size("x", x.size(), desc.input_elements());
  check_size("w", w.size(), desc.weight_elements());
  check_size("bias", bias.size(), desc.bias_elements());
  check_size("y", y.size(), desc.output_elements());
  const sparkle_conv2d_desc cdesc = impl_->c_desc(desc, options);
  Impl::Device* named = impl_->resolve_named(desc, cdesc, options);
  if (named == nullptr)
    return impl_->run_auto(desc, cdesc, x, w, bias, y, options.explain, cdesc.flags);
  // Explicit choices teach the selector too once it has a model of the
  // device. Calibrating here instead would make a named-device call run
  // (and, on GPUs, compile) the probes behind the caller's back.
  RunResult result = impl_->run_on(*named, desc, x, w, bias, y, cdesc.flags);
  impl_->selector.record(named->props.fingerprint, desc, cost_ms(result));
  if (options.explain) result.explanation = {"selected: " + named->props.name + " (requested)"};
  return result;
}

RunResult Engine::Impl::run_on(Device& d, const Conv2dDesc& desc, std::span<const float> x,
                               std::span<const float> w, std::span<const float> bias,
                               std::span<float> y, uint32_t flags) {
  sparkle_conv2d_desc cdesc = desc.to_c();
  cdesc.flags = flags;
  const auto start = std::chrono::steady_clock::now();
  sparkle_plan plan = plan_for(d, desc, cdesc);
  auto bx = buffer(d, x.data(), x.size(), true, "x");
  auto bw = buffer(d, w.data(), w.size(), true, "w");
  std::optional<DeviceBuffer> bb;
  if (desc.has_bias) bb.emplace(buffer(d, bias.data(), bias.size(), true, "bias"));
  auto by = buffer(d, y.data(), y.size(), false, "y");

  sparkle_fence fence = nullptr;
  registry::throw_if_error(
      d.api->enqueue_conv2d(plan, bx.h, bw.h, bb ? bb->h : nullptr, by.h, &fence),
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
    registry::throw_if_error(d.api->buffer_download(by.h, 0, y.data(), y.size() * sizeof(float)),
                             d.props.name + ": download y");
  result.wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace sparkle
