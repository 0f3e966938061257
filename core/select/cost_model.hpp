// The prior of the selector: a device's fixed latency, compute rate and
// data rate, measured once per device fingerprint by a micro-benchmark, and
// the time they predict for an op.
#pragma once

#include <sparkle/conv2d.hpp>
#include <string>

namespace sparkle::select {

struct DeviceModel {
  double latency_ms = 0;  // a tiny op, end to end
  double gflops = 1;      // compute-bound op, latency removed
  double gbps = 1;        // data-bound op (bytes moved in and out), latency removed
};

// What the selector knows of one op.
struct OpSignature {
  double flops = 0;
  double bytes = 0;    // x + w + bias + y, as the caller passes them
  std::string bucket;  // shape class and size: the key of learned corrections
};

OpSignature signature_of(const Conv2dDesc& d);

// latency + flops / rate + bytes / bandwidth.
double predict_ms(const DeviceModel& m, const OpSignature& op);

// The three shapes the micro-benchmark runs: a tiny op (latency), a
// compute-bound 3x3 and a data-bound 1x1.
Conv2dDesc latency_probe();
Conv2dDesc compute_probe();
Conv2dDesc bandwidth_probe();

// Builds the model from the best times of the three probes.
DeviceModel fit_model(double latency_ms, double compute_ms, double bandwidth_ms);

}  // namespace sparkle::select
