// The code object loader against the compiler's own account of the same
// objects, for every kernel and every configured target:
//  - the kernel descriptor parser against the .amdhsa_* directives of
//    clang-16 -S (every directive is compared or explicitly accounted for);
//  - the metadata reader against llvm-readelf-16 --notes;
//  - the user-SGPR layout against the registers the disassembly
//    (llvm-objdump-16 -d) reads before writing them, found by a liveness
//    analysis over the kernel's control-flow graph.
// Plus: the embedded objects are the built files, and malformed objects are
// refused with the field at fault.
#include "code_object.hpp"

#include <doctest/doctest.h>
#include <elf.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "program_cache.hpp"

using namespace sparkle::amdgpu;

namespace {

std::vector<std::string> targets() {
  std::vector<std::string> out;
  std::stringstream ss(SPARKLE_AMDGPU_TEST_TARGETS);
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) out.push_back(t);
  return out;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot read " << path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

std::string run(const std::string& cmd) {
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  REQUIRE_MESSAGE(p != nullptr, "cannot run " << cmd);
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p.get())) > 0) out.append(buf.data(), n);
  return out;
}

std::string hsaco(const std::string& t) {
  return std::string(SPARKLE_AMDGPU_OBJECT_DIR) + "/kernels-" + t + ".hsaco";
}

// .amdhsa_kernel NAME ... .end_amdhsa_kernel blocks of a clang -S file.
std::map<std::string, std::map<std::string, int64_t>> amdhsa_directives(const std::string& path) {
  std::ifstream f(path);
  REQUIRE_MESSAGE(f.good(), "cannot read " << path);
  std::map<std::string, std::map<std::string, int64_t>> out;
  std::string line, current;
  const std::regex begin(R"(^\s*\.amdhsa_kernel\s+(\S+)\s*$)");
  const std::regex entry(R"(^\s*\.amdhsa_(\w+)\s+(-?\d+)\s*$)");
  std::smatch m;
  while (std::getline(f, line)) {
    if (std::regex_match(line, m, begin)) {
      current = m[1];
      out[current];
    } else if (line.find(".end_amdhsa_kernel") != std::string::npos) {
      current.clear();
    } else if (!current.empty() && std::regex_match(line, m, entry)) {
      out[current][m[1]] = std::stoll(m[2]);
    }
  }
  return out;
}

uint32_t bits(uint32_t v, int lo, int hi) { return (v >> lo) & ((1u << (hi - lo + 1)) - 1); }

// One kernel of llvm-readelf --notes' YAML.
struct NoteKernel {
  std::map<std::string, std::string> fields;
  std::vector<std::map<std::string, std::string>> args;
};

std::string yaml_scalar(std::string v) {
  if (v.rfind("!str ", 0) == 0) v = v.substr(5);
  if (v.size() >= 2 && v.front() == '\'' && v.back() == '\'') v = v.substr(1, v.size() - 2);
  return v;
}

