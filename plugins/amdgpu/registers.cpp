// Per-generation compute register tables (see registers.hpp).
//
// How each address was derived: the Linux amdgpu register headers give
// offsets relative to a GC segment base (regX / mmX with BASE_IDX 0); the
// ip_offset headers give that base. Absolute = offset + base.
//   gfx9 (gfx90a, GC 9.4.2): gc_9_4_2_offset.h, base 0x2000
//        (drivers/gpu/drm/amd/include/aldebaran_ip_offset.h GC_BASE seg 0).
//   gfx10.3 (GC 10.3.0): gc_10_3_0_offset.h, base 0x1260
//        (drivers/gpu/drm/amd/include/sienna_cichlid_ip_offset.h GC_BASE seg 0).
//   gfx11 (GC 11.0.0): gc_11_0_0_offset.h, base 0x1260. Linux has no static
//        ip_offset header for GC 11 (the base comes from IP discovery); 0x1260
//        is the only base that puts these offsets inside the SET_SH_REG window
//        (PACKET3_SET_SH_REG_START 0x2c00 .. END 0x3000 in nvd.h), and libdrm's
//        gfx11 compute test writes COMPUTE_PGM_LO at SH offset 0x20c too
//        (research notes, ../shared/research/AMDGPU.md).
// The headers were read at torvalds/linux blob versions 85ebe5ae
// (gc_9_4_2), 055e23e3 (gc_10_3_0) and 0e8655b4 (gc_11_0_0).
//
// The one address that differs: COMPUTE_PGM_RSRC3 is 0x0e2d on GC 9.4.2
// (0x2E2D, SH offset 0x22D) but 0x1bc8 + 0x1260 = 0x2E28 (SH offset 0x228)
// on gfx10.3 and gfx11.
#include "registers.hpp"

#include <string>

