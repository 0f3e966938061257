// The prior of the selector: a device's fixed latency, compute rate and
// data rate, measured once per device fingerprint by a micro-benchmark, and
// the time they predict for an op.
#pragma once

#include <sparkle/conv2d.hpp>
#include <string>

namespace sparkle::select {

// How fast a device computes on operands that are already there
// (calibrated with resident tensors, timed by the device where it can).
struct DeviceModel {
  double latency_ms = 0;   // a tiny op
  double gflops = 1;       // compute-bound op, latency removed
  double gbps = 1;         // data-bound op (bytes read and written), latency removed
  double overhead_ms = 0;  // what a call costs the host beyond the device's time
};

// How fast a device moves data between the host and its memory. A rate of
// 0 means no transfer is needed (host-memory devices alias caller memory).
struct TransferModel {
  double upload_gbps = 0;
  double download_gbps = 0;
};

// What the selector knows of one op.
struct OpSignature {
  double flops = 0;
  double bytes = 0;    // x + w + bias + y, as the caller passes them
  std::string bucket;  // shape class and size: the key of learned corrections
};

OpSignature signature_of(const Conv2dDesc& d);

// latency + flops / rate + bytes / bandwidth (the device's own time; the
// call overhead is added by the selector).
double predict_ms(const DeviceModel& m, const OpSignature& op);

// Milliseconds to move the bytes at the model's rates.
double transfer_ms(const TransferModel& m, double upload_bytes, double download_bytes);

// The three shapes the micro-benchmark runs: a tiny op (latency), a
// compute-bound 3x3 and a data-bound 1x1.
Conv2dDesc latency_probe();
Conv2dDesc compute_probe();
Conv2dDesc bandwidth_probe();

// Builds the model from the best device times of the three probes and the
// host's overhead per call.
DeviceModel fit_model(double latency_ms, double compute_ms, double bandwidth_ms,
                      double overhead_ms = 0);

}  // namespace sparkle::select
