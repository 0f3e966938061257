// The strict PM4 decoder (see pm4_decoder.hpp).
#include "pm4_decoder.hpp"

#include <cstdio>

#include "registers.hpp"

namespace sparkle::amdgpu::pm4 {
namespace {

std::string hex(uint64_t v) {
  char out[24];
  std::snprintf(out, sizeof out, "0x%llx", static_cast<unsigned long long>(v));
  return out;
}

[[noreturn]] void fail(size_t at, const std::string& what) {
  throw Pm4Error("PM4 stream, dword " + std::to_string(at) + ": " + what);
}

const char* opcode_name(uint32_t op) {
  switch (op) {
    case kNop:
      return "NOP";
    case kDispatchDirect:
      return "DISPATCH_DIRECT";
    case kEventWrite:
      return "EVENT_WRITE";
    case kReleaseMem:
      return "RELEASE_MEM";
    case kAcquireMem:
      return "ACQUIRE_MEM";
    case kSetShReg:
      return "SET_SH_REG";
    default:
      return nullptr;
  }
}

uint32_t address_of(Generation g, Reg reg) { return find_register(g, reg)->address; }

}  // namespace

DecodedStream decode(std::span<const uint32_t> words, Generation g, uint32_t pad_multiple) {
  DecodedStream out;
  size_t at = 0;
  bool in_padding = false;
  while (at < words.size()) {
    const uint32_t h = words[at];
    const uint32_t type = h >> 30;
    if (type != 3)
      fail(at, "packet type " + std::to_string(type) + "; only type-3 packets are used");
    Packet p;
    p.offset = at;
    p.opcode = (h >> 8) & 0xFF;
    const uint32_t count = (h >> 16) & 0x3FFF;
    if (p.opcode == kNop && count == 0x3FFF) {
      if (h != kNopPad) fail(at, "header-only NOP " + hex(h) + " is not " + hex(kNopPad));
      out.padding++;
      in_padding = true;
      out.packets.push_back(std::move(p));
      at += 1;
      continue;
    }
    if (in_padding) fail(at, "packet after the trailing padding");
    if ((h & 0x2u) == 0) fail(at, "header " + hex(h) + " lacks the compute shader-type bit");
    if ((h & 0x1u) != 0) fail(at, "header " + hex(h) + " sets the predicate bit");
    if ((h & 0xFCu) != 0)  // bits 7:2 (RESET_FILTER_CAM and reserved)
      fail(at, "header " + hex(h) + " sets reserved bits");
    const size_t payload = size_t{count} + 1;
    if (payload > words.size() - at - 1)
      fail(at, std::string(opcode_name(p.opcode) ? opcode_name(p.opcode) : "packet") + " with " +
                   std::to_string(payload) + " payload dwords runs past the end of the " +
                   std::to_string(words.size()) + "-dword stream");
    p.payload.assign(words.begin() + static_cast<std::ptrdiff_t>(at + 1),
                     words.begin() + static_cast<std::ptrdiff_t>(at + 1 + payload));
    const auto& d = p.payload;
    auto expect = [&](size_t n) {
      if (payload != n)
        fail(at, std::string(opcode_name(p.opcode)) + " has " + std::to_string(payload) +
                     " payload dwords, expected " + std::to_string(n));
    };
    switch (p.opcode) {
      case kNop:
        break;
      case kSetShReg: {
        if (payload < 2) fail(at, "SET_SH_REG without a value");
        if ((d[0] & ~0xFFFFu) != 0)
          fail(at, "SET_SH_REG offset dword " + hex(d[0]) + " sets index bits");
        const uint32_t first = kShRegStart + d[0];
        const size_t n = payload - 1;
        if (first + n > kShRegEnd)
          fail(at, "SET_SH_REG offset " + hex(d[0]) + " + " + std::to_string(n) +
                       " registers leaves the SH window (offsets 0..0x3ff)");
        for (size_t i = 0; i < n; ++i) {
          const uint32_t reg = first + static_cast<uint32_t>(i);
          if (register_name(g, reg) == nullptr)
            fail(at, "SET_SH_REG writes " + hex(reg) + ", which the " + generation_name(g) +
                         " table does not list");
          out.registers[reg] = d[1 + i];
        }
        break;
      }
      case kDispatchDirect: {
        expect(4);
        DecodedDispatch dd;
        dd.packet = out.packets.size();
        for (int i = 0; i < 3; ++i) {
          if (d[static_cast<size_t>(i)] == 0) fail(at, "DISPATCH_DIRECT with an empty grid");
          dd.groups[i] = d[static_cast<size_t>(i)];
        }
        dd.initiator = d[3];
        if ((dd.initiator & kInitiatorComputeShaderEn) == 0)
          fail(at, "DISPATCH_DIRECT initiator without COMPUTE_SHADER_EN");
        if (g == Generation::Gfx9 && (dd.initiator & kInitiatorCsW32En) != 0)
          fail(at, "DISPATCH_DIRECT asks for wave32 on gfx9");
        for (Reg r :
             {Reg::ComputePgmLo, Reg::ComputePgmHi, Reg::ComputePgmRsrc1, Reg::ComputePgmRsrc2,
              Reg::ComputeNumThreadX, Reg::ComputeNumThreadY, Reg::ComputeNumThreadZ}) {
          const uint32_t a = address_of(g, r);
          if (out.registers.count(a) == 0)
            fail(at, std::string("DISPATCH_DIRECT before ") + register_name(g, a) + " was set");
        }
        for (Reg r : {Reg::ComputeNumThreadX, Reg::ComputeNumThreadY, Reg::ComputeNumThreadZ}) {
          const uint32_t v = out.registers[address_of(g, r)] & 0xFFFF;
          if (v == 0 || v > 1024)
            fail(at, "DISPATCH_DIRECT with a work-group dimension of " + std::to_string(v));
        }
        dd.registers = out.registers;
        out.dispatches.push_back(std::move(dd));
        break;
      }
      case kEventWrite: {
        expect(1);
        const uint32_t type_ = d[0] & 0x3F, index = (d[0] >> 8) & 0xF;
        if ((d[0] & ~0xF3Fu) != 0) fail(at, "EVENT_WRITE sets unused bits: " + hex(d[0]));
        if (type_ == kEventCsPartialFlush && index != kEventIndexPartialFlush)
          fail(at, "CS_PARTIAL_FLUSH with event index " + std::to_string(index) + ", not 4");
        out.events.push_back(type_);
        break;
      }
      case kAcquireMem:
        expect(g == Generation::Gfx9 ? 6 : 7);
        if (d[1] != 0xFFFFFFFFu) fail(at, "ACQUIRE_MEM over less than all memory");
        out.acquires++;
        break;
      case kReleaseMem: {
        expect(7);
        const uint32_t event = d[0] & 0x3F, index = (d[0] >> 8) & 0xF;
        if (index != kEventIndexEndOfPipe) fail(at, "RELEASE_MEM not at end of pipe");
        if (event != kEventCacheFlushAndInvTs)
          fail(at, "RELEASE_MEM with event " + std::to_string(event));
        const uint32_t data_sel = d[1] >> 29;
        const uint64_t address = d[2] | uint64_t{d[3]} << 32;
        if (data_sel == kDataSelGpuClock) {
          if (address % 8 != 0) fail(at, "RELEASE_MEM timestamp to an unaligned address");
          out.timestamps.push_back({out.packets.size(), address});
        } else if (data_sel != 0) {
          fail(at, "RELEASE_MEM with DATA_SEL " + std::to_string(data_sel));
        }
        break;
      }
      default:
        fail(at, "opcode " + hex(p.opcode) + " is not one this backend emits");
    }
    at += 1 + payload;
    out.packets.push_back(std::move(p));
  }
  if (pad_multiple != 0 && words.size() % pad_multiple != 0)
    fail(words.size(), "stream of " + std::to_string(words.size()) +
                           " dwords is not padded to a multiple of " +
                           std::to_string(pad_multiple));
  return out;
}

std::string disassemble(std::span<const uint32_t> words, Generation g) {
  std::string out;
  size_t at = 0;
  char line[160];
  while (at < words.size()) {
    const uint32_t h = words[at];
    const uint32_t op = (h >> 8) & 0xFF, count = (h >> 16) & 0x3FFF;
    const char* name = opcode_name(op);
    if ((h >> 30) != 3) {
      std::snprintf(line, sizeof line, "%04zu: %08x  (not type 3)\n", at, h);
      out += line;
      at++;
      continue;
    }
    if (op == kNop && count == 0x3FFF) {
      std::snprintf(line, sizeof line, "%04zu: NOP (pad)\n", at);
      out += line;
      at++;
      continue;
    }
    const size_t payload = size_t{count} + 1;
    std::snprintf(line, sizeof line, "%04zu: %s (%zu dwords)\n", at, name ? name : "?", payload);
    out += line;
    if (op == kSetShReg && at + 1 < words.size()) {
      const uint32_t first = kShRegStart + (words[at + 1] & 0xFFFF);
      for (size_t i = 1; i < payload && at + 1 + i < words.size(); ++i) {
        const char* reg = register_name(g, first + static_cast<uint32_t>(i - 1));
        std::snprintf(line, sizeof line, "        %s = 0x%08x\n", reg ? reg : "?",
                      words[at + 1 + i]);
        out += line;
      }
    } else {
      for (size_t i = 0; i < payload && at + 1 + i < words.size(); ++i) {
        std::snprintf(line, sizeof line, "        [%zu] 0x%08x\n", i, words[at + 1 + i]);
        out += line;
      }
    }
    at += 1 + payload;
  }
  return out;
}

}  // namespace sparkle::amdgpu::pm4
