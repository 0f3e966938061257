// The PM4 encoder against golden dwords derived by hand from the cited
// definitions (Linux nvd.h / soc15d.h PACKET3 and field macros, libdrm's
// compute test, tinygrad's generated PM4 tables), the register tables
// against the Linux register headers' offsets, and the in-tree decoder both
// on streams the builder makes and on malformed ones it must refuse.
#include "pm4.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "pm4_decoder.hpp"
#include "registers.hpp"

using namespace sparkle::amdgpu;
using namespace sparkle::amdgpu::pm4;

namespace {

// PACKET3(op, n) | shader type compute, spelled out as nvd.h defines it:
// (PACKET_TYPE3 << 30) | ((op & 0xFF) << 8) | ((n & 0x3FFF) << 16), + 1 << 1.
constexpr uint32_t packet3_compute(uint32_t op, uint32_t n) {
  return (3u << 30) | ((op & 0xFFu) << 8) | ((n & 0x3FFFu) << 16) | (1u << 1);
}

const Generation kAll[] = {Generation::Gfx9, Generation::Gfx10_3, Generation::Gfx11};

uint32_t addr(Generation g, Reg r) { return find_register(g, r)->address; }

std::string must_fail(const std::vector<uint32_t>& words, Generation g = Generation::Gfx11) {
  try {
    decode(words, g);
  } catch (const Pm4Error& e) {
    return e.what();
  }
  return "<decoded>";
}

DispatchSetup sample_setup() {
  DispatchSetup s;
  s.code_address = 0x0000'7F12'3456'7800ull;
  s.rsrc1 = 0x60AF0080;  // research notes: vadd on gfx1100
  s.rsrc2 = 0x9E;
  s.rsrc3 = 0;
  s.lds_bytes = 2048;
  s.write_rsrc3 = true;
  s.wave32 = true;
  s.user_data = {0x89ABC000, 0x7F01};
  s.group_size[0] = 64;
  s.groups[0] = 100;
  s.groups[1] = 3;
  s.groups[2] = 2;
  return s;
}

}  // namespace

TEST_CASE("packet headers are PACKET3_COMPUTE(op, payload - 1)") {
  CHECK(header(kSetShReg, 3) == packet3_compute(0x76, 2));
  CHECK(header(kSetShReg, 3) ==
        0xC0027602u);  // libdrm: PACKET3_COMPUTE(SET_SH_REG, 2) for PGM_LO/HI
  CHECK(header(kDispatchDirect, 4) == 0xC0031502u);
  CHECK(header(kEventWrite, 1) == 0xC0004602u);
  CHECK(header(kAcquireMem, 7) == 0xC0065802u);
  CHECK(header(kReleaseMem, 7) == 0xC0064902u);
  CHECK(header(kNop, 1) == 0xC0001002u);
  CHECK(kNopPad == 0xFFFF1000u);  // libdrm's pad: PACKET3(NOP, 0x3fff) header only
  CHECK_THROWS_AS(header(kNop, 0), Pm4Error);
  CHECK_THROWS_AS(header(kNop, 0x4000), Pm4Error);
}

TEST_CASE("register tables: SH offsets from the cited headers, each entry citing its file") {
  for (Generation g : kAll) {
    CAPTURE(generation_name(g));
    const auto table = register_table(g);
    REQUIRE(table.size() == 24);
    for (const auto& r : table) {
      CAPTURE(r.name);
      CHECK(r.address >= kShRegStart);
      CHECK(r.address < kShRegEnd);
      CHECK(std::string(r.source).find("_offset.h") != std::string::npos);
      CHECK(std::string(r.source).find(std::string(r.name)) != std::string::npos);
      for (const auto& o : table)
        if (&o != &r) CHECK(o.address != r.address);
    }
    // SET_SH_REG offsets libdrm's compute tests write (shader_test_util.c).
    CHECK(addr(g, Reg::ComputeStartX) - kShRegStart == 0x204);
    CHECK(addr(g, Reg::ComputePgmLo) - kShRegStart == 0x20C);  // not what the first design had
    CHECK(addr(g, Reg::ComputeResourceLimits) - kShRegStart == 0x215);
    CHECK(addr(g, Reg::ComputeStaticThreadMgmtSe0) - kShRegStart == 0x216);
    CHECK(addr(g, Reg::ComputeTmpringSize) - kShRegStart == 0x218);
    CHECK(addr(g, Reg::ComputeStaticThreadMgmtSe2) - kShRegStart == 0x219);
    CHECK(addr(g, Reg::ComputeUserData0) - kShRegStart == 0x240);
    CHECK(addr(g, Reg::ComputeNumThreadX) == addr(g, Reg::ComputeStartX) + 3);
    CHECK(addr(g, Reg::ComputePgmRsrc2) == addr(g, Reg::ComputePgmRsrc1) + 1);
    CHECK(std::string(register_name(g, addr(g, Reg::ComputeUserData0) + 15)) ==
          "COMPUTE_USER_DATA_15");
    CHECK(register_name(g, addr(g, Reg::ComputeUserData0) + 16) == nullptr);
  }
  // COMPUTE_PGM_RSRC3: gc_9_4_2 0x0e2d + 0x2000; gc_10_3_0 / gc_11_0_0
  // 0x1bc8 + 0x1260 (libdrm's gfx10 test writes SH offset 0x228).
  CHECK(addr(Generation::Gfx9, Reg::ComputePgmRsrc3) == 0x2E2D);
  CHECK(addr(Generation::Gfx10_3, Reg::ComputePgmRsrc3) - kShRegStart == 0x228);
  CHECK(addr(Generation::Gfx11, Reg::ComputePgmRsrc3) - kShRegStart == 0x228);
}

