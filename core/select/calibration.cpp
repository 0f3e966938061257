// The selector's probes (see calibration.hpp).
#include "select/calibration.hpp"

#include <algorithm>

namespace sparkle::select {

namespace {
constexpr int kRuns = 3;
// Large enough that fixed costs do not dominate, small enough to be quick.
constexpr size_t kTransferProbeBytes = size_t{8} << 20;
}  // namespace

Calibration calibrate(ProbeRunner& runner) {
  auto best = [&](const Conv2dDesc& probe, double* overhead) {
    double device = 1e30;
    for (int i = 0; i < kRuns; ++i) {
      const auto t = runner.conv(probe);
      device = std::min(device, t.device_ms);
      if (overhead != nullptr) *overhead = std::min(*overhead, t.wall_ms - t.device_ms);
    }
    return device;
  };
  double overhead = 1e30;
  const double latency = best(latency_probe(), &overhead);
  const double compute = best(compute_probe(), nullptr);
  const double bandwidth = best(bandwidth_probe(), nullptr);
  Calibration c;
  c.model = fit_model(latency, compute, bandwidth, std::max(overhead, 0.0));
  if (runner.needs_transfers()) {
    double up = 1e30, down = 1e30;
    for (int i = 0; i < kRuns; ++i) {
      up = std::min(up, runner.upload_ms(kTransferProbeBytes));
      down = std::min(down, runner.download_ms(kTransferProbeBytes));
    }
    const double floor_ms = 1e-3;
    c.transfers.upload_gbps =
        static_cast<double>(kTransferProbeBytes) / (std::max(up, floor_ms) * 1e6);
    c.transfers.download_gbps =
        static_cast<double>(kTransferProbeBytes) / (std::max(down, floor_ms) * 1e6);
  }
  return c;
}

}  // namespace sparkle::select