std::map<std::string, NoteKernel> readelf_notes(const std::string& file, std::string* target) {
  const std::string text = run(std::string(SPARKLE_LLVM_READELF) + " --notes " + file);
  std::map<std::string, NoteKernel> out;
  std::stringstream ss(text);
  std::string line;
  bool in_kernels = false;
  NoteKernel cur;
  bool have = false;
  enum { None, Args, Other } list = None;
  auto flush = [&] {
    if (have) out[cur.fields[".name"]] = cur;
    cur = NoteKernel{};
    have = false;
  };
  const std::regex kernel_start(R"(^  - (\.\w+):\s*(.*)$)");
  const std::regex kernel_field(R"(^    (\.\w+):\s*(.*)$)");
  const std::regex arg_start(R"(^      - (\.\w+):\s*(.*)$)");
  const std::regex arg_field(R"(^        (\.\w+):\s*(.*)$)");
  const std::regex top(R"(^(amdhsa\.\w+):\s*(.*)$)");
  std::smatch m;
  while (std::getline(ss, line)) {
    if (std::regex_match(line, m, top)) {
      if (m[1] == "amdhsa.kernels") {
        in_kernels = true;
      } else {
        flush();
        in_kernels = false;
        if (m[1] == "amdhsa.target") *target = yaml_scalar(m[2]);
      }
      continue;
    }
    if (!in_kernels) continue;
    if (std::regex_match(line, m, kernel_start)) {
      flush();
      have = true;
      list = m[1] == ".args" ? Args : None;
      if (list != Args) cur.fields[m[1]] = yaml_scalar(m[2]);
    } else if (std::regex_match(line, m, kernel_field)) {
      list = m[1] == ".args" ? Args : (m[2].str().empty() ? Other : None);
      if (list == None) cur.fields[m[1]] = yaml_scalar(m[2]);
    } else if (list == Args && std::regex_match(line, m, arg_start)) {
      cur.args.push_back({{m[1], yaml_scalar(m[2])}});
    } else if (list == Args && std::regex_match(line, m, arg_field)) {
      cur.args.back()[m[1]] = yaml_scalar(m[2]);
    }
  }
  flush();
  return out;
}

// ---- register liveness over the disassembly ----

struct Insn {
  uint64_t address = 0;
  std::string mnemonic;
  std::set<int> uses, defs;
  int64_t target = -1;  // branch target address
  std::string text;
};

std::set<int> sgprs_of(const std::string& operand) {
  std::smatch m;
  static const std::regex one(R"(^s(\d+)$)"), range(R"(^s\[(\d+):(\d+)\]$)");
  std::set<int> out;
  if (std::regex_match(operand, m, one)) {
    out.insert(std::stoi(m[1]));
  } else if (std::regex_match(operand, m, range)) {
    for (int r = std::stoi(m[1]); r <= std::stoi(m[2]); ++r) out.insert(r);
  }
  return out;
}

// How many leading operands an instruction writes. SALU/SMEM/VALU write
// their first operand; these write none; VOP3b carry-outs write two.
size_t destinations(const std::string& mn) {
  static const std::regex none(
      R"(^(s_cmp|s_bitcmp|s_cbranch|s_branch|s_waitcnt|s_nop|s_endpgm|s_delay_alu|s_clause|s_sendmsg|s_barrier|s_setprio|s_dcache|s_code_end|s_store|s_buffer_store|global_store|buffer_store|ds_write|ds_store|scratch_store|flat_store|v_cmpx_|s_inst_prefetch|s_set_inst_prefetch|s_trap|s_setreg|s_setpc|s_icache|s_sleep|s_ttrace).*)");
  static const std::regex two(
      R"(^(v_add_co_u32|v_sub_co_u32|v_subrev_co_u32|v_addc_co_u32|v_subb_co_u32|v_subbrev_co_u32|v_add_co_ci_u32|v_sub_co_ci_u32|v_subrev_co_ci_u32|v_mad_u64_u32|v_mad_i64_i32|v_div_scale_f32|v_div_scale_f64).*)");
  if (std::regex_match(mn, none)) return 0;
  if (std::regex_match(mn, two)) return 2;
  return 1;
}

