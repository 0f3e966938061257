// PM4 type-3 packets for the compute ring, and the dispatch sequence built
// from them. Encodings and field positions are from (read, not copied):
//   Linux drivers/gpu/drm/amd/amdgpu/nvd.h (gfx10+) and soc15d.h (gfx9):
//     PACKET3(op, n), opcodes, SET_SH_REG window, EVENT_TYPE/EVENT_INDEX,
//     RELEASE_MEM fields, gfx9 ACQUIRE_MEM CP_COHER_CNTL bits and layout;
//   libdrm tests/amdgpu/shader_test_util.c: PACKET3_COMPUTE (bit 1, shader
//     type compute), 0xffff1000 NOP padding of compute IBs to 8 dwords;
//   Mesa src/amd/common/sid.h: PKT3_SHADER_TYPE_S, PKT3_NOP_PAD (count
//     0x3fff = header-only NOP);
//   tinygrad tinygrad/runtime/autogen/am/pm4_nv.py (generated from amdgpu's
//     nvd.h): gfx10+ ACQUIRE_MEM GCR_CNTL bits; autogen/am/soc_9.py and
//     soc_11.py: event types CS_PARTIAL_FLUSH = 7,
//     CACHE_FLUSH_AND_INV_TS_EVENT = 20; runtime/ops_amd.py AMDComputeQueue:
//     packet order of a dispatch and the ACQUIRE_MEM / RELEASE_MEM layouts.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <vector>

#include "gfx_target.hpp"
#include "registers.hpp"

namespace sparkle::amdgpu::pm4 {

// Opcodes (nvd.h / soc15d.h PACKET3_*).
constexpr uint32_t kNop = 0x10;
constexpr uint32_t kDispatchDirect = 0x15;
constexpr uint32_t kEventWrite = 0x46;
constexpr uint32_t kReleaseMem = 0x49;
constexpr uint32_t kAcquireMem = 0x58;
constexpr uint32_t kSetShReg = 0x76;

// Event types (soc15 enums) and indices (soc15d.h EVENT_INDEX comments;
// mec_release_mem event_index end_of_pipe = 5).
constexpr uint32_t kEventCsPartialFlush = 7;
constexpr uint32_t kEventCacheFlushAndInvTs = 20;
constexpr uint32_t kEventIndexPartialFlush = 4;
constexpr uint32_t kEventIndexEndOfPipe = 5;

// RELEASE_MEM DATA_SEL values (nvd.h comment): 3 = 64-bit GPU counter.
constexpr uint32_t kDataSelGpuClock = 3;

// The header-only NOP libdrm pads compute IBs with.
constexpr uint32_t kNopPad = 0xFFFF1000u;

// COMPUTE_DISPATCH_INITIATOR bits (gc_*_sh_mask.h field list, as in
// tinygrad's regs.py): COMPUTE_SHADER_EN 0, FORCE_START_AT_000 2,
// ORDER_MODE 6, CS_W32_EN 15 (gfx10+).
constexpr uint32_t kInitiatorComputeShaderEn = 1u << 0;
constexpr uint32_t kInitiatorForceStartAt000 = 1u << 2;
constexpr uint32_t kInitiatorOrderMode = 1u << 6;
constexpr uint32_t kInitiatorCsW32En = 1u << 15;

// A type-3 header for `payload` dwords after it (count = payload - 1), with
// the compute shader-type bit set as the compute ring expects.
uint32_t header(uint32_t opcode, uint32_t payload);

class Pm4Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An indirect buffer under construction.
class CommandBuffer {
 public:
  explicit CommandBuffer(Generation generation) : generation_(generation) {}
  Generation generation() const { return generation_; }

  // SET_SH_REG of consecutive registers from `first` (an absolute address
  // inside the SH window). Throws Pm4Error outside it.
  void set_sh_regs(uint32_t first, std::span<const uint32_t> values);
  // The same by name; throws when the generation has no such register.
  void set_sh_regs(Reg first, std::span<const uint32_t> values);
  void set_sh_reg(Reg reg, uint32_t value) {
    set_sh_regs(reg, std::span<const uint32_t>(&value, 1));
  }

  void dispatch_direct(uint32_t groups_x, uint32_t groups_y, uint32_t groups_z, uint32_t initiator);
  void event_write(uint32_t event_type, uint32_t event_index);
  // Invalidates (and writes back) every cache level a kernel reads through:
  // instruction, scalar/constant, vector L0/L1 and L2, over all memory.
  // gfx9 uses CP_COHER_CNTL bits, gfx10+ GCR_CNTL.
  void acquire_mem_all();
  // At end of pipe, writes the 64-bit GPU clock counter to `address`
  // (8-byte aligned, GPU virtual).
  void release_mem_timestamp(uint64_t address);
  void nop(uint32_t payload);
  // Pads with header-only NOPs to a multiple of `dwords` (a power of two).
  void pad_to(uint32_t dwords);

  const std::vector<uint32_t>& words() const { return words_; }
  size_t size() const { return words_.size(); }

 private:
  Generation generation_;
  std::vector<uint32_t> words_;
};

// Everything one dispatch sets; filled from a kernel and a launch.
struct DispatchSetup {
  uint64_t code_address = 0;                 // kernel entry, 256-byte aligned
  uint32_t rsrc1 = 0, rsrc2 = 0, rsrc3 = 0;  // from the descriptor
  uint32_t lds_bytes = 0;                    // group segment size
  bool write_rsrc3 = false;  // gfx10+ always; gfx9 when the descriptor has one (gfx90a)
  bool wave32 = false;
  std::vector<uint32_t> user_data;  // USER_DATA_0.. (<= 16)
  uint32_t group_size[3] = {1, 1, 1};
  uint32_t groups[3] = {1, 1, 1};
};

// COMPUTE_PGM_RSRC2 with LDS_SIZE (bits 15..23, in 512-byte units, as
// tinygrad's AMDProgram computes it) ORed in; the descriptor leaves it 0.
uint32_t rsrc2_with_lds(uint32_t rsrc2, uint32_t lds_bytes);
uint32_t dispatch_initiator(Generation generation, bool wave32);

// The register writes and DISPATCH_DIRECT of one dispatch (no cache
// maintenance; the caller brackets it).
void emit_dispatch(CommandBuffer& cb, const DispatchSetup& setup);

}  // namespace sparkle::amdgpu::pm4