TEST_CASE("golden dwords: a gfx11 dispatch between cache maintenance and timestamps") {
  CommandBuffer cb(Generation::Gfx11);
  cb.event_write(kEventCsPartialFlush, kEventIndexPartialFlush);
  cb.acquire_mem_all();
  cb.release_mem_timestamp(0x1'0000'2000ull);
  emit_dispatch(cb, sample_setup());
  cb.pad_to(8);
  const uint32_t lo = static_cast<uint32_t>(0x0000'7F12'3456'7800ull >> 8);
  const uint32_t hi = static_cast<uint32_t>(0x0000'7F12'3456'7800ull >> 40);
  const std::vector<uint32_t> want = {
      // EVENT_WRITE: EVENT_TYPE(CS_PARTIAL_FLUSH = 7) | EVENT_INDEX(4)
      0xC0004602, 0x00000407,
      // ACQUIRE_MEM (gfx10+): 0, size 0xffffffff / 0xffffff, base 0/0,
      // poll 0xA, GCR_CNTL GLI_INV(1) GLM_WB GLM_INV GLK_WB GLK_INV GLV_INV
      // GL1_INV GL2_INV GL2_WB = bits 0,4,5,6,7,8,9,14,15
      0xC0065802, 0x00000000, 0xFFFFFFFF, 0x00FFFFFF, 0x00000000, 0x00000000, 0x0000000A,
      0x0000C3F1,
      // RELEASE_MEM: EVENT_TYPE(CACHE_FLUSH_AND_INV_TS_EVENT = 0x14) |
      // EVENT_INDEX(end of pipe = 5); DATA_SEL(3) << 29; address; data; ctxid
      0xC0064902, 0x00000514, 0x60000000, 0x00002000, 0x00000001, 0, 0, 0,
      // COMPUTE_PGM_LO/HI (SH 0x20C) = address >> 8, >> 40
      0xC0027602, 0x0000020C, lo, hi,
      // COMPUTE_PGM_RSRC1/2 (0x212): RSRC2 | LDS_SIZE(2048 / 512 = 4) << 15
      0xC0027602, 0x00000212, 0x60AF0080, 0x0000009E | (4u << 15),
      // COMPUTE_PGM_RSRC3 (0x228)
      0xC0017602, 0x00000228, 0x00000000,
      // COMPUTE_TMPRING_SIZE (0x218) = 0
      0xC0017602, 0x00000218, 0x00000000,
      // COMPUTE_RESTART_X/Y/Z (0x21B) = 0
      0xC0037602, 0x0000021B, 0, 0, 0,
      // COMPUTE_USER_DATA_0/1 (0x240) = kernarg pointer
      0xC0027602, 0x00000240, 0x89ABC000, 0x00007F01,
      // COMPUTE_RESOURCE_LIMITS (0x215) = 0
      0xC0017602, 0x00000215, 0x00000000,
      // COMPUTE_START_X/Y/Z (0x204) = 0
      0xC0037602, 0x00000204, 0, 0, 0,
      // COMPUTE_NUM_THREAD_X/Y/Z (0x207) = 64, 1, 1
      0xC0037602, 0x00000207, 64, 1, 1,
      // DISPATCH_DIRECT 100 x 3 x 2, initiator COMPUTE_SHADER_EN |
      // FORCE_START_AT_000 | ORDER_MODE (libdrm's 0x45) | CS_W32_EN (1 << 15)
      0xC0031502, 100, 3, 2, 0x00008045,
      // 59 dwords so far: padding to 64
      0xFFFF1000, 0xFFFF1000, 0xFFFF1000, 0xFFFF1000, 0xFFFF1000};
  CHECK(cb.words() == want);
  CHECK(want.size() % 8 == 0);
}

TEST_CASE("golden dwords: gfx9 forms of ACQUIRE_MEM and the dispatch") {
  CommandBuffer cb(Generation::Gfx9);
  cb.acquire_mem_all();
  // CP_COHER_CNTL (soc15d.h): SH_ICACHE 29, SH_KCACHE 27, TC 23, TCL1 22, TC_WB 18.
  const std::vector<uint32_t> acquire = {0xC0055802, 0x28C40000, 0xFFFFFFFF, 0x00FFFFFF,
                                         0,          0,          0x0A};
  CHECK(cb.words() == acquire);
  auto s = sample_setup();
  s.wave32 = false;
  s.write_rsrc3 = true;
  s.rsrc3 = 0x4;  // gfx90a ACCUM_OFFSET
  CommandBuffer d(Generation::Gfx9);
  emit_dispatch(d, s);
  const auto decoded = decode(d.words(), Generation::Gfx9, 0);
  REQUIRE(decoded.dispatches.size() == 1);
  CHECK(decoded.dispatches[0].initiator == 0x45);  // no CS_W32_EN on gfx9
  CHECK(decoded.registers.at(0x2E2D) == 0x4);      // RSRC3 at its GC 9.4.2 address
  s.wave32 = true;
  CommandBuffer w(Generation::Gfx9);
  CHECK_THROWS_AS(emit_dispatch(w, s), Pm4Error);
}

TEST_CASE("a dispatch decodes back to the registers and values it was built from") {
  for (Generation g : kAll) {
    CAPTURE(generation_name(g));
    DispatchSetup s = sample_setup();
    s.wave32 = g != Generation::Gfx9;
    s.user_data = {0, 0, 0, 0, 0xDEAD0000, 0x7F00, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x22};
    s.group_size[0] = 64;
    s.group_size[1] = 2;
    s.group_size[2] = 3;
    CommandBuffer cb(g);
    cb.event_write(kEventCsPartialFlush, kEventIndexPartialFlush);
    cb.acquire_mem_all();
    emit_dispatch(cb, s);
    cb.release_mem_timestamp(0x4000);
    cb.pad_to(8);
    const DecodedStream d = decode(cb.words(), g);
    REQUIRE(d.dispatches.size() == 1);
    const auto& r = d.dispatches[0].registers;
    CHECK(r.at(addr(g, Reg::ComputePgmLo)) == static_cast<uint32_t>(s.code_address >> 8));
    CHECK(r.at(addr(g, Reg::ComputePgmHi)) == static_cast<uint32_t>(s.code_address >> 40));
    const uint64_t pgm = (uint64_t{r.at(addr(g, Reg::ComputePgmLo))} |
                          uint64_t{r.at(addr(g, Reg::ComputePgmHi))} << 32)
                         << 8;
    CHECK(pgm == s.code_address);
    CHECK(r.at(addr(g, Reg::ComputePgmRsrc1)) == s.rsrc1);
    CHECK(r.at(addr(g, Reg::ComputePgmRsrc2)) == rsrc2_with_lds(s.rsrc2, s.lds_bytes));
    CHECK(((r.at(addr(g, Reg::ComputePgmRsrc2)) >> 15) & 0x1FF) == 4);
    CHECK(r.at(addr(g, Reg::ComputePgmRsrc3)) == s.rsrc3);
    for (size_t i = 0; i < s.user_data.size(); ++i)
      CHECK(r.at(addr(g, Reg::ComputeUserData0) + static_cast<uint32_t>(i)) == s.user_data[i]);
    for (int i = 0; i < 3; ++i) {
      CHECK(r.at(addr(g, Reg::ComputeNumThreadX) + static_cast<uint32_t>(i)) == s.group_size[i]);
      CHECK(r.at(addr(g, Reg::ComputeStartX) + static_cast<uint32_t>(i)) == 0);
      CHECK(d.dispatches[0].groups[i] == s.groups[i]);
    }
    CHECK(d.dispatches[0].initiator == dispatch_initiator(g, s.wave32));
    CHECK(d.acquires == 1);
    CHECK(d.events == std::vector<uint32_t>{kEventCsPartialFlush});
    REQUIRE(d.timestamps.size() == 1);
    CHECK(d.timestamps[0].address == 0x4000);
    CHECK(d.padding == (8 - (cb.size() - d.padding) % 8) % 8);
    // Every header in the stream is type 3.
    for (const auto& p : d.packets) CHECK((cb.words()[p.offset] >> 30) == 3);
  }
}

TEST_CASE("the decoder refuses malformed streams, naming the dword") {
  const uint32_t pad = kNopPad;
  // A type-0 header.
  CHECK(must_fail({0x00001234, pad, pad, pad, pad, pad, pad, pad}).find("dword 0: packet type 0") !=
        std::string::npos);
  // A packet whose count runs past the end.
  CHECK(must_fail({header(kSetShReg, 9), 0x20C, 1, 2, 3, 4, 5, 6}).find("runs past the end") !=
        std::string::npos);
  // SET_SH_REG leaving the SH window.
  CHECK(must_fail({header(kSetShReg, 3), 0x3FF, 1, 2, pad, pad, pad, pad})
            .find("leaves the SH window") != std::string::npos);
  // A register the table does not list (COMPUTE_VMID, 0x2E14).
  CHECK(must_fail({header(kSetShReg, 2), 0x214, 1, pad, pad, pad, pad, pad}).find("0x2e14") !=
        std::string::npos);
  // Not padded.
  CHECK(must_fail({header(kSetShReg, 2), 0x215, 0}).find("not padded to a multiple of 8") !=
        std::string::npos);
  // A dispatch before the program address.
  CHECK(must_fail({header(kDispatchDirect, 4), 1, 1, 1, 0x45, pad, pad, pad})
            .find("DISPATCH_DIRECT before COMPUTE_PGM_LO") != std::string::npos);
  // Wrong payload for a known opcode.
  CHECK(must_fail({header(kDispatchDirect, 3), 1, 1, 1, pad, pad, pad, pad})
            .find("DISPATCH_DIRECT has 3 payload dwords, expected 4") != std::string::npos);
  // An opcode this backend never emits (WRITE_DATA 0x37).
  CHECK(must_fail({header(0x37, 3), 0, 0, 0, pad, pad, pad, pad}).find("opcode 0x37") !=
        std::string::npos);
  // No compute shader-type bit.
  CHECK(must_fail({header(kSetShReg, 2) & ~2u, 0x215, 0, pad, pad, pad, pad, pad})
            .find("shader-type bit") != std::string::npos);
  // A packet after the padding started.
  CHECK(must_fail({pad, header(kSetShReg, 2), 0x215, 0, pad, pad, pad, pad})
            .find("after the trailing padding") != std::string::npos);
  // gfx9's ACQUIRE_MEM is one dword shorter than gfx10+'s.
  CommandBuffer cb(Generation::Gfx11);
  cb.acquire_mem_all();
  cb.pad_to(8);
  CHECK(must_fail(cb.words(), Generation::Gfx9)
            .find("ACQUIRE_MEM has 7 payload dwords, expected 6") != std::string::npos);
}

TEST_CASE("the builder refuses what the hardware cannot take") {
  CommandBuffer cb(Generation::Gfx11);
  const uint32_t v[4] = {1, 2, 3, 4};
  CHECK_THROWS_AS(cb.set_sh_regs(0x2FFE, v), Pm4Error);
  CHECK_THROWS_AS(cb.set_sh_regs(0x2000, v), Pm4Error);
  std::vector<uint32_t> seventeen(17, 0);
  CHECK_THROWS_AS(cb.set_sh_regs(Reg::ComputeUserData0, seventeen), Pm4Error);
  CHECK_THROWS_AS(cb.dispatch_direct(0, 1, 1, 0x45), Pm4Error);
  CHECK_THROWS_AS(rsrc2_with_lds(0, 512 * 0x200), Pm4Error);
  CHECK(rsrc2_with_lds(0x9E, 1) == (0x9Eu | 1u << 15));
  auto s = sample_setup();
  s.code_address += 4;
  CHECK_THROWS_AS(emit_dispatch(cb, s), Pm4Error);
  CHECK_THROWS_AS(cb.pad_to(6), Pm4Error);
}