std::vector<Insn> disassemble(const std::string& file, const std::string& kernel) {
  const std::string text =
      run(std::string(SPARKLE_LLVM_OBJDUMP) + " -d --no-show-raw-insn " + file);
  std::vector<Insn> out;
  std::stringstream ss(text);
  std::string line;
  bool in = false;
  uint64_t base = 0;
  const std::regex func(R"(^([0-9a-f]+) <(.+)>:$)");
  const std::regex insn(R"(^\s+(\S.*?)\s*//\s*([0-9A-Fa-f]+):.*$)");
  const std::regex label("<" + kernel + R"(\+0x([0-9a-f]+)>)");
  std::smatch m;
  while (std::getline(ss, line)) {
    if (std::regex_match(line, m, func)) {
      in = m[2] == kernel;
      base = std::stoull(m[1], nullptr, 16);
      continue;
    }
    if (!in || !std::regex_match(line, m, insn)) continue;
    Insn i;
    i.text = m[1];
    i.address = std::stoull(m[2], nullptr, 16);
    std::smatch t;
    if (std::regex_search(line, t, label))
      i.target = static_cast<int64_t>(base + std::stoull(t[1], nullptr, 16));
    std::string body = i.text;
    const size_t sp = body.find_first_of(" \t");
    i.mnemonic = body.substr(0, sp);
    std::vector<std::string> ops;
    if (sp != std::string::npos) {
      std::stringstream os(body.substr(sp + 1));
      for (std::string o; std::getline(os, o, ',');) {
        o.erase(0, o.find_first_not_of(" \t"));
        o.erase(o.find_last_not_of(" \t") + 1);
        ops.push_back(o);
      }
    }
    const size_t nd = std::min(destinations(i.mnemonic), ops.size());
    for (size_t k = 0; k < ops.size(); ++k)
      for (int r : sgprs_of(ops[k])) (k < nd ? i.defs : i.uses).insert(r);
    out.push_back(std::move(i));
  }
  return out;
}

// SGPRs that may be read before being written on some path from the entry.
std::set<int> live_in(const std::vector<Insn>& code) {
  REQUIRE(!code.empty());
  auto ends_block = [](const Insn& i) {
    return i.mnemonic.rfind("s_cbranch", 0) == 0 || i.mnemonic == "s_branch" ||
           i.mnemonic == "s_endpgm" || i.mnemonic == "s_setpc_b64";
  };
  std::set<uint64_t> starts = {code.front().address};
  for (size_t i = 0; i < code.size(); ++i) {
    if (code[i].target >= 0) starts.insert(static_cast<uint64_t>(code[i].target));
    if (ends_block(code[i]) && i + 1 < code.size()) starts.insert(code[i + 1].address);
  }
  std::vector<std::vector<const Insn*>> blocks;
  for (const auto& i : code) {
    if (starts.count(i.address)) blocks.emplace_back();
    blocks.back().push_back(&i);
  }
  std::map<uint64_t, size_t> index;
  for (size_t b = 0; b < blocks.size(); ++b) index[blocks[b].front()->address] = b;
  std::vector<std::vector<size_t>> succ(blocks.size());
  std::vector<std::set<int>> use(blocks.size()), def(blocks.size()), in(blocks.size());
  for (size_t b = 0; b < blocks.size(); ++b) {
    const Insn& last = *blocks[b].back();
    if (last.target >= 0) {
      auto it = index.find(static_cast<uint64_t>(last.target));
      REQUIRE_MESSAGE(it != index.end(), "branch into the middle of nowhere: " << last.text);
      succ[b].push_back(it->second);
    }
    const bool falls = last.mnemonic != "s_branch" && last.mnemonic != "s_endpgm" &&
                       last.mnemonic != "s_setpc_b64" && last.mnemonic != "s_code_end";
    if (falls && b + 1 < blocks.size()) succ[b].push_back(b + 1);
    for (const Insn* i : blocks[b]) {
      for (int r : i->uses)
        if (!def[b].count(r)) use[b].insert(r);
      def[b].insert(i->defs.begin(), i->defs.end());
    }
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t b = blocks.size(); b-- > 0;) {
      std::set<int> next = use[b];
      for (size_t s : succ[b])
        for (int r : in[s])
          if (!def[b].count(r)) next.insert(r);
      if (next != in[b]) {
        in[b] = std::move(next);
        changed = true;
      }
    }
  }
  return in[0];
}

