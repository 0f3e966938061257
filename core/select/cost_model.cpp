// Roofline-style cost model with a fixed per-call latency.
#include "select/cost_model.hpp"

#include <algorithm>
#include <cmath>

namespace sparkle::select {

OpSignature signature_of(const Conv2dDesc& d) {
  OpSignature s;
  s.flops = d.flops();
  // Summed in double: each count fits int64 (validate() checks), their sum
  // need not.
  s.bytes =
      4.0 * (static_cast<double>(d.input_elements()) + static_cast<double>(d.weight_elements()) +
             static_cast<double>(d.bias_elements()) + static_cast<double>(d.output_elements()));
  const char* shape_class = d.groups == d.c && d.groups > 1 ? "depthwise"
                            : d.groups > 1                  ? "grouped"
                            : (d.r == 1 && d.s == 1)        ? "pointwise"
                                                            : "spatial";
  // Half-octave size classes: ops within ~1.4x of each other share what the
  // selector learned about them.
  const int size_class = static_cast<int>(std::floor(2.0 * std::log2(std::max(s.flops, 1.0))));
  // Not stride_h * stride_w > 1: validated strides may be near 2^62 and the
  // product would overflow.
  const bool strided = d.stride_h > 1 || d.stride_w > 1;
  s.bucket = std::string(shape_class) + "/s" + std::to_string(strided ? 2 : 1) + "/f" +
             std::to_string(size_class);
  return s;
}

double predict_ms(const DeviceModel& m, const OpSignature& op) {
  return m.latency_ms + op.flops / (m.gflops * 1e6) + op.bytes / (m.gbps * 1e6);
}

Conv2dDesc latency_probe() {
  Conv2dDesc d;
  d.n = d.c = d.h = d.w = d.k = d.r = d.s = 1;
  return d;
}

Conv2dDesc compute_probe() {
  Conv2dDesc d;
  d.n = 1, d.c = 64, d.h = 28, d.w = 28, d.k = 64, d.r = 3, d.s = 3;
  d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 1;
  return d;
}

Conv2dDesc bandwidth_probe() {
  Conv2dDesc d;
  d.n = 1, d.c = 4, d.h = 512, d.w = 512, d.k = 4, d.r = 1, d.s = 1;
  return d;
}

double transfer_ms(const TransferModel& m, double upload_bytes, double download_bytes) {
  double ms = 0;
  if (m.upload_gbps > 0) ms += upload_bytes / (m.upload_gbps * 1e6);
  if (m.download_gbps > 0) ms += download_bytes / (m.download_gbps * 1e6);
  return ms;
}

DeviceModel fit_model(double latency_ms, double compute_ms, double bandwidth_ms,
                      double overhead_ms) {
  DeviceModel m;
  m.overhead_ms = std::max(overhead_ms, 0.0);
  m.latency_ms = std::max(latency_ms, 1e-4);
  const auto c = signature_of(compute_probe()), b = signature_of(bandwidth_probe());
  // Each probe's time beyond the latency is charged to its dominant term;
  // the floor keeps a noisy probe from claiming an infinite rate.
  const double floor_ms = 1e-3;
  m.gflops = c.flops / (std::max(compute_ms - m.latency_ms, floor_ms) * 1e6);
  m.gbps = b.bytes / (std::max(bandwidth_ms - m.latency_ms, floor_ms) * 1e6);
  return m;
}

}  // namespace sparkle::select
