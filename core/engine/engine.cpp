// Engine: the public API over Engine::Impl. Validates each call, resolves
// the device and hands the work to that device's executor.
#include <sparkle/engine.hpp>
#include <sparkle/tune.hpp>

#include "cache/cache_dir.hpp"
#include "engine/engine_impl.hpp"
#include "exec/future_state.hpp"
#include "exec/host_memory.hpp"
#include "exec/stream_state.hpp"
#include "log/log.hpp"
#include "tune/tuned_plan.hpp"

namespace sparkle {
namespace detail {
extern const char* const kBuildId;
}

const char* version() noexcept { return "0.1.0"; }
const char* build_id() noexcept { return detail::kBuildId; }

namespace {

std::string profile_path() {
  const std::string dir = cache::cache_directory();
  return dir.empty() ? std::string() : dir + "/selector-profile-v3.json";
}

void check_size(const char* name, size_t got, int64_t want) {
  if (static_cast<int64_t>(got) != want)
    throw Error(ErrorCode::invalid_argument, std::string(name) + " has " + std::to_string(got) +
                                                 " elements, desc needs " + std::to_string(want));
}

void check_tensor(const char* name, const Tensor& t, int64_t want) {
  if (want == 0) {
    if (!t.empty())
      throw Error(ErrorCode::invalid_argument,
                  std::string(name) + " is given but desc has no bias (has_bias=false)");
    return;
  }
  if (t.empty()) throw Error(ErrorCode::invalid_argument, std::string(name) + " tensor is empty");
  check_size(name, static_cast<size_t>(t.elements()), want);
}

}  // namespace

Engine::Impl::Impl(const EngineOptions& options)
    : registry(options), selector(std::make_shared<select::Selector>(profile_path())) {
  for (const auto& plugin : registry.plugins()) {
    const size_t count = plugin.api->device_count();
    for (size_t i = 0; i < count; ++i) {
      std::string why;
      auto props = registry::describe_device(plugin.api, i, &why);
      if (!props) {
        log::warn("engine", std::string(plugin.api->name) + ": device " + std::to_string(i) +
                                " skipped: " + why);
        continue;
      }
      auto d = std::make_unique<Device>();
      d->api = plugin.api;
      d->plugin = plugin.library;
      d->props = std::move(*props);
      devices.push_back(std::move(d));
    }
  }
}

Engine::Impl::~Impl() {
  // Work already submitted finishes (and reports to the selector) first.
  for (auto& d : devices)
    if (d->runtime) d->runtime->executor().drain();
  selector->save();
  for (auto& d : devices) d->plans.clear();
  // A device whose tensors, host memory or streams are still alive stays
  // open until they go; the others close here.
  devices.clear();
}

const std::shared_ptr<exec::DeviceRuntime>& Engine::Impl::open(Device& d) {
  std::call_once(d.open_once, [&] {
    try {
      d.runtime =
          std::make_shared<exec::DeviceRuntime>(d.api, d.plugin, d.props.index, d.props.name);
      d.opened.store(d.runtime.get(), std::memory_order_release);
    } catch (const std::exception& e) {
      d.open_error = e.what();
    }
  });
  if (!d.runtime) throw Error(ErrorCode::device_error, d.open_error);
  return d.runtime;
}

Engine::Impl::Device* Engine::Impl::by_runtime(const exec::DeviceRuntime* rt) {
  for (auto& d : devices)
    if (d->opened.load(std::memory_order_acquire) == rt) return d.get();
  return nullptr;
}

std::string Engine::Impl::available_names() const {
  std::string names;
  for (const auto& d : devices) names += (names.empty() ? "" : ", ") + d->props.name;
  return names.empty() ? "none" : names;
}

std::string Engine::Impl::unsupported_reason(Device& d, const sparkle_conv2d_desc& cdesc) {
  const auto& rt = open(d);
  sparkle_status st = d.api->supports_conv2d(rt->handle(), &cdesc);
  return st == nullptr ? std::string() : registry::take_message(st);
}

Engine::Impl::Device* Engine::Impl::resolve_named(const std::string& want_in,
                                                  const Conv2dDesc& desc,
                                                  const sparkle_conv2d_desc* cdesc) {
  std::string want = want_in;
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
      if (cdesc != nullptr) {
        std::string why = unsupported_reason(*d, *cdesc);
        if (!why.empty())
          throw Error(ErrorCode::unsupported,
                      d->props.name + " cannot run " + desc.to_string() + ": " + why);
      }
      return d.get();
    }
  }
  for (const auto& rec : registry.records())
    if (!backend_known && rec.name == backend)
      throw Error(ErrorCode::not_found,
                  "device '" + want + "': backend '" + backend + "' has no devices: " + rec.reason);
  throw Error(ErrorCode::not_found,
              "unknown device '" + want + "'; available: " + available_names());
}