// The ELF file offset of a virtual address (through the PT_LOAD headers).
size_t file_offset(const std::vector<uint8_t>& elf, uint64_t vaddr) {
  Elf64_Ehdr eh;
  std::memcpy(&eh, elf.data(), sizeof eh);
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, elf.data() + eh.e_phoff + static_cast<size_t>(i) * sizeof ph, sizeof ph);
    if (ph.p_type == PT_LOAD && vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_filesz)
      return static_cast<size_t>(ph.p_offset + (vaddr - ph.p_vaddr));
  }
  FAIL("vaddr not in a PT_LOAD segment");
  return 0;
}

template <class Fn>
std::string load_error(Fn&& mutate, const std::string& target = "gfx1100") {
  auto elf = read_file(hsaco(target));
  mutate(elf);
  try {
    load_code_object(elf);
  } catch (const CodeObjectError& e) {
    return e.what();
  }
  return "<loaded>";
}

}  // namespace

TEST_CASE("every configured target has an embedded code object identical to the built one") {
  const auto want = targets();
  REQUIRE(want.size() == embedded_code_objects().size());
  for (const auto& t : want) {
    CAPTURE(t);
    const EmbeddedCodeObject* e = embedded_code_object(t);
    REQUIRE(e != nullptr);
    const auto file = read_file(hsaco(t));
    CHECK(std::vector<uint8_t>(e->data, e->data + e->size) == file);
    const CodeObject co = load_embedded(*e);
    CHECK(co.target == t);
    std::vector<std::string> names;
    for (const auto& k : co.kernels) names.push_back(k.name);
    std::sort(names.begin(), names.end());
    CHECK(names ==
          std::vector<std::string>{"conv2d_direct", "conv2d_tiled", "copy_bytes", "copy_words"});
    CHECK(co.relocations.empty());
  }
}

