// How a plan picks up the tuner's winner: the one call the engine makes
// instead of plugin->plan_conv2d. Without a record (or with variants absent,
// or SPARKLE_TUNING=off) it is exactly plan_conv2d.
#pragma once

#include <sparkle/plugin.h>

#include <string>

namespace sparkle::tune {

// "n32c64h56w56_k64r3s3_st1x1_p1.1.1.1_d1x1_g1_b0_r0_f0": every field of the
// descriptor that can change the kernel, flags included.
std::string op_signature(const sparkle_conv2d_desc& d);

// True when the plugin implements the whole v1.4 variant group.
bool has_variants(const sparkle_plugin* api);

// Plans d on device: the variant the tuning record of (plugin, plugin
// build, fingerprint, op) names, else plan_conv2d. A recorded variant that
// is no longer listed or fails to plan costs one warning and falls back to
// plan_conv2d. Never throws; returns what the plugin returned.
sparkle_status plan_conv2d(const sparkle_plugin* api, sparkle_device device,
                           const std::string& fingerprint, const sparkle_conv2d_desc& d,
                           sparkle_plan* out, bool* tuned = nullptr);

// The index of the variant named `name` for d, or -1.
long find_variant(const sparkle_plugin* api, sparkle_device device, const sparkle_conv2d_desc& d,
                  const std::string& name);

}  // namespace sparkle::tune
