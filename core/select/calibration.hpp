// Calibration: the probes that give a device its selector models, run once
// per device fingerprint (the profile keeps them across processes).
#pragma once

#include <cstddef>
#include <sparkle/conv2d.hpp>

#include "select/cost_model.hpp"

namespace sparkle::select {

// What calibration needs a device to do; the engine implements it with
// resident tensors, so that the compute model holds no transfers.
class ProbeRunner {
 public:
  virtual ~ProbeRunner() = default;
  struct Times {
    double device_ms;  // the device's time for the convolution
    double wall_ms;    // the whole call as the host saw it
  };
  virtual Times conv(const Conv2dDesc& desc) = 0;
  // Whether host data needs moving at all (false: the device aliases it).
  virtual bool needs_transfers() = 0;
  // Wall time of moving `bytes` from host memory onto the device / back.
  virtual double upload_ms(size_t bytes) = 0;
  virtual double download_ms(size_t bytes) = 0;
};

struct Calibration {
  DeviceModel model;
  TransferModel transfers;
};

// Best of three runs of each probe. Throws what the runner throws.
Calibration calibrate(ProbeRunner& runner);

}  // namespace sparkle::select