TEST_CASE("the descriptor parser agrees with clang's .amdhsa_* directives") {
  for (const auto& t : targets()) {
    const CodeObject co = load_code_object(read_file(hsaco(t)));
    const auto dirs =
        amdhsa_directives(std::string(SPARKLE_AMDGPU_ASM_DIR) + "/kernels-" + t + ".s");
    REQUIRE(dirs.size() == co.kernels.size());
    for (const auto& k : co.kernels) {
      CAPTURE(t);
      CAPTURE(k.name);
      REQUIRE(dirs.count(k.name) == 1);
      auto d = dirs.at(k.name);
      const auto& kd = k.descriptor;
      const Generation g = co.generation;
      std::set<std::string> seen;
      auto want = [&](const std::string& name, int64_t value) {
        INFO(".amdhsa_" << name);
        REQUIRE(d.count(name) == 1);
        CHECK(d.at(name) == value);
        seen.insert(name);
      };
      auto maybe = [&](const std::string& name, int64_t value) {
        if (d.count(name))
          want(name, value);
        else
          CHECK_MESSAGE(value == 0, ".amdhsa_" << name << " absent but the field is " << value);
      };
      const uint16_t p = kd.kernel_code_properties;
      const uint32_t r1 = kd.compute_pgm_rsrc1, r2 = kd.compute_pgm_rsrc2,
                     r3 = kd.compute_pgm_rsrc3;
      want("group_segment_fixed_size", kd.group_segment_fixed_size);
      want("private_segment_fixed_size", kd.private_segment_fixed_size);
      want("kernarg_size", kd.kernarg_size);
      want("user_sgpr_count", kd.user_sgpr_count());
      maybe("user_sgpr_private_segment_buffer", (p >> 0) & 1);
      want("user_sgpr_dispatch_ptr", (p >> 1) & 1);
      want("user_sgpr_queue_ptr", (p >> 2) & 1);
      want("user_sgpr_kernarg_segment_ptr", (p >> 3) & 1);
      want("user_sgpr_dispatch_id", (p >> 4) & 1);
      maybe("user_sgpr_flat_scratch_init", (p >> 5) & 1);
      want("user_sgpr_private_segment_size", (p >> 6) & 1);
      maybe("wavefront_size32", (p >> 10) & 1);
      maybe("uses_dynamic_stack", (p >> 11) & 1);
      if (g == Generation::Gfx11) {
        want("enable_private_segment", bits(r2, 0, 0));
      } else {
        want("system_sgpr_private_segment_wavefront_offset", bits(r2, 0, 0));
      }
      want("system_sgpr_workgroup_id_x", bits(r2, 7, 7));
      want("system_sgpr_workgroup_id_y", bits(r2, 8, 8));
      want("system_sgpr_workgroup_id_z", bits(r2, 9, 9));
      want("system_sgpr_workgroup_info", bits(r2, 10, 10));
      want("system_vgpr_workitem_id", bits(r2, 11, 12));
      want("exception_fp_ieee_invalid_op", bits(r2, 24, 24));
      want("exception_fp_denorm_src", bits(r2, 25, 25));
      want("exception_fp_ieee_div_zero", bits(r2, 26, 26));
      want("exception_fp_ieee_overflow", bits(r2, 27, 27));
      want("exception_fp_ieee_underflow", bits(r2, 28, 28));
      want("exception_fp_ieee_inexact", bits(r2, 29, 29));
      want("exception_int_div_zero", bits(r2, 30, 30));
      want("float_round_mode_32", bits(r1, 12, 13));
      want("float_round_mode_16_64", bits(r1, 14, 15));
      want("float_denorm_mode_32", bits(r1, 16, 17));
      want("float_denorm_mode_16_64", bits(r1, 18, 19));
      want("dx10_clamp", bits(r1, 21, 21));
      want("ieee_mode", bits(r1, 23, 23));
      want("fp16_overflow", bits(r1, 26, 26));
      if (g != Generation::Gfx9) {
        want("workgroup_processor_mode", bits(r1, 29, 29));
        want("memory_ordered", bits(r1, 30, 30));
        want("forward_progress", bits(r1, 31, 31));
        want("shared_vgpr_count", bits(r3, 0, 3));
      }
      if (t == "gfx90a") {
        want("accum_offset", (bits(r3, 0, 5) + 1) * 4);
        want("tg_split", bits(r3, 16, 16));
      }
      // VGPRs: the granulated count must cover next_free_vgpr (blocks of 8
      // for wave32 and on gfx90a, of 4 for other wave64 targets).
      const uint32_t granule = (kd.wave32() || t == "gfx90a") ? 8 : 4;
      const int64_t next_vgpr = d.at("next_free_vgpr");
      seen.insert("next_free_vgpr");
      CHECK((bits(r1, 0, 5) + 1) * granule >= next_vgpr);
      CHECK(bits(r1, 0, 5) * granule < std::max<int64_t>(next_vgpr, 1));
      // Directives that describe no descriptor field (register budgets).
      for (const char* other : {"next_free_sgpr", "reserve_vcc", "reserve_flat_scratch",
                                "reserve_xnack_mask", "reserve_xnack"})
        seen.insert(other);
      for (const auto& [name, value] : d)
        CHECK_MESSAGE(seen.count(name) == 1,
                      ".amdhsa_" << name << " " << value << " is not compared");
    }
  }
}

