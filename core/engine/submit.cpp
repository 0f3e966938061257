// How the engine turns one call into executor work: device choice, the
// staging of host operands, copies for operands that live on another
// device, batch splits, and the selector's calibration probes.
#include <chrono>
#include <cstdlib>
#include <thread>

#include "engine/engine_impl.hpp"
#include "exec/future_state.hpp"
#include "exec/host_memory.hpp"
#include "exec/parallel_copy.hpp"
#include "log/log.hpp"
#include "select/calibration.hpp"

namespace sparkle {

namespace {

bool dispatch_verbose() {
  const char* v = std::getenv("SPARKLE_VERBOSE");
  return v != nullptr && std::string(v).find("dispatch") != std::string::npos;
}

// A caller's array aliased by a host-memory device for one call.
struct WrappedBuffer {
  WrappedBuffer(std::shared_ptr<exec::DeviceRuntime> d, sparkle_buffer b)
      : device(std::move(d)), buffer(b) {}
  WrappedBuffer(const WrappedBuffer&) = delete;
  WrappedBuffer& operator=(const WrappedBuffer&) = delete;
  ~WrappedBuffer() { device->destroy(buffer); }
  std::shared_ptr<exec::DeviceRuntime> device;
  sparkle_buffer buffer;
};

Future completed_future(RunResult r) {
  auto f = std::make_shared<exec::FutureState>();
  f->complete(std::move(r));
  return Future(f);
}

double since_ms(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

Future Engine::Impl::submit_on(Device& d, const Conv2dDesc& desc, const sparkle_conv2d_desc& cdesc,
                               const Operands& ops, bool explored) {
  const auto& rt = open(d);
  exec::ConvWork work;
  work.device = rt;
  work.plan = plan_for(d, desc, cdesc);
  work.has_bias = ops.has_bias;
  work.future = std::make_shared<exec::FutureState>();
  const bool staged = rt->executor().asynchronous() && rt->has_staging();

  auto wrap = [&](const void* data, size_t bytes) -> sparkle_buffer {
    sparkle_buffer b = rt->wrap(data, bytes);
    if (b != nullptr) work.keep.push_back(std::make_shared<WrappedBuffer>(rt, b));
    return b;
  };
  auto device_buffer = [&](size_t bytes, const char* what) {
    work.leases.emplace_back(&rt->pool(SPARKLE_MEMORY_DEVICE), bytes, what);
    return work.leases.back().handle();
  };

  auto input = [&](exec::ConvInput& in, const Operand& op, const char* what) {
    in.bytes = op.bytes();
    if (op.tensor) {
      in.tensor = op.tensor;
      in.buffer = op.tensor->buffer;
      return;
    }
    if ((in.buffer = wrap(op.host.data(), in.bytes)) != nullptr) return;
    in.buffer = device_buffer(in.bytes, what);
    if (!staged) {
      in.from = exec::ConvInput::From::host;
      in.host = op.host.data();
      return;
    }
    in.from = exec::ConvInput::From::staging;
    // Engine-owned host memory of this device is copied from directly.
    if (auto hm = exec::find_host_memory(op.host.data(), in.bytes);
        hm && hm->buffer && hm->device == rt && hm->use == HostUse::upload) {
      in.source = hm->buffer;
      in.source_offset = static_cast<size_t>(reinterpret_cast<const char*>(op.host.data()) -
                                             reinterpret_cast<const char*>(hm->data));
      work.keep.push_back(hm);
      return;
    }
    work.leases.emplace_back(&rt->pool(SPARKLE_MEMORY_UPLOAD), in.bytes, what);
    in.source = work.leases.back().handle();
    const auto start = std::chrono::steady_clock::now();
    exec::parallel_copy(rt->map(in.source, what), op.host.data(), in.bytes);
    work.staging_ms += since_ms(start);
  };
  input(work.x, ops.x, "x");
  input(work.w, ops.w, "w");
  if (ops.has_bias) input(work.bias, ops.bias, "bias");

  exec::ConvOutput& out = work.y;
  out.bytes = ops.y.bytes();
  if (ops.y.tensor) {
    out.tensor = ops.y.tensor;
    out.buffer = ops.y.tensor->buffer;
  } else if ((out.buffer = wrap(ops.y.host_out, out.bytes)) == nullptr) {
    out.buffer = device_buffer(out.bytes, "y");
    if (!staged) {
      out.to = exec::ConvOutput::To::host;
      out.host = ops.y.host_out;
    } else if (auto hm = exec::find_host_memory(ops.y.host_out, out.bytes);
               hm && hm->buffer && hm->device == rt && hm->use == HostUse::readback) {
      out.to = exec::ConvOutput::To::staging;
      out.target = hm->buffer;
      out.target_offset = static_cast<size_t>(reinterpret_cast<const char*>(ops.y.host_out) -
                                              reinterpret_cast<const char*>(hm->data));
      work.keep.push_back(hm);
    } else {
      out.to = exec::ConvOutput::To::staging;
      work.leases.emplace_back(&rt->pool(SPARKLE_MEMORY_READBACK), out.bytes, "y");
      out.target = work.leases.back().handle();
      out.copy_back_from = rt->map(out.target, "y");
      out.copy_back_to = ops.y.host_out;
    }
  }

  work.on_finish = [sel = selector, fp = d.props.fingerprint, desc, explored](
                       const exec::Status& st, const exec::ConvTimes& t) {
    if (!st.ok()) return;
    sel->record(fp, desc, t.compute_ms, explored);
    if (t.upload_bytes > 0 || t.download_bytes > 0)
      sel->record_transfer(fp, static_cast<double>(t.upload_bytes), t.upload_ms,
                           static_cast<double>(t.download_bytes), t.download_ms);
  };
  Future future(work.future);
  rt->executor().submit(std::make_unique<exec::ConvJob>(std::move(work)), ops.caller_waits);
  return future;
}

Future Engine::Impl::submit(const Conv2dDesc& desc, const Operands& ops,
                            const RunOptions& options) {
  const sparkle_conv2d_desc cdesc = c_desc(desc, options);
  Device* chosen = resolve_named(options.device, desc, &cdesc);
  std::vector<std::string> explanation;
  bool explored = false;
  const bool resident = ops.x.tensor || ops.w.tensor || ops.y.tensor;
  if (chosen != nullptr) {
    explanation = {"selected: " + chosen->props.name + " (requested)"};
  } else {
    auto cands = candidates(desc, cdesc);
    add_transfer_costs(cands, ops);
    select::Choice choice = selector->choose(cands, desc, /*allow_split=*/!resident);
    if (choice.parts.empty()) {
      std::string reasons;
      for (const auto& c : cands) reasons += "; " + c.name + ": " + c.unsupported;
      throw Error(ErrorCode::unsupported,
                  "no device supports " + desc.to_string() +
                      (devices.empty() ? std::string(" (no devices loaded)") : reasons));
    }
    if (dispatch_verbose())
      for (const auto& line : choice.explanation) log::note("dispatch", line);
    explanation = std::move(choice.explanation);
    if (choice.parts.size() > 1) {
      RunResult r = run_split(choice.parts, desc, cdesc, ops);
      if (options.explain) r.explanation = std::move(explanation);
      return completed_future(std::move(r));
    }
    chosen = devices[choice.parts[0].first].get();
    explored = choice.explored;
  }

  const auto& rt = open(*chosen);
  auto elsewhere = [&](const Operand& o) { return o.tensor && o.tensor->device != rt; };
  Future f;
  if (!elsewhere(ops.x) && !elsewhere(ops.w) && !(ops.has_bias && elsewhere(ops.bias)) &&
      !elsewhere(ops.y)) {
    f = submit_on(*chosen, desc, cdesc, ops, explored);
    if (!options.explain) return f;
  } else {
    // Operands on another device come through the host (synchronously).
    const auto start = std::chrono::steady_clock::now();
    Operands here = ops;
    here.caller_waits = true;
    std::vector<std::vector<float>> copies;
    copies.reserve(3);  // spans into them must not move
    auto bring = [&](Operand& o) {
      if (!elsewhere(o)) return;
      copies.emplace_back(static_cast<size_t>(o.tensor->elements));
      download_tensor(o.tensor, copies.back());
      o.tensor.reset();
      o.host = copies.back();
    };
    bring(here.x);
    bring(here.w);
    if (here.has_bias) bring(here.bias);
    std::vector<float> y_host;
    if (elsewhere(ops.y)) {
      y_host.resize(static_cast<size_t>(ops.y.tensor->elements));
      here.y.tensor.reset();
      here.y.host = y_host;
      here.y.host_out = y_host.data();
    }
    RunResult r = submit_on(*chosen, desc, cdesc, here, explored).wait();
    if (elsewhere(ops.y)) upload_tensor(ops.y.tensor, y_host);
    r.wall_ms = since_ms(start);
    f = completed_future(std::move(r));
  }
  if (!options.explain) return f;
  // The explanation rides on the result.
  RunResult r = f.wait();
  r.explanation = std::move(explanation);
  return completed_future(std::move(r));
}

RunResult Engine::Impl::run_split(const std::vector<std::pair<size_t, int64_t>>& parts,
                                  const Conv2dDesc& desc, const sparkle_conv2d_desc& cdesc,
                                  const Operands& ops) {
  (void)cdesc;
  const auto x_image = static_cast<size_t>(desc.c * desc.h * desc.w);
  const auto y_image = static_cast<size_t>(desc.k * desc.out_h() * desc.out_w());
  const auto start = std::chrono::steady_clock::now();
  std::vector<Future> futures;
  size_t first = 0;
  for (const auto& [index, images] : parts) {
    Conv2dDesc piece = desc;
    piece.n = images;
    Operands p = ops;
    p.caller_waits = false;  // the parts run at once, on their devices' threads
    const auto n = static_cast<size_t>(images);
    p.x.host = ops.x.host.subspan(first * x_image, n * x_image);
    p.y.host = ops.y.host.subspan(first * y_image, n * y_image);
    p.y.host_out = ops.y.host_out + first * y_image;
    first += n;
    sparkle_conv2d_desc piece_c = piece.to_c();
    piece_c.flags = cdesc.flags;
    futures.push_back(submit_on(*devices[index], piece, piece_c, p, false));
  }
  RunResult r;
  std::exception_ptr error;
  for (size_t i = 0; i < futures.size(); ++i) {
    try {
      const RunResult part = futures[i].wait();
      r.device += (i ? "+" : "") + part.device;
      r.kernel += (i ? "+" : "") + part.kernel;
      r.device_ms = std::max(r.device_ms, part.device_ms);
      r.upload_ms = std::max(r.upload_ms, part.upload_ms);
      r.download_ms = std::max(r.download_ms, part.download_ms);
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  r.wall_ms = since_ms(start);
  return r;
}

// ---- calibration ------------------------------------------------------------

namespace {

// The selector's probes on one device, with resident tensors.
class EngineProbes final : public select::ProbeRunner {
 public:
  using Run = std::function<RunResult(const Conv2dDesc&, const Operands&)>;
  using MakeTensor = std::function<std::shared_ptr<exec::TensorState>(const std::vector<int64_t>&,
                                                                      std::span<const float>)>;
  EngineProbes(bool host_memory, Run run, MakeTensor make)
      : host_memory_(host_memory), run_(std::move(run)), make_(std::move(make)) {}

  Times conv(const Conv2dDesc& d) override {
    auto& t = tensors_[d.to_string()];
    if (!t.x) {
      const std::vector<float> x(static_cast<size_t>(d.input_elements()), 0.5f);
      const std::vector<float> w(static_cast<size_t>(d.weight_elements()), 0.25f);
      t.x = make_({d.input_elements()}, x);
      t.w = make_({d.weight_elements()}, w);
      t.y = make_({d.output_elements()}, {});
    }
    Operands ops;
    ops.x.tensor = t.x;
    ops.w.tensor = t.w;
    ops.y.tensor = t.y;
    const RunResult r = run_(d, ops);
    return {r.device_ms > 0 ? r.device_ms : r.wall_ms, r.wall_ms};
  }
  bool needs_transfers() override { return !host_memory_; }
  double upload_ms(size_t bytes) override {
    auto& t = transfer(bytes);
    const auto start = std::chrono::steady_clock::now();
    upload_tensor(t, data_);
    return since_ms(start);
  }
  double download_ms(size_t bytes) override {
    auto& t = transfer(bytes);
    const auto start = std::chrono::steady_clock::now();
    download_tensor(t, data_);
    return since_ms(start);
  }

 private:
  std::shared_ptr<exec::TensorState>& transfer(size_t bytes) {
    if (!transfer_) {
      data_.assign(bytes / sizeof(float), 0.5f);
      transfer_ = make_({static_cast<int64_t>(data_.size())}, {});
    }
    return transfer_;
  }
  struct Set {
    std::shared_ptr<exec::TensorState> x, w, y;
  };
  bool host_memory_;
  Run run_;
  MakeTensor make_;
  std::map<std::string, Set> tensors_;
  std::shared_ptr<exec::TensorState> transfer_;
  std::vector<float> data_;
};

}  // namespace

void Engine::Impl::calibrate(Device& d) {
  std::call_once(d.calibrate_once, [&] {
    if (selector->has_model(d.props.fingerprint)) return;
    try {
      const auto& rt = open(d);
      EngineProbes probes(
          rt->host_memory(),
          [&](const Conv2dDesc& probe, const Operands& ops) {
            return submit_on(d, probe, probe.to_c(), ops, false).wait();
          },
          [&](const std::vector<int64_t>& shape, std::span<const float> data) {
            return make_tensor(d, shape, data);
          });
      const select::Calibration c = select::calibrate(probes);
      selector->set_model(d.props.fingerprint, c.model, c.transfers);
      log::info("select",
                d.props.name + " calibrated: latency " + std::to_string(c.model.latency_ms) +
                    " ms, overhead " + std::to_string(c.model.overhead_ms) + " ms, " +
                    std::to_string(c.model.gflops) + " GFLOPS, " + std::to_string(c.model.gbps) +
                    " GB/s, transfers " + std::to_string(c.transfers.upload_gbps) + " / " +
                    std::to_string(c.transfers.download_gbps) + " GB/s");
    } catch (const Error& e) {
      log::warn("select",
                d.props.name + ": calibration failed, device not auto-selected: " + e.what());
    }
  });
}

}  // namespace sparkle
