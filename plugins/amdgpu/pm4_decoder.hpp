// An in-tree PM4 decoder for the streams this backend builds. It is strict:
// any packet this backend does not emit, or emits differently, is an error.
// Tests run every command stream through it (and the fake libdrm decodes
// every submitted IB), so a malformed stream fails before it could reach a
// GPU. Checks:
//  - every header is type 3 (bits 31:30), with the shader-type bit or the
//    header-only NOP form;
//  - counts are consistent: each packet fits the stream, and known opcodes
//    have their exact payload length;
//  - SET_SH_REG offsets lie inside the SH window and name registers in the
//    generation's table;
//  - the stream ends on a packet boundary and is padded to a multiple;
//  - a DISPATCH_DIRECT comes after the program, resources and group size
//    were set.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "gfx_target.hpp"
#include "pm4.hpp"

namespace sparkle::amdgpu::pm4 {

struct Packet {
  size_t offset = 0;  // dword index of the header
  uint32_t opcode = 0;
  std::vector<uint32_t> payload;  // empty for a header-only NOP
};

struct DecodedDispatch {
  size_t packet = 0;  // index into DecodedStream::packets
  uint32_t groups[3] = {0, 0, 0};
  uint32_t initiator = 0;
  std::map<uint32_t, uint32_t> registers;  // SH register state when it ran
};

struct DecodedTimestamp {
  size_t packet = 0;
  uint64_t address = 0;
};

struct DecodedStream {
  std::vector<Packet> packets;
  std::vector<DecodedDispatch> dispatches;
  std::vector<DecodedTimestamp> timestamps;
  std::vector<uint32_t> events;            // EVENT_WRITE event types, in order
  size_t acquires = 0;                     // ACQUIRE_MEM packets
  std::map<uint32_t, uint32_t> registers;  // final SH register state
  size_t padding = 0;                      // trailing header-only NOPs
};

// Decodes and checks; throws Pm4Error naming the dword offset of the fault.
DecodedStream decode(std::span<const uint32_t> words, Generation generation,
                     uint32_t pad_multiple = 8);

// A readable listing ("0000: SET_SH_REG COMPUTE_PGM_LO = 0x..."), for logs
// and test failures.
std::string disassemble(std::span<const uint32_t> words, Generation generation);

}  // namespace sparkle::amdgpu::pm4