TEST_CASE("the metadata reader and the descriptor agree with llvm-readelf --notes") {
  for (const auto& t : targets()) {
    CAPTURE(t);
    const CodeObject co = load_code_object(read_file(hsaco(t)));
    std::string target;
    const auto notes = readelf_notes(hsaco(t), &target);
    CHECK(target == "amdgcn-amd-amdhsa--" + t);
    REQUIRE(notes.size() == co.kernels.size());
    for (const auto& k : co.kernels) {
      CAPTURE(k.name);
      REQUIRE(notes.count(k.name) == 1);
      const auto& n = notes.at(k.name);
      auto num = [&](const char* f) { return std::stoll(n.fields.at(f)); };
      CHECK(n.fields.at(".symbol") == k.symbol);
      CHECK(num(".kernarg_segment_size") == k.descriptor.kernarg_size);
      CHECK(num(".kernarg_segment_size") == k.kernarg_segment_size);
      CHECK(num(".kernarg_segment_align") == k.kernarg_segment_align);
      CHECK(num(".group_segment_fixed_size") == k.descriptor.group_segment_fixed_size);
      CHECK(num(".private_segment_fixed_size") == k.descriptor.private_segment_fixed_size);
      CHECK(num(".wavefront_size") == (k.descriptor.wave32() ? 32 : 64));
      CHECK(num(".sgpr_count") == k.sgpr_count);
      CHECK(num(".vgpr_count") == k.vgpr_count);
      CHECK(num(".max_flat_workgroup_size") == k.max_flat_workgroup_size);
      REQUIRE(n.args.size() == k.args.size());
      for (size_t i = 0; i < k.args.size(); ++i) {
        CAPTURE(i);
        CHECK(n.args[i].at(".name") == k.args[i].name);
        CHECK(n.args[i].at(".value_kind") == k.args[i].value_kind);
        CHECK(std::stoll(n.args[i].at(".offset")) == k.args[i].offset);
        CHECK(std::stoll(n.args[i].at(".size")) == k.args[i].size);
      }
      CHECK(k.reqd_workgroup_size[0] == 64);
    }
  }
}

TEST_CASE("the user-SGPR layout agrees with the registers the disassembly reads") {
  for (const auto& t : targets()) {
    const CodeObject co = load_code_object(read_file(hsaco(t)));
    for (const auto& k : co.kernels) {
      CAPTURE(t);
      CAPTURE(k.name);
      const auto code = disassemble(hsaco(t), k.name);
      REQUIRE(code.size() > 4);
      const SgprLayout& l = k.sgprs;
      // What the kernel may find in SGPRs at entry, by the layout.
      std::set<int> expected;
      const int ka = l.kernarg_ptr();
      REQUIRE(ka >= 0);
      expected.insert({ka, ka + 1});
      for (int id : l.workgroup_id)
        if (id >= 0) expected.insert(id);
      const std::set<int> live = live_in(code);
      CHECK(live == expected);
      // gfx11 has no private segment buffer: the kernarg pointer is s[0:1].
      if (co.generation == Generation::Gfx11) {
        CHECK(ka == 0);
      } else {
        CHECK(ka == 4);
        REQUIRE(!l.user.empty());
        CHECK(l.user[0].what == UserSgpr::PrivateSegmentBuffer);
      }
      // And the first scalar load reads through it.
      auto first_load = std::find_if(code.begin(), code.end(), [](const Insn& i) {
        return i.mnemonic.rfind("s_load", 0) == 0;
      });
      REQUIRE(first_load != code.end());
      CHECK(first_load->text.find(", s[" + std::to_string(ka) + ":" + std::to_string(ka + 1) +
                                  "],") != std::string::npos);
    }
  }
}

TEST_CASE("malformed code objects are refused, naming the field") {
  CHECK(load_error([](auto& e) { e[0] = 0; }).find("not an ELF file") != std::string::npos);
  CHECK(load_error([](auto& e) { e[18] = 62; }).find("e_machine is 62") != std::string::npos);
  CHECK(load_error([](auto& e) { e.resize(200); }).find("lies outside the file") !=
        std::string::npos);
  CHECK(load_error([](auto& e) {
          e.resize(40);
        }).find("ELF header at offset 0 lies past the end") != std::string::npos);
  const CodeObject co = load_code_object(read_file(hsaco("gfx1100")));
  const Kernel& k = *co.kernel("conv2d_direct");
  const auto kd_at = [&](std::vector<uint8_t>& elf) {
    return file_offset(elf, k.descriptor_vaddr);
  };
  CHECK(load_error([&](auto& e) {
          e[kd_at(e) + 8] += 4;
        }).find("descriptor kernarg_size 112 != metadata") != std::string::npos);
  CHECK(load_error([&](auto& e) { e[kd_at(e) + 30] = 1; }).find("reserved bytes 24..43") !=
        std::string::npos);
  CHECK(load_error([&](auto& e) { e[kd_at(e) + 16] += 4; }).find("not 256-byte aligned") !=
        std::string::npos);
  CHECK(load_error([&](auto& e) {
          e[kd_at(e) + 56] |= 1;
        }).find("private segment buffer or flat scratch init SGPRs, which gfx11 does not have") !=
        std::string::npos);
  CHECK(load_error([&](auto& e) {
          e[kd_at(e) + 57] |= 0x10;
        }).find("reserved kernel_code_properties") != std::string::npos);
}

