// PM4 packet encoding (sources in pm4.hpp).
#include "pm4.hpp"

#include <string>

namespace sparkle::amdgpu::pm4 {
namespace {

// ACQUIRE_MEM GCR_CNTL (gfx10+): GLI_INV(1) = invalidate all of the
// instruction cache, then GLM/GLK write-back + invalidate, GLV and GL1
// invalidate, GL2 write-back + invalidate.
constexpr uint32_t kGcrGliInvAll = 1u << 0;
constexpr uint32_t kGcrGlmWb = 1u << 4;
constexpr uint32_t kGcrGlmInv = 1u << 5;
constexpr uint32_t kGcrGlkWb = 1u << 6;
constexpr uint32_t kGcrGlkInv = 1u << 7;
constexpr uint32_t kGcrGlvInv = 1u << 8;
constexpr uint32_t kGcrGl1Inv = 1u << 9;
constexpr uint32_t kGcrGl2Inv = 1u << 14;
constexpr uint32_t kGcrGl2Wb = 1u << 15;

// ACQUIRE_MEM CP_COHER_CNTL (gfx9, soc15d.h).
constexpr uint32_t kCoherTcWbActionEna = 1u << 18;
constexpr uint32_t kCoherTcl1ActionEna = 1u << 22;
constexpr uint32_t kCoherTcActionEna = 1u << 23;
constexpr uint32_t kCoherShKcacheActionEna = 1u << 27;
constexpr uint32_t kCoherShIcacheActionEna = 1u << 29;

// ACQUIRE_MEM over all memory: COHER_SIZE 0xffffffff, COHER_SIZE_HI 24 bits
// (soc15d.h PACKET3_ACQUIRE_MEM__COHER_SIZE_HI_VG10), base 0, and the poll
// interval tinygrad uses (0x0A).
constexpr uint32_t kCoherSizeLo = 0xFFFFFFFFu;
constexpr uint32_t kCoherSizeHi = 0x00FFFFFFu;
constexpr uint32_t kPollInterval = 0x0000000Au;

}  // namespace

uint32_t header(uint32_t opcode, uint32_t payload) {
  if (payload == 0 || payload > 0x3FFF)
    throw Pm4Error("PM4: a type-3 packet carries 1..16383 payload dwords, not " +
                   std::to_string(payload));
  return (3u << 30) | ((payload - 1) & 0x3FFFu) << 16 | (opcode & 0xFFu) << 8 | (1u << 1);
}

void CommandBuffer::set_sh_regs(uint32_t first, std::span<const uint32_t> values) {
  if (values.empty()) throw Pm4Error("PM4: SET_SH_REG with no value");
  if (first < kShRegStart || first + values.size() > kShRegEnd)
    throw Pm4Error("PM4: SET_SH_REG of " + std::to_string(values.size()) + " registers at " +
                   std::to_string(first) + " leaves the SH window 0x2C00..0x3000");
  words_.push_back(header(kSetShReg, static_cast<uint32_t>(values.size()) + 1));
  words_.push_back(first - kShRegStart);
  words_.insert(words_.end(), values.begin(), values.end());
}

void CommandBuffer::set_sh_regs(Reg first, std::span<const uint32_t> values) {
  const auto info = find_register(generation_, first);
  if (!info)
    throw Pm4Error(std::string("PM4: ") + generation_name(generation_) + " has no register " +
                   std::to_string(static_cast<int>(first)));
  const uint32_t limit = first == Reg::ComputeUserData0 ? kUserDataCount : 0;
  if (limit != 0 && values.size() > limit) throw Pm4Error("PM4: more than 16 USER_DATA values");
  // Every register written must be a named one of this generation.
  for (size_t i = 0; i < values.size(); ++i)
    if (register_name(generation_, info->address + static_cast<uint32_t>(i)) == nullptr)
      throw Pm4Error(std::string("PM4: SET_SH_REG from ") + info->name + " runs into " +
                     std::to_string(info->address + i) + ", which the " +
                     generation_name(generation_) + " table does not list");
  set_sh_regs(info->address, values);
}

void CommandBuffer::dispatch_direct(uint32_t gx, uint32_t gy, uint32_t gz, uint32_t initiator) {
  if (gx == 0 || gy == 0 || gz == 0) throw Pm4Error("PM4: DISPATCH_DIRECT with an empty grid");
  words_.push_back(header(kDispatchDirect, 4));
  words_.insert(words_.end(), {gx, gy, gz, initiator});
}

void CommandBuffer::event_write(uint32_t event_type, uint32_t event_index) {
  words_.push_back(header(kEventWrite, 1));
  words_.push_back((event_type & 0x3Fu) | (event_index & 0xFu) << 8);
}

void CommandBuffer::acquire_mem_all() {
  if (generation_ == Generation::Gfx9) {
    // header, CP_COHER_CNTL, size lo, size hi, base lo, base hi, poll interval.
    words_.push_back(header(kAcquireMem, 6));
    words_.push_back(kCoherShIcacheActionEna | kCoherShKcacheActionEna | kCoherTcActionEna |
                     kCoherTcl1ActionEna | kCoherTcWbActionEna);
    words_.insert(words_.end(), {kCoherSizeLo, kCoherSizeHi, 0u, 0u, kPollInterval});
  } else {
    // header, (reserved) 0, size lo, size hi, base lo, base hi, poll, GCR_CNTL.
    words_.push_back(header(kAcquireMem, 7));
    words_.insert(words_.end(), {0u, kCoherSizeLo, kCoherSizeHi, 0u, 0u, kPollInterval});
    words_.push_back(kGcrGliInvAll | kGcrGlmWb | kGcrGlmInv | kGcrGlkWb | kGcrGlkInv | kGcrGlvInv |
                     kGcrGl1Inv | kGcrGl2Inv | kGcrGl2Wb);
  }
}

void CommandBuffer::release_mem_timestamp(uint64_t address) {
  if (address % 8 != 0) throw Pm4Error("PM4: RELEASE_MEM timestamp address not 8-byte aligned");
  // dword 1: EVENT_TYPE | EVENT_INDEX(end of pipe); no cache actions.
  // dword 2: DATA_SEL(3) << 29, INT_SEL(0) << 24, DST_SEL(0) << 16 (memory).
  // then address lo/hi, data lo/hi (unused with DATA_SEL 3) and ctxid.
  words_.push_back(header(kReleaseMem, 7));
  words_.push_back(kEventCacheFlushAndInvTs | kEventIndexEndOfPipe << 8);
  words_.push_back(kDataSelGpuClock << 29);
  words_.push_back(static_cast<uint32_t>(address));
  words_.push_back(static_cast<uint32_t>(address >> 32));
  words_.insert(words_.end(), {0u, 0u, 0u});
}

void CommandBuffer::nop(uint32_t payload) {
  words_.push_back(header(kNop, payload));
  words_.insert(words_.end(), payload, 0u);
}

void CommandBuffer::pad_to(uint32_t dwords) {
  if (dwords == 0 || (dwords & (dwords - 1)) != 0)
    throw Pm4Error("PM4: padding multiple " + std::to_string(dwords) + " is not a power of two");
  while (words_.size() % dwords != 0) words_.push_back(kNopPad);
}

uint32_t rsrc2_with_lds(uint32_t rsrc2, uint32_t lds_bytes) {
  const uint32_t blocks = (lds_bytes + 511) / 512;
  if (blocks > 0x1FF)
    throw Pm4Error("PM4: " + std::to_string(lds_bytes) + " bytes of LDS do not fit LDS_SIZE");
  return (rsrc2 & ~(0x1FFu << 15)) | blocks << 15;
}

uint32_t dispatch_initiator(Generation generation, bool wave32) {
  uint32_t v = kInitiatorComputeShaderEn | kInitiatorForceStartAt000 | kInitiatorOrderMode;
  if (wave32) {
    if (generation == Generation::Gfx9) throw Pm4Error("PM4: gfx9 has no wave32");
    v |= kInitiatorCsW32En;
  }
  return v;
}

void emit_dispatch(CommandBuffer& cb, const DispatchSetup& s) {
  if (s.code_address % 256 != 0) throw Pm4Error("PM4: kernel code address is not 256-byte aligned");
  if (s.user_data.size() > kUserDataCount) throw Pm4Error("PM4: more than 16 user SGPRs");
  const uint32_t pgm[2] = {static_cast<uint32_t>(s.code_address >> 8),
                           static_cast<uint32_t>(s.code_address >> 40)};
  cb.set_sh_regs(Reg::ComputePgmLo, pgm);
  const uint32_t rsrc[2] = {s.rsrc1, rsrc2_with_lds(s.rsrc2, s.lds_bytes)};
  cb.set_sh_regs(Reg::ComputePgmRsrc1, rsrc);
  if (s.write_rsrc3) cb.set_sh_reg(Reg::ComputePgmRsrc3, s.rsrc3);
  // No scratch: kernels that need it are refused before this point.
  cb.set_sh_reg(Reg::ComputeTmpringSize, 0);
  const uint32_t zero3[3] = {0, 0, 0};
  cb.set_sh_regs(Reg::ComputeRestartX, zero3);
  if (!s.user_data.empty()) cb.set_sh_regs(Reg::ComputeUserData0, s.user_data);
  cb.set_sh_reg(Reg::ComputeResourceLimits, 0);
  cb.set_sh_regs(Reg::ComputeStartX, zero3);
  cb.set_sh_regs(Reg::ComputeNumThreadX, s.group_size);
  cb.dispatch_direct(s.groups[0], s.groups[1], s.groups[2],
                     dispatch_initiator(cb.generation(), s.wave32));
}

}  // namespace sparkle::amdgpu::pm4
