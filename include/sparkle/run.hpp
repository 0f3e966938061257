// Options of one call and what it reports back; shared by Engine::conv2d,
// Engine::submit and streams.
#pragma once

#include <string>
#include <vector>

namespace sparkle {

struct RunOptions {
  // "auto", a backend name ("cpu", "opengl": its first device) or NAME:INDEX.
  // Empty means SPARKLE_DEVICE, else "auto".
  std::string device;
  // Fill RunResult::explanation with why the device was chosen (also on
  // when SPARKLE_VERBOSE contains "dispatch", which prints it on stderr).
  bool explain = false;
  // The caller promises that the weights at w.data() keep their values
  // across calls (inference with fixed weights), as oneDNN's and PyTorch's
  // pre-packed weights assume. Backends may then keep a packed copy of w,
  // keyed by its address and shape, and skip re-reading it in its original
  // layout. Each call re-checks a sample of the weights against that copy
  // and re-packs when they differ, but a change that misses every sampled
  // element is not seen: pass false (the default) whenever w may change.
  bool constant_weights = false;
};

struct RunResult {
  std::string device;     // the device that ran it; "a+b" when the batch was split
  std::string kernel;     // the backend's kernel name
  double device_ms = -1;  // device time of the convolution when the device can time it, else -1
  double wall_ms = 0;     // submission to completion, transfers included
  // Host-device transfers of this call (device time where the device can
  // time copies, else the host's), or -1 when none were needed (resident
  // tensors, host-memory devices).
  double upload_ms = -1;
  double download_ms = -1;
  // With RunOptions::explain under "auto": one line per candidate (predicted
  // or learned time, why it won, lost or was unsupported), then
  // "selected: <device>".
  std::vector<std::string> explanation;
};

}  // namespace sparkle