TEST_CASE("user SGPRs follow the property order; system SGPRs follow USER_SGPR") {
  KernelDescriptor kd;
  kd.kernel_code_properties = KernelDescriptor::kPrivateSegmentBuffer |
                              KernelDescriptor::kDispatchPtr |
                              KernelDescriptor::kKernargSegmentPtr | KernelDescriptor::kDispatchId;
  kd.compute_pgm_rsrc2 =
      (12u << 1) | (1u << 7) | (1u << 9) | (1u << 10);  // USER_SGPR 12, x, z, info
  const SgprLayout l = layout_sgprs(kd, Generation::Gfx10_3);
  REQUIRE(l.user.size() == 4);
  CHECK((l.user[0].what == UserSgpr::PrivateSegmentBuffer && l.user[0].first == 0 &&
         l.user[0].count == 4));
  CHECK((l.user[1].what == UserSgpr::DispatchPtr && l.user[1].first == 4));
  CHECK((l.user[2].what == UserSgpr::KernargSegmentPtr && l.user[2].first == 6));
  CHECK((l.user[3].what == UserSgpr::DispatchId && l.user[3].first == 8));
  CHECK(l.workgroup_id[0] == 12);
  CHECK(l.workgroup_id[1] == -1);
  CHECK(l.workgroup_id[2] == 13);
  CHECK(l.workgroup_info == 14);
  CHECK_THROWS_AS(layout_sgprs(kd, Generation::Gfx11), CodeObjectError);
  kd.compute_pgm_rsrc2 = 9u << 1;  // fewer USER_SGPRs than the properties need
  CHECK_THROWS_WITH_AS(
      layout_sgprs(kd, Generation::Gfx9),
      doctest::Contains("enables 10 user SGPRs but COMPUTE_PGM_RSRC2.USER_SGPR is 9"),
      CodeObjectError);
}

TEST_CASE("a loaded code object survives the program cache's serialisation, and damage is caught") {
  for (const auto& t : targets()) {
    CAPTURE(t);
    const CodeObject co = load_code_object(read_file(hsaco(t)));
    const auto bytes = serialize(co);
    const CodeObject back = deserialize(bytes);
    CHECK(back.target == co.target);
    CHECK(back.image == co.image);
    REQUIRE(back.kernels.size() == co.kernels.size());
    for (size_t i = 0; i < co.kernels.size(); ++i) {
      CHECK(back.kernels[i].name == co.kernels[i].name);
      CHECK(back.kernels[i].descriptor == co.kernels[i].descriptor);
      CHECK(back.kernels[i].code_vaddr == co.kernels[i].code_vaddr);
      CHECK(back.kernels[i].args.size() == co.kernels[i].args.size());
      CHECK(back.kernels[i].sgprs.kernarg_ptr() == co.kernels[i].sgprs.kernarg_ptr());
    }
    auto truncated = bytes;
    truncated.resize(bytes.size() - 3);
    CHECK_THROWS_AS(deserialize(truncated), CodeObjectError);
    // A descriptor in the table that no longer matches the image.
    auto tampered = bytes;
    const auto& k0 = co.kernels[0];
    // magic, format, target (length + bytes), e_flags, image length, then the image.
    tampered[8 + 4 + 4 + co.target.size() + 4 + 8 + k0.descriptor_vaddr + 8] ^= 0x40;
    CHECK_THROWS_AS(deserialize(tampered), CodeObjectError);
  }
}