std::vector<select::Candidate> Engine::Impl::candidates(const Conv2dDesc& desc,
                                                        const sparkle_conv2d_desc& cdesc) {
  std::vector<select::Candidate> out;
  for (auto& d : devices) {
    select::Candidate c{d->props.name, d->props.fingerprint, {}, 0};
    try {
      c.unsupported = unsupported_reason(*d, cdesc);
    } catch (const Error& e) {
      c.unsupported = e.what();
    }
    if (c.unsupported.empty()) {
      calibrate(*d);
      if (!selector->has_model(c.fingerprint)) c.unsupported = "calibration failed";
      // One feedback loop: a device time the tuner measured for this op
      // seeds a bucket the selector has not measured yet; real calls then
      // refine it as usual.
      int samples = 0;
      selector->estimate_ms(c.fingerprint, desc, &samples);
      if (c.unsupported.empty() && samples == 0)
        if (const auto tuned = tuned_median_ms(c.fingerprint, desc, cdesc.flags))
          selector->record(c.fingerprint, desc, *tuned);
    }
    out.push_back(std::move(c));
  }
  return out;
}

void Engine::Impl::add_transfer_costs(std::vector<select::Candidate>& cands, const Operands& ops) {
  for (size_t i = 0; i < cands.size(); ++i) {
    if (!cands[i].unsupported.empty()) continue;
    Device& d = *devices[i];
    // Every supported candidate was opened by this thread (supports_conv2d).
    const bool host_memory = d.runtime && d.runtime->host_memory();
    double ms = 0;
    double up_here = 0, down_here = 0;
    auto in = [&](const Operand& o) {
      if (o.tensor) {
        if (o.tensor->device == d.runtime) return;
        // Off its own device through the host, then onto this one.
        if (Device* home = by_runtime(o.tensor->device.get()))
          ms += selector->transfer_estimate_ms(home->props.fingerprint, 0,
                                               static_cast<double>(o.bytes()));
      }
      if (!host_memory) up_here += static_cast<double>(o.bytes());
    };
    in(ops.x);
    in(ops.w);
    if (ops.has_bias) in(ops.bias);
    const Operand& y = ops.y;
    if (!y.tensor || y.tensor->device != d.runtime) {
      if (!host_memory) down_here += static_cast<double>(y.bytes());
      if (y.tensor)
        if (Device* home = by_runtime(y.tensor->device.get()))
          ms += selector->transfer_estimate_ms(home->props.fingerprint,
                                               static_cast<double>(y.bytes()), 0);
    }
    ms += selector->transfer_estimate_ms(d.props.fingerprint, up_here, down_here);
    cands[i].transfer_ms = ms;
  }
}

