// The compute registers a dispatch writes, per generation, each with the
// file its address was read from. Addresses are absolute dword addresses in
// the GC register space (what SET_SH_REG offsets are relative to), i.e. the
// header's offset plus the GC block's segment base.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "gfx_target.hpp"

namespace sparkle::amdgpu {

// The registers the builder knows by name. Not every generation has all.
enum class Reg {
  ComputeDispatchInitiator,
  ComputeStartX,
  ComputeStartY,
  ComputeStartZ,
  ComputeNumThreadX,
  ComputeNumThreadY,
  ComputeNumThreadZ,
  ComputePgmLo,
  ComputePgmHi,
  ComputeDispatchScratchBaseLo,
  ComputeDispatchScratchBaseHi,
  ComputePgmRsrc1,
  ComputePgmRsrc2,
  ComputeResourceLimits,
  ComputeStaticThreadMgmtSe0,
  ComputeStaticThreadMgmtSe1,
  ComputeTmpringSize,
  ComputeStaticThreadMgmtSe2,
  ComputeStaticThreadMgmtSe3,
  ComputeRestartX,
  ComputeRestartY,
  ComputeRestartZ,
  ComputePgmRsrc3,
  ComputeUserData0,  // ..15 follow at consecutive addresses
};

struct RegisterInfo {
  Reg reg;
  const char* name;    // "COMPUTE_PGM_LO"
  uint32_t address;    // absolute dword address
  const char* source;  // the file (and definition) it was read from
};

// The SET_SH_REG window (nvd.h / soc15d.h PACKET3_SET_SH_REG_START/END).
constexpr uint32_t kShRegStart = 0x2C00;
constexpr uint32_t kShRegEnd = 0x3000;
constexpr uint32_t kUserDataCount = 16;

// All entries of a generation's table.
std::span<const RegisterInfo> register_table(Generation g);
// One entry; nothing when the generation has no such register.
std::optional<RegisterInfo> find_register(Generation g, Reg reg);
// The name of an absolute address on a generation (USER_DATA_n included), or
// nullptr for addresses the table does not list.
const char* register_name(Generation g, uint32_t address);

}  // namespace sparkle::amdgpu
