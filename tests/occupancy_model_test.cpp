// The model that orders kernel variants before they are measured
// (plugins/common/occupancy_model.hpp): residency from what the device
// reports, waves against its compute units, nothing assumed when it
// reports nothing.
#include "../plugins/common/occupancy_model.hpp"

#include <doctest/doctest.h>

using sparkle::gpu::ComputeUnits;
using sparkle::gpu::predict;

namespace {

sparkle_variant_info variant(uint64_t groups, uint32_t group_size, uint32_t registers) {
  sparkle_variant_info v{};
  v.struct_size = sizeof v;
  v.work_groups = groups;
  v.group_size = group_size;
  v.registers = registers;
  v.flops = 1e9;
  v.efficiency = 0.8;
  return v;
}

}  // namespace

TEST_CASE("residency comes from the device's threads and registers per unit") {
  // What the OpenGL backend reads on an H100/H200: 132 SMs, 64 warps of 32,
  // registers for 32 per resident thread.
  ComputeUnits gpu;
  gpu.count = 132;
  gpu.threads_per_cu = 64 * 32;
  gpu.registers_per_cu = 64 * 32 * 32;
  // 256 invocations at ~124 registers: two groups per SM (the "132 x 2" the
  // old heuristic had written into the code).
  auto p = predict(variant(264, 256, 124), gpu);
  CHECK(p.slots == 264);
  CHECK(p.fill == doctest::Approx(1.0));
  // 52 tiles on 264 slots: one partial wave.
  p = predict(variant(52, 256, 124), gpu);
  CHECK(p.fill == doctest::Approx(52.0 / 264));
  // 265 tiles need a second wave that is almost empty.
  p = predict(variant(265, 256, 124), gpu);
  CHECK(p.fill == doctest::Approx(265.0 / 528));
  // Fewer registers, more groups resident.
  CHECK(predict(variant(10000, 128, 60), gpu).slots == 132 * 8);
  // Lower predicted cost for the fuller device.
  CHECK(predict(variant(264, 256, 124), gpu).cost < predict(variant(52, 256, 124), gpu).cost);
}

TEST_CASE("a device that reports one group per unit, or nothing, is modelled as such") {
  ComputeUnits cpu;  // llvmpipe: its threads, one work group each
  cpu.count = 2;
  cpu.groups_per_cu = 1;
  CHECK(predict(variant(3, 64, 100), cpu).slots == 2);
  CHECK(predict(variant(3, 64, 100), cpu).fill == doctest::Approx(0.75));
  const ComputeUnits unknown;
  const auto p = predict(variant(3, 64, 100), unknown);
  CHECK(p.slots == 0);
  CHECK(p.fill == 1.0);  // no fill term without a unit count
}
