// `bench --resident`: layers on device tensors, timed as a pipeline would
// run them (submitted back to back, one wait).
#include <chrono>
#include <cstdio>
#include <deque>

#include "cli.hpp"

namespace sparkle::cli {

std::vector<ResidentLayer> place_layers(Engine& engine, const std::vector<Layer>& layers,
                                        const RunOptions& run, uint64_t seed, bool quiet) {
  std::vector<ResidentLayer> out;
  out.reserve(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    const Conv2dDesc& d = layers[i].desc;
    ResidentLayer r;
    r.desc = d;
    r.device = engine.resolve_device(d, run, Engine::OperandPlacement::resident);
    const uint64_t s = seed * 1000 + i * 3;
    r.x = engine.tensor({d.n, d.c, d.h, d.w}, random_tensor(d.input_elements(), s), r.device);
    r.w = engine.tensor({d.k, d.c / d.groups, d.r, d.s}, random_tensor(d.weight_elements(), s + 1),
                        r.device);
    if (d.has_bias)
      r.bias = engine.tensor({d.k}, random_tensor(d.bias_elements(), s + 2), r.device);
    r.y = engine.tensor({d.n, d.k, d.out_h(), d.out_w()}, r.device);
    if (!quiet)
      std::fprintf(stderr, "placed %zu/%zu %s on %s\n", i + 1, layers.size(),
                   layers[i].name.c_str(), r.device.c_str());
    out.push_back(std::move(r));
  }
  return out;
}

void spin_up(const std::function<Future()>& submit_one, double ms) {
  const auto start = std::chrono::steady_clock::now();
  std::deque<Future> in_flight;
  while (
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() <
      ms) {
    in_flight.push_back(submit_one());
    if (in_flight.size() >= 3) {
      in_flight.front().wait();
      in_flight.pop_front();
    }
  }
  for (auto& f : in_flight) f.wait();
}

Timing time_resident(Engine& engine, const ResidentLayer& layer, int64_t warmup, int64_t repeat,
                     bool wall_only) {
  RunOptions run;
  run.device = layer.device;
  Timing t;
  {
    std::vector<Future> warm;
    for (int64_t i = 0; i < warmup; ++i)
      warm.push_back(engine.submit(layer.desc, layer.x, layer.w, layer.bias, layer.y, run));
    for (auto& f : warm) t.last = f.wait();
  }
  std::vector<Future> futures;
  futures.reserve(static_cast<size_t>(repeat));
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < repeat; ++i)
    futures.push_back(engine.submit(layer.desc, layer.x, layer.w, layer.bias, layer.y, run));
  std::vector<double> device_ms;
  for (auto& f : futures) {
    t.last = f.wait();
    if (t.last.device_ms > 0) device_ms.push_back(t.last.device_ms);
  }
  t.wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
      static_cast<double>(repeat);
  if (!device_ms.empty() && device_ms.size() == futures.size()) t.kernel_ms = median(device_ms);
  t.device_timed = !wall_only && t.kernel_ms > 0;
  t.ms = t.device_timed ? t.kernel_ms : t.wall_ms;
  return t;
}

PassTiming time_passes(Engine& engine, const std::vector<ResidentLayer>& placed,
                       const std::vector<Layer>& layers, int64_t passes) {
  std::vector<std::pair<size_t, Future>> futures;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t p = 0; p < passes; ++p)
    for (size_t i = 0; i < placed.size(); ++i)
      for (int64_t c = 0; c < layers[i].count; ++c) {
        RunOptions on;
        on.device = placed[i].device;
        const ResidentLayer& l = placed[i];
        futures.emplace_back(i, engine.submit(l.desc, l.x, l.w, l.bias, l.y, on));
      }
  PassTiming t;
  double kernel_ms = 0;
  for (auto& [i, f] : futures) {
    const RunResult r = f.wait();
    if (r.device_ms > 0)
      kernel_ms += r.device_ms;
    else
      t.kernel_timed = false;
  }
  t.wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
      static_cast<double>(passes);
  t.kernel_ms = kernel_ms / static_cast<double>(passes);
  return t;
}

}  // namespace sparkle::cli