exec::PlanRef Engine::Impl::plan_for(Device& d, const Conv2dDesc& desc,
                                     const sparkle_conv2d_desc& cdesc) {
  const std::string key = desc.to_string() + " flags=" + std::to_string(cdesc.flags);
  const auto& rt = open(d);
  return d.plans.get(key, [&] {
    sparkle_plan plan = nullptr;
    // The tuner's winner when the op was tuned on this device, else the
    // plugin's own choice (core/tune/tuned_plan.hpp).
    registry::throw_if_error(
        tune::plan_conv2d(d.api, rt->handle(), d.props.fingerprint, cdesc, &plan),
        d.props.name + ": plan");
    return std::make_shared<exec::Plan>(rt, plan);
  });
}

sparkle_conv2d_desc Engine::Impl::c_desc(const Conv2dDesc& desc, const RunOptions& options) {
  sparkle_conv2d_desc c = desc.to_c();
  if (options.constant_weights) c.flags |= SPARKLE_CONV2D_CONSTANT_WEIGHTS;
  return c;
}

// ---- Engine -----------------------------------------------------------------

Engine::Engine() : Engine(EngineOptions{}) {}
Engine::Engine(const EngineOptions& options) : impl_(std::make_unique<Impl>(options)) {}
Engine::~Engine() = default;

const std::vector<PluginRecord>& Engine::plugins() const { return impl_->registry.records(); }

std::vector<DeviceProperties> Engine::devices() const {
  std::vector<DeviceProperties> out;
  for (const auto& d : impl_->devices) out.push_back(d->props);
  return out;
}

std::string Engine::resolve_device(const Conv2dDesc& desc, const RunOptions& options,
                                   OperandPlacement placement) {
  desc.validate();
  const sparkle_conv2d_desc cdesc = Impl::c_desc(desc, options);
  if (Impl::Device* d = impl_->resolve_named(options.device, desc, &cdesc)) return d->props.name;
  auto cands = impl_->candidates(desc, cdesc);
  if (placement == OperandPlacement::host) {
    Operands ops;
    ops.x.host = std::span<const float>(static_cast<const float*>(nullptr),
                                        static_cast<size_t>(desc.input_elements()));
    ops.w.host = std::span<const float>(static_cast<const float*>(nullptr),
                                        static_cast<size_t>(desc.weight_elements()));
    ops.bias.host = std::span<const float>(static_cast<const float*>(nullptr),
                                           static_cast<size_t>(desc.bias_elements()));
    ops.has_bias = desc.has_bias;
    ops.y.host = std::span<const float>(static_cast<const float*>(nullptr),
                                        static_cast<size_t>(desc.output_elements()));
    impl_->add_transfer_costs(cands, ops);
  }
  std::string best;
  double best_ms = 0;
  for (const auto& c : cands) {
    if (!c.unsupported.empty()) continue;
    const double ms = impl_->selector->estimate_ms(c.fingerprint, desc, nullptr) + c.transfer_ms;
    if (best.empty() || ms < best_ms) best = c.name, best_ms = ms;
  }
  if (best.empty()) throw Error(ErrorCode::unsupported, "no device supports " + desc.to_string());
  return best;
}

bool Engine::save_profile() { return impl_->selector->save(); }

std::string Engine::prepare(const Conv2dDesc& desc, const RunOptions& options) {
  std::string name = resolve_device(desc, options);
  for (auto& d : impl_->devices)
    if (d->props.name == name) impl_->plan_for(*d, desc, Impl::c_desc(desc, options));
  return name;
}

RunResult Engine::conv2d(const Conv2dDesc& desc, std::span<const float> x, std::span<const float> w,
                         std::span<const float> bias, std::span<float> y,
                         const RunOptions& options) {
  Operands ops = Impl::host_operands(desc, x, w, bias, y);
  ops.caller_waits = true;
  return impl_->submit(desc, ops, options).wait();
}

RunResult Engine::conv2d(const Conv2dDesc& desc, const Tensor& x, const Tensor& w,
                         const Tensor& bias, const Tensor& y, const RunOptions& options) {
  Operands ops = impl_->tensor_operands(desc, x, w, bias, y);
  ops.caller_waits = true;
  return impl_->submit(desc, ops, options).wait();
}

