// The model that ranks kernel variants before any is measured: predicted
// time, in units of "flops at full device rate", from what a plugin says
// about a variant (sparkle_variant_info) and what the device says about its
// compute units. It is used twice: by a plugin for its first guess (what
// plan_conv2d picks without a tuning record) and by core/tune to decide
// which variants to measure first and which to prune. Nothing here is a
// device constant: every limit is read from the device or left out.
#pragma once

#include <sparkle/plugin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "tile_math.hpp"

namespace sparkle::gpu {

// What a device says about how work groups run on it; 0 means unknown.
struct ComputeUnits {
  int64_t count = 0;             // SMs / CUs / llvmpipe threads
  int64_t threads_per_cu = 0;    // resident invocations per unit (NVIDIA: warps x warp size)
  int64_t registers_per_cu = 0;  // 32-bit registers per unit, when known or derived
  int64_t groups_per_cu = 0;     // a fixed number of resident groups (software: 1)
};

struct Prediction {
  int64_t slots = 0;     // work groups resident on the whole device (0 unknown)
  double fill = 1;       // wave quantisation of the largest pass
  double occupancy = 1;  // latency hiding from resident threads
  double cost = 0;       // flops / (efficiency x fill x occupancy): lower is faster
};

inline Prediction predict(const sparkle_variant_info& v, const ComputeUnits& cu) {
  Prediction p;
  int64_t per_cu = 0;
  if (cu.groups_per_cu > 0) {
    per_cu = cu.groups_per_cu;
  } else if (cu.count > 0 && v.group_size > 0) {
    per_cu = INT64_MAX;
    if (cu.threads_per_cu > 0) per_cu = std::min<int64_t>(per_cu, cu.threads_per_cu / v.group_size);
    if (cu.registers_per_cu > 0 && v.registers > 0)
      per_cu =
          std::min<int64_t>(per_cu, cu.registers_per_cu / (int64_t{v.registers} * v.group_size));
    if (per_cu == INT64_MAX) per_cu = 1;  // nothing known: assume one group per unit
    per_cu = std::max<int64_t>(per_cu, 1);
    if (cu.threads_per_cu > 0) {
      // Fewer than a quarter of the unit's threads resident leaves memory
      // latency exposed; the penalty is a guess that only orders variants.
      const double resident = static_cast<double>(per_cu * v.group_size);
      p.occupancy =
          std::min(1.0, std::sqrt(resident / (0.25 * static_cast<double>(cu.threads_per_cu))));
    }
  }
  if (cu.count > 0 && per_cu > 0) {
    p.slots = cu.count * per_cu;
    p.fill = wave_fill(static_cast<int64_t>(v.work_groups), p.slots);
  }
  const double eff = v.efficiency > 0 ? v.efficiency : 0.5;
  const double flops = v.flops > 0 ? v.flops : 1.0;
  p.cost = flops / (eff * p.fill * p.occupancy);
  return p;
}

}  // namespace sparkle::gpu