namespace sparkle::amdgpu {
namespace {

#define GFX9_SRC(reg, off)                                       \
  "linux include/asic_reg/gc/gc_9_4_2_offset.h: reg" reg " " off \
  " + GC base 0x2000 (aldebaran_ip_offset.h)"
#define GFX103_SRC(reg, off)                                     \
  "linux include/asic_reg/gc/gc_10_3_0_offset.h: mm" reg " " off \
  " + GC base 0x1260 (sienna_cichlid_ip_offset.h)"
#define GFX11_SRC(reg, off) \
  "linux include/asic_reg/gc/gc_11_0_0_offset.h: reg" reg " " off " + GC base 0x1260"

// gfx9 addresses: gc_9_4_2 offset + 0x2000.
constexpr RegisterInfo kGfx9[] = {
    {Reg::ComputeDispatchInitiator, "COMPUTE_DISPATCH_INITIATOR", 0x2E00,
     GFX9_SRC("COMPUTE_DISPATCH_INITIATOR", "0x0e00")},
    {Reg::ComputeStartX, "COMPUTE_START_X", 0x2E04, GFX9_SRC("COMPUTE_START_X", "0x0e04")},
    {Reg::ComputeStartY, "COMPUTE_START_Y", 0x2E05, GFX9_SRC("COMPUTE_START_Y", "0x0e05")},
    {Reg::ComputeStartZ, "COMPUTE_START_Z", 0x2E06, GFX9_SRC("COMPUTE_START_Z", "0x0e06")},
    {Reg::ComputeNumThreadX, "COMPUTE_NUM_THREAD_X", 0x2E07,
     GFX9_SRC("COMPUTE_NUM_THREAD_X", "0x0e07")},
    {Reg::ComputeNumThreadY, "COMPUTE_NUM_THREAD_Y", 0x2E08,
     GFX9_SRC("COMPUTE_NUM_THREAD_Y", "0x0e08")},
    {Reg::ComputeNumThreadZ, "COMPUTE_NUM_THREAD_Z", 0x2E09,
     GFX9_SRC("COMPUTE_NUM_THREAD_Z", "0x0e09")},
    {Reg::ComputePgmLo, "COMPUTE_PGM_LO", 0x2E0C, GFX9_SRC("COMPUTE_PGM_LO", "0x0e0c")},
    {Reg::ComputePgmHi, "COMPUTE_PGM_HI", 0x2E0D, GFX9_SRC("COMPUTE_PGM_HI", "0x0e0d")},
    {Reg::ComputeDispatchScratchBaseLo, "COMPUTE_DISPATCH_SCRATCH_BASE_LO", 0x2E10,
     GFX9_SRC("COMPUTE_DISPATCH_SCRATCH_BASE_LO", "0x0e10")},
    {Reg::ComputeDispatchScratchBaseHi, "COMPUTE_DISPATCH_SCRATCH_BASE_HI", 0x2E11,
     GFX9_SRC("COMPUTE_DISPATCH_SCRATCH_BASE_HI", "0x0e11")},
    {Reg::ComputePgmRsrc1, "COMPUTE_PGM_RSRC1", 0x2E12, GFX9_SRC("COMPUTE_PGM_RSRC1", "0x0e12")},
    {Reg::ComputePgmRsrc2, "COMPUTE_PGM_RSRC2", 0x2E13, GFX9_SRC("COMPUTE_PGM_RSRC2", "0x0e13")},
    {Reg::ComputeResourceLimits, "COMPUTE_RESOURCE_LIMITS", 0x2E15,
     GFX9_SRC("COMPUTE_RESOURCE_LIMITS", "0x0e15")},
    {Reg::ComputeStaticThreadMgmtSe0, "COMPUTE_STATIC_THREAD_MGMT_SE0", 0x2E16,
     GFX9_SRC("COMPUTE_STATIC_THREAD_MGMT_SE0", "0x0e16")},
    {Reg::ComputeStaticThreadMgmtSe1, "COMPUTE_STATIC_THREAD_MGMT_SE1", 0x2E17,
     GFX9_SRC("COMPUTE_STATIC_THREAD_MGMT_SE1", "0x0e17")},
    {Reg::ComputeTmpringSize, "COMPUTE_TMPRING_SIZE", 0x2E18,
     GFX9_SRC("COMPUTE_TMPRING_SIZE", "0x0e18")},
    {Reg::ComputeStaticThreadMgmtSe2, "COMPUTE_STATIC_THREAD_MGMT_SE2", 0x2E19,
     GFX9_SRC("COMPUTE_STATIC_THREAD_MGMT_SE2", "0x0e19")},
    {Reg::ComputeStaticThreadMgmtSe3, "COMPUTE_STATIC_THREAD_MGMT_SE3", 0x2E1A,
     GFX9_SRC("COMPUTE_STATIC_THREAD_MGMT_SE3", "0x0e1a")},
    {Reg::ComputeRestartX, "COMPUTE_RESTART_X", 0x2E1B, GFX9_SRC("COMPUTE_RESTART_X", "0x0e1b")},
    {Reg::ComputeRestartY, "COMPUTE_RESTART_Y", 0x2E1C, GFX9_SRC("COMPUTE_RESTART_Y", "0x0e1c")},
    {Reg::ComputeRestartZ, "COMPUTE_RESTART_Z", 0x2E1D, GFX9_SRC("COMPUTE_RESTART_Z", "0x0e1d")},
    {Reg::ComputePgmRsrc3, "COMPUTE_PGM_RSRC3", 0x2E2D, GFX9_SRC("COMPUTE_PGM_RSRC3", "0x0e2d")},
    {Reg::ComputeUserData0, "COMPUTE_USER_DATA_0", 0x2E40,
     GFX9_SRC("COMPUTE_USER_DATA_0", "0x0e40")},
};

// gfx10.3 addresses: gc_10_3_0 offset + 0x1260.
constexpr RegisterInfo kGfx103[] = {
    {Reg::ComputeDispatchInitiator, "COMPUTE_DISPATCH_INITIATOR", 0x2E00,
     GFX103_SRC("COMPUTE_DISPATCH_INITIATOR", "0x1ba0")},
    {Reg::ComputeStartX, "COMPUTE_START_X", 0x2E04, GFX103_SRC("COMPUTE_START_X", "0x1ba4")},
    {Reg::ComputeStartY, "COMPUTE_START_Y", 0x2E05, GFX103_SRC("COMPUTE_START_Y", "0x1ba5")},
    {Reg::ComputeStartZ, "COMPUTE_START_Z", 0x2E06, GFX103_SRC("COMPUTE_START_Z", "0x1ba6")},
    {Reg::ComputeNumThreadX, "COMPUTE_NUM_THREAD_X", 0x2E07,
     GFX103_SRC("COMPUTE_NUM_THREAD_X", "0x1ba7")},
    {Reg::ComputeNumThreadY, "COMPUTE_NUM_THREAD_Y", 0x2E08,
     GFX103_SRC("COMPUTE_NUM_THREAD_Y", "0x1ba8")},
    {Reg::ComputeNumThreadZ, "COMPUTE_NUM_THREAD_Z", 0x2E09,
     GFX103_SRC("COMPUTE_NUM_THREAD_Z", "0x1ba9")},
    {Reg::ComputePgmLo, "COMPUTE_PGM_LO", 0x2E0C, GFX103_SRC("COMPUTE_PGM_LO", "0x1bac")},
    {Reg::ComputePgmHi, "COMPUTE_PGM_HI", 0x2E0D, GFX103_SRC("COMPUTE_PGM_HI", "0x1bad")},
    {Reg::ComputeDispatchScratchBaseLo, "COMPUTE_DISPATCH_SCRATCH_BASE_LO", 0x2E10,
     GFX103_SRC("COMPUTE_DISPATCH_SCRATCH_BASE_LO", "0x1bb0")},
    {Reg::ComputeDispatchScratchBaseHi, "COMPUTE_DISPATCH_SCRATCH_BASE_HI", 0x2E11,
     GFX103_SRC("COMPUTE_DISPATCH_SCRATCH_BASE_HI", "0x1bb1")},
    {Reg::ComputePgmRsrc1, "COMPUTE_PGM_RSRC1", 0x2E12, GFX103_SRC("COMPUTE_PGM_RSRC1", "0x1bb2")},
    {Reg::ComputePgmRsrc2, "COMPUTE_PGM_RSRC2", 0x2E13, GFX103_SRC("COMPUTE_PGM_RSRC2", "0x1bb3")},
    {Reg::ComputeResourceLimits, "COMPUTE_RESOURCE_LIMITS", 0x2E15,
     GFX103_SRC("COMPUTE_RESOURCE_LIMITS", "0x1bb5")},
    {Reg::ComputeStaticThreadMgmtSe0, "COMPUTE_STATIC_THREAD_MGMT_SE0", 0x2E16,
     GFX103_SRC("COMPUTE_STATIC_THREAD_MGMT_SE0", "0x1bb6")},
    {Reg::ComputeStaticThreadMgmtSe1, "COMPUTE_STATIC_THREAD_MGMT_SE1", 0x2E17,
     GFX103_SRC("COMPUTE_STATIC_THREAD_MGMT_SE1", "0x1bb7")},
    {Reg::ComputeTmpringSize, "COMPUTE_TMPRING_SIZE", 0x2E18,
     GFX103_SRC("COMPUTE_TMPRING_SIZE", "0x1bb8")},
    {Reg::ComputeStaticThreadMgmtSe2, "COMPUTE_STATIC_THREAD_MGMT_SE2", 0x2E19,
     GFX103_SRC("COMPUTE_STATIC_THREAD_MGMT_SE2", "0x1bb9")},
    {Reg::ComputeStaticThreadMgmtSe3, "COMPUTE_STATIC_THREAD_MGMT_SE3", 0x2E1A,
     GFX103_SRC("COMPUTE_STATIC_THREAD_MGMT_SE3", "0x1bba")},
    {Reg::ComputeRestartX, "COMPUTE_RESTART_X", 0x2E1B, GFX103_SRC("COMPUTE_RESTART_X", "0x1bbb")},
    {Reg::ComputeRestartY, "COMPUTE_RESTART_Y", 0x2E1C, GFX103_SRC("COMPUTE_RESTART_Y", "0x1bbc")},
    {Reg::ComputeRestartZ, "COMPUTE_RESTART_Z", 0x2E1D, GFX103_SRC("COMPUTE_RESTART_Z", "0x1bbd")},
    {Reg::ComputePgmRsrc3, "COMPUTE_PGM_RSRC3", 0x2E28, GFX103_SRC("COMPUTE_PGM_RSRC3", "0x1bc8")},
    {Reg::ComputeUserData0, "COMPUTE_USER_DATA_0", 0x2E40,
     GFX103_SRC("COMPUTE_USER_DATA_0", "0x1be0")},
};

// gfx11 addresses: gc_11_0_0 offset + 0x1260.
constexpr RegisterInfo kGfx11[] = {
    {Reg::ComputeDispatchInitiator, "COMPUTE_DISPATCH_INITIATOR", 0x2E00,
     GFX11_SRC("COMPUTE_DISPATCH_INITIATOR", "0x1ba0")},
    {Reg::ComputeStartX, "COMPUTE_START_X", 0x2E04, GFX11_SRC("COMPUTE_START_X", "0x1ba4")},
    {Reg::ComputeStartY, "COMPUTE_START_Y", 0x2E05, GFX11_SRC("COMPUTE_START_Y", "0x1ba5")},
    {Reg::ComputeStartZ, "COMPUTE_START_Z", 0x2E06, GFX11_SRC("COMPUTE_START_Z", "0x1ba6")},
    {Reg::ComputeNumThreadX, "COMPUTE_NUM_THREAD_X", 0x2E07,
     GFX11_SRC("COMPUTE_NUM_THREAD_X", "0x1ba7")},
    {Reg::ComputeNumThreadY, "COMPUTE_NUM_THREAD_Y", 0x2E08,
     GFX11_SRC("COMPUTE_NUM_THREAD_Y", "0x1ba8")},
    {Reg::ComputeNumThreadZ, "COMPUTE_NUM_THREAD_Z", 0x2E09,
     GFX11_SRC("COMPUTE_NUM_THREAD_Z", "0x1ba9")},
    {Reg::ComputePgmLo, "COMPUTE_PGM_LO", 0x2E0C, GFX11_SRC("COMPUTE_PGM_LO", "0x1bac")},
    {Reg::ComputePgmHi, "COMPUTE_PGM_HI", 0x2E0D, GFX11_SRC("COMPUTE_PGM_HI", "0x1bad")},
    {Reg::ComputeDispatchScratchBaseLo, "COMPUTE_DISPATCH_SCRATCH_BASE_LO", 0x2E10,
     GFX11_SRC("COMPUTE_DISPATCH_SCRATCH_BASE_LO", "0x1bb0")},
    {Reg::ComputeDispatchScratchBaseHi, "COMPUTE_DISPATCH_SCRATCH_BASE_HI", 0x2E11,
     GFX11_SRC("COMPUTE_DISPATCH_SCRATCH_BASE_HI", "0x1bb1")},
    {Reg::ComputePgmRsrc1, "COMPUTE_PGM_RSRC1", 0x2E12, GFX11_SRC("COMPUTE_PGM_RSRC1", "0x1bb2")},
    {Reg::ComputePgmRsrc2, "COMPUTE_PGM_RSRC2", 0x2E13, GFX11_SRC("COMPUTE_PGM_RSRC2", "0x1bb3")},
    {Reg::ComputeResourceLimits, "COMPUTE_RESOURCE_LIMITS", 0x2E15,
     GFX11_SRC("COMPUTE_RESOURCE_LIMITS", "0x1bb5")},
    {Reg::ComputeStaticThreadMgmtSe0, "COMPUTE_STATIC_THREAD_MGMT_SE0", 0x2E16,
     GFX11_SRC("COMPUTE_STATIC_THREAD_MGMT_SE0", "0x1bb6")},
    {Reg::ComputeStaticThreadMgmtSe1, "COMPUTE_STATIC_THREAD_MGMT_SE1", 0x2E17,
     GFX11_SRC("COMPUTE_STATIC_THREAD_MGMT_SE1", "0x1bb7")},
    {Reg::ComputeTmpringSize, "COMPUTE_TMPRING_SIZE", 0x2E18,
     GFX11_SRC("COMPUTE_TMPRING_SIZE", "0x1bb8")},
    {Reg::ComputeStaticThreadMgmtSe2, "COMPUTE_STATIC_THREAD_MGMT_SE2", 0x2E19,
     GFX11_SRC("COMPUTE_STATIC_THREAD_MGMT_SE2", "0x1bb9")},
    {Reg::ComputeStaticThreadMgmtSe3, "COMPUTE_STATIC_THREAD_MGMT_SE3", 0x2E1A,
     GFX11_SRC("COMPUTE_STATIC_THREAD_MGMT_SE3", "0x1bba")},
    {Reg::ComputeRestartX, "COMPUTE_RESTART_X", 0x2E1B, GFX11_SRC("COMPUTE_RESTART_X", "0x1bbb")},
    {Reg::ComputeRestartY, "COMPUTE_RESTART_Y", 0x2E1C, GFX11_SRC("COMPUTE_RESTART_Y", "0x1bbc")},
    {Reg::ComputeRestartZ, "COMPUTE_RESTART_Z", 0x2E1D, GFX11_SRC("COMPUTE_RESTART_Z", "0x1bbd")},
    {Reg::ComputePgmRsrc3, "COMPUTE_PGM_RSRC3", 0x2E28, GFX11_SRC("COMPUTE_PGM_RSRC3", "0x1bc8")},
    {Reg::ComputeUserData0, "COMPUTE_USER_DATA_0", 0x2E40,
     GFX11_SRC("COMPUTE_USER_DATA_0", "0x1be0")},
};

#undef GFX9_SRC
#undef GFX103_SRC
#undef GFX11_SRC

const char* const kUserDataNames[kUserDataCount] = {
    "COMPUTE_USER_DATA_0",  "COMPUTE_USER_DATA_1",  "COMPUTE_USER_DATA_2",  "COMPUTE_USER_DATA_3",
    "COMPUTE_USER_DATA_4",  "COMPUTE_USER_DATA_5",  "COMPUTE_USER_DATA_6",  "COMPUTE_USER_DATA_7",
    "COMPUTE_USER_DATA_8",  "COMPUTE_USER_DATA_9",  "COMPUTE_USER_DATA_10", "COMPUTE_USER_DATA_11",
    "COMPUTE_USER_DATA_12", "COMPUTE_USER_DATA_13", "COMPUTE_USER_DATA_14", "COMPUTE_USER_DATA_15",
};

}  // namespace

std::span<const RegisterInfo> register_table(Generation g) {
  switch (g) {
    case Generation::Gfx9:
      return kGfx9;
    case Generation::Gfx10_3:
      return kGfx103;
    case Generation::Gfx11:
      return kGfx11;
  }
  return {};
}

std::optional<RegisterInfo> find_register(Generation g, Reg reg) {
  for (const auto& r : register_table(g))
    if (r.reg == reg) return r;
  return std::nullopt;
}

const char* register_name(Generation g, uint32_t address) {
  for (const auto& r : register_table(g)) {
    if (r.reg == Reg::ComputeUserData0 && address >= r.address &&
        address < r.address + kUserDataCount)
      return kUserDataNames[address - r.address];
    if (r.address == address) return r.name;
  }
  return nullptr;
}

}  // namespace sparkle::amdgpu