Future Engine::submit(const Conv2dDesc& desc, std::span<const float> x, std::span<const float> w,
                      std::span<const float> bias, std::span<float> y, const RunOptions& options) {
  return impl_->submit(desc, Impl::host_operands(desc, x, w, bias, y), options);
}

Future Engine::submit(const Conv2dDesc& desc, const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Tensor& y, const RunOptions& options) {
  return impl_->submit(desc, impl_->tensor_operands(desc, x, w, bias, y), options);
}

Operands Engine::Impl::host_operands(const Conv2dDesc& desc, std::span<const float> x,
                                     std::span<const float> w, std::span<const float> bias,
                                     std::span<float> y) {
  desc.validate();
  check_size("x", x.size(), desc.input_elements());
  check_size("w", w.size(), desc.weight_elements());
  check_size("bias", bias.size(), desc.bias_elements());
  check_size("y", y.size(), desc.output_elements());
  Operands ops;
  ops.x.host = x;
  ops.w.host = w;
  ops.bias.host = bias;
  ops.has_bias = desc.has_bias;
  ops.y.host = std::span<const float>(y.data(), y.size());
  ops.y.host_out = y.data();
  return ops;
}

Operands Engine::Impl::tensor_operands(const Conv2dDesc& desc, const Tensor& x, const Tensor& w,
                                       const Tensor& bias, const Tensor& y) {
  desc.validate();
  check_tensor("x", x, desc.input_elements());
  check_tensor("w", w, desc.weight_elements());
  check_tensor("bias", bias, desc.bias_elements());
  check_tensor("y", y, desc.output_elements());
  for (const Tensor* t : {&x, &w, &bias, &y})
    if (!t->empty() && by_runtime(t->state()->device.get()) == nullptr)
      throw Error(ErrorCode::invalid_argument,
                  "a tensor of device " + t->device() + " belongs to another Engine");
  if (x.state() == y.state())
    throw Error(ErrorCode::invalid_argument, "y is the same tensor as x (no in-place convolution)");
  Operands ops;
  ops.x.tensor = x.state();
  ops.w.tensor = w.state();
  ops.bias.tensor = bias.state();
  ops.has_bias = desc.has_bias;
  ops.y.tensor = y.state();
  return ops;
}

Tensor Engine::tensor(const std::vector<int64_t>& shape, const std::string& device) {
  return tensor(shape, {}, device);
}

Tensor Engine::tensor(const std::vector<int64_t>& shape, std::span<const float> data,
                      const std::string& device) {
  const int64_t n = exec::checked_elements(shape, "tensor");
  if (!data.empty()) check_size("tensor data", data.size(), n);
  if (device.empty() || device == "auto")
    throw Error(ErrorCode::invalid_argument, "tensor device '" + device +
                                                 "': a tensor lives on one device; name it (" +
                                                 impl_->available_names() + ")");
  Conv2dDesc none;
  Impl::Device* d = impl_->resolve_named(device, none, nullptr);
  return Tensor(impl_->make_tensor(*d, shape, data));
}

HostMemory Engine::host_memory(size_t elements, const std::string& device, HostUse use) {
  if (device.empty() || device == "auto")
    throw Error(ErrorCode::invalid_argument, "host memory device '" + device +
                                                 "': name the device that will move it (" +
                                                 impl_->available_names() + ")");
  Conv2dDesc none;
  Impl::Device* d = impl_->resolve_named(device, none, nullptr);
  auto state = std::make_shared<exec::HostMemoryState>(impl_->open(*d), elements, use);
  exec::register_host_memory(state);
  return HostMemory(std::move(state));
}

