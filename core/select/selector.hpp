// Selector: picks the device expected to be fastest for an op and learns
// from every measured call. Estimates are the cost model's prediction times
// a learned correction per (device fingerprint, op bucket), an exponential
// moving average of measured / predicted. Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "select/cost_model.hpp"

namespace sparkle::select {

struct Candidate {
  std::string name;         // "cpu:0"
  std::string fingerprint;  // keys the model and the learned data
  std::string unsupported;  // empty if the device can run the op
  // What moving the operands to and from this device would cost (0 when
  // they live there): Selector::transfer_estimate_ms of the bytes that would
  // move, summed over the devices involved.
  double transfer_ms = 0;
};

struct Choice {
  // One device, or several with the images each one takes (a split).
  std::vector<std::pair<size_t, int64_t>> parts;  // candidate index, images
  bool explored = false;                          // not the best estimate: a bounded re-measurement
  std::vector<std::string> explanation;           // one line per candidate, then "selected: ..."
};

class Selector {
 public:
  // Loads the profile (models and learned corrections) from `profile_path`;
  // a missing file is empty, a corrupt one is ignored with one warning.
  explicit Selector(std::string profile_path);

  bool has_model(const std::string& fingerprint) const;
  void set_model(const std::string& fingerprint, const DeviceModel& model,
                 const TransferModel& transfers);

  // Best candidate for d, possibly a split of the batch, possibly an
  // exploration of a device whose data is stale (see selector.cpp).
  // allow_split: false when the operands live on a device (a split would
  // copy them).
  Choice choose(const std::vector<Candidate>& candidates, const Conv2dDesc& d,
                bool allow_split = true);

  // A measured call: updates the device's correction for the op's bucket.
  // An explored measurement that disagrees with the estimate replaces it:
  // exploration is rare, so waiting for several outliers would take
  // hundreds of calls, and a wrong optimistic value costs only the next call
  // (which then measures the device again).
  void record(const std::string& fingerprint, const Conv2dDesc& d, double measured_ms,
              bool explored = false);

  // Measured host-device transfers of one call (bytes 0: none that way):
  // updates the device's learned rates.
  void record_transfer(const std::string& fingerprint, double upload_bytes, double upload_ms,
                       double download_bytes, double download_ms);

  // Predicted time of the op on operands already on the device (call
  // overhead included), and whether learned data went into it.
  double estimate_ms(const std::string& fingerprint, const Conv2dDesc& d, int* samples) const;
  // Predicted time to move the bytes between the host and the device.
  double transfer_estimate_ms(const std::string& fingerprint, double upload_bytes,
                              double download_bytes) const;

  // Writes the profile atomically; false (with one warning) if it cannot.
  bool save();

 private:
  struct Learned {
    double correction = 1;  // EMA of measured / predicted
    int samples = 0;
    int outliers = 0;              // consecutive measurements far from the estimate
    int64_t last_measured_at = 0;  // bucket call counter at the last measurement
  };
  double estimate_locked(const std::string& fp, const OpSignature& op, int* samples) const;
  void load();

  std::string path_;
  mutable std::mutex mutex_;
  std::map<std::string, DeviceModel> models_;
  std::map<std::string, TransferModel> transfers_;
  std::map<std::pair<std::string, std::string>, Learned> learned_;  // (fingerprint, bucket)
  std::map<std::string, int64_t> bucket_calls_;
  bool dirty_ = false;
};

}  // namespace sparkle::select