Stream Engine::stream(const Conv2dDesc& desc, std::span<const float> w, std::span<const float> bias,
                      const StreamOptions& options) {
  desc.validate();
  check_size("w", w.size(), desc.weight_elements());
  check_size("bias", bias.size(), desc.bias_elements());
  if (options.slots < 1 || options.slots > 64)
    throw Error(ErrorCode::invalid_argument,
                "slots=" + std::to_string(options.slots) + " must be from 1 to 64");
  const sparkle_conv2d_desc cdesc = Impl::c_desc(desc, options.run);
  auto make_part = [&](Impl::Device& d) {
    const auto& rt = impl_->open(d);
    auto tw = impl_->make_tensor(d, {desc.weight_elements()}, w);
    std::shared_ptr<exec::TensorState> tb;
    if (desc.has_bias) tb = impl_->make_tensor(d, {desc.bias_elements()}, bias);
    auto recorder = [sel = impl_->selector, fp = d.props.fingerprint, desc](
                        const exec::Status& st, const exec::ConvTimes& t) {
      if (!st.ok()) return;
      sel->record(fp, desc, t.compute_ms);
      if (t.upload_bytes > 0 || t.download_bytes > 0)
        sel->record_transfer(fp, static_cast<double>(t.upload_bytes), t.upload_ms,
                             static_cast<double>(t.download_bytes), t.download_ms);
    };
    return std::make_unique<exec::DeviceStream>(rt, impl_->plan_for(d, desc, cdesc), desc,
                                                std::move(tw), std::move(tb), options.slots,
                                                options.transfer, std::move(recorder));
  };

  // Several devices: "all" (every one that can run it) or a list.
  const std::string& want = options.run.device;
  if (want == "all" || want.find(',') != std::string::npos) {
    std::vector<Impl::Device*> chosen;
    if (want == "all") {
      auto cands = impl_->candidates(desc, cdesc);
      for (size_t i = 0; i < cands.size(); ++i)
        if (cands[i].unsupported.empty()) chosen.push_back(impl_->devices[i].get());
    } else {
      size_t start = 0;
      while (start <= want.size()) {
        const size_t comma = std::min(want.find(',', start), want.size());
        const std::string name = want.substr(start, comma - start);
        if (name.empty() || name == "auto" || name == "all")
          throw Error(ErrorCode::invalid_argument,
                      "stream device list '" + want + "': each entry must name one device");
        Impl::Device* d = impl_->resolve_named(name, desc, &cdesc);
        if (std::find(chosen.begin(), chosen.end(), d) == chosen.end()) chosen.push_back(d);
        start = comma + 1;
      }
    }
    if (chosen.empty())
      throw Error(ErrorCode::unsupported, "no device supports " + desc.to_string());
    if (chosen.size() > 1) {
      std::vector<std::unique_ptr<exec::DeviceStream>> parts;
      std::vector<double> ms;
      const double x_bytes = 4.0 * static_cast<double>(desc.input_elements());
      const double y_bytes = 4.0 * static_cast<double>(desc.output_elements());
      for (Impl::Device* d : chosen) {
        impl_->calibrate(*d);
        const auto& rt = impl_->open(*d);
        double est = impl_->selector->estimate_ms(d->props.fingerprint, desc, nullptr);
        if (!rt->host_memory())
          est += impl_->selector->transfer_estimate_ms(d->props.fingerprint, x_bytes, y_bytes);
        ms.push_back(est);
        parts.push_back(make_part(*d));
      }
      return Stream(std::make_unique<exec::JuggledStream>(std::move(parts), std::move(ms)));
    }
    return Stream(make_part(*chosen.front()));
  }
  const std::string name = resolve_device(desc, options.run, OperandPlacement::host);
  return Stream(make_part(*impl_->resolve_named(name, desc, &cdesc)));
}

std::shared_ptr<exec::TensorState> Engine::Impl::make_tensor(Device& d,
                                                             const std::vector<int64_t>& shape,
                                                             std::span<const float> data) {
  auto t = std::make_shared<exec::TensorState>(open(d), shape);
  if (!data.empty()) upload_tensor(t, data);
  return t;
}

}  // namespace sparkle
