// ELF, kernel descriptor and metadata parsing (see code_object.hpp).
#include "code_object.hpp"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>

#include "msgpack.hpp"

namespace sparkle::amdgpu {
namespace {

// From LLVM's BinaryFormat/ELF.h (AMDGPUUsage "ELF Header", "Note Records",
// "Relocation Records"); older <elf.h> lack them.
constexpr uint16_t kEmAmdgpu = 224;
constexpr uint8_t kOsAbiAmdgpuHsa = 64;
constexpr uint32_t kNtAmdgpuMetadata = 32;
constexpr uint32_t kRAmdgpuRelative64 = 13;
// The largest image we agree to build (a conv kernel object is ~30 KiB).
constexpr uint64_t kMaxImage = 64ull << 20;

[[noreturn]] void fail(const std::string& what) { throw CodeObjectError("code object: " + what); }

template <class T>
T read(std::span<const uint8_t> bytes, uint64_t offset, const char* what) {
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T))
    fail(std::string(what) + " at offset " + std::to_string(offset) + " lies past the end (" +
         std::to_string(bytes.size()) + " bytes)");
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof v);
  return v;
}

uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

bool all_zero(std::span<const uint8_t> bytes, size_t from, size_t to) {
  return std::all_of(bytes.begin() + static_cast<std::ptrdiff_t>(from),
                     bytes.begin() + static_cast<std::ptrdiff_t>(to),
                     [](uint8_t b) { return b == 0; });
}

uint32_t meta_u32(const MsgValue& map, const char* key, const std::string& kernel, bool required) {
  const MsgValue* v = map.find(key);
  if (v == nullptr) {
    if (required) fail("kernel " + kernel + ": metadata has no " + key);
    return 0;
  }
  if (!v->is_int() || v->i < 0 || v->i > std::numeric_limits<uint32_t>::max())
    fail("kernel " + kernel + ": metadata " + key + " is not a 32-bit unsigned integer");
  return static_cast<uint32_t>(v->i);
}

std::string meta_str(const MsgValue& map, const char* key, const std::string& kernel,
                     bool required) {
  const MsgValue* v = map.find(key);
  if (v == nullptr || !v->is_string()) {
    if (required) fail("kernel " + kernel + ": metadata has no string " + key);
    return {};
  }
  return v->s;
}

struct Section {
  Elf64_Shdr hdr;
  std::span<const uint8_t> data;  // empty for SHT_NOBITS
};

}  // namespace

KernelDescriptor parse_kernel_descriptor(std::span<const uint8_t> b) {
  if (b.size() != KernelDescriptor::kSize)
    fail("kernel descriptor is " + std::to_string(b.size()) + " bytes, not 64");
  KernelDescriptor kd;
  kd.group_segment_fixed_size = le32(&b[0]);
  kd.private_segment_fixed_size = le32(&b[4]);
  kd.kernarg_size = le32(&b[8]);
  uint64_t entry = uint64_t{le32(&b[16])} | uint64_t{le32(&b[20])} << 32;
  std::memcpy(&kd.kernel_code_entry_byte_offset, &entry, sizeof entry);
  kd.compute_pgm_rsrc3 = le32(&b[44]);
  kd.compute_pgm_rsrc1 = le32(&b[48]);
  kd.compute_pgm_rsrc2 = le32(&b[52]);
  kd.kernel_code_properties = static_cast<uint16_t>(b[56] | b[57] << 8);
  kd.kernarg_preload = static_cast<uint16_t>(b[58] | b[59] << 8);
  if (!all_zero(b, 12, 16)) fail("kernel descriptor: reserved bytes 12..15 are not zero");
  if (!all_zero(b, 24, 44)) fail("kernel descriptor: reserved bytes 24..43 are not zero");
  if (!all_zero(b, 60, 64)) fail("kernel descriptor: reserved bytes 60..63 are not zero");
  if ((kd.kernel_code_properties & 0xf380u) != 0)
    fail("kernel descriptor: reserved kernel_code_properties bits are set (" +
         std::to_string(kd.kernel_code_properties) + ")");
  if (kd.kernel_code_entry_byte_offset <= 0)
    fail("kernel descriptor: kernel_code_entry_byte_offset " +
         std::to_string(kd.kernel_code_entry_byte_offset) + " does not point past the descriptor");
  return kd;
}

const char* user_sgpr_name(UserSgpr what) {
  switch (what) {
    case UserSgpr::PrivateSegmentBuffer:
      return "private segment buffer";
    case UserSgpr::DispatchPtr:
      return "dispatch ptr";
    case UserSgpr::QueuePtr:
      return "queue ptr";
    case UserSgpr::KernargSegmentPtr:
      return "kernarg segment ptr";
    case UserSgpr::DispatchId:
      return "dispatch id";
    case UserSgpr::FlatScratchInit:
      return "flat scratch init";
    case UserSgpr::PrivateSegmentSize:
      return "private segment size";
  }
  return "?";
}

int SgprLayout::kernarg_ptr() const {
  for (const auto& s : user)
    if (s.what == UserSgpr::KernargSegmentPtr) return static_cast<int>(s.first);
  return -1;
}

SgprLayout layout_sgprs(const KernelDescriptor& kd, Generation generation) {
  const uint16_t p = kd.kernel_code_properties;
  if (generation == Generation::Gfx11 &&
      (p & (KernelDescriptor::kPrivateSegmentBuffer | KernelDescriptor::kFlatScratchInit)) != 0) {
    // gfx11 has architected flat scratch: neither SGPR input exists there.
    fail(
        "kernel descriptor enables the private segment buffer or flat scratch init SGPRs, "
        "which gfx11 does not have");
  }
  SgprLayout l;
  uint32_t next = 0;
  auto add = [&](uint16_t bit, UserSgpr what, uint32_t count) {
    if ((p & bit) == 0) return;
    l.user.push_back({what, next, count});
    next += count;
  };
  add(KernelDescriptor::kPrivateSegmentBuffer, UserSgpr::PrivateSegmentBuffer, 4);
  add(KernelDescriptor::kDispatchPtr, UserSgpr::DispatchPtr, 2);
  add(KernelDescriptor::kQueuePtr, UserSgpr::QueuePtr, 2);
  add(KernelDescriptor::kKernargSegmentPtr, UserSgpr::KernargSegmentPtr, 2);
  add(KernelDescriptor::kDispatchId, UserSgpr::DispatchId, 2);
  add(KernelDescriptor::kFlatScratchInit, UserSgpr::FlatScratchInit, 2);
  add(KernelDescriptor::kPrivateSegmentSize, UserSgpr::PrivateSegmentSize, 1);
  l.user_sgpr_count = kd.user_sgpr_count();
  if (next > l.user_sgpr_count)
    fail("kernel descriptor enables " + std::to_string(next) +
         " user SGPRs but COMPUTE_PGM_RSRC2.USER_SGPR is " + std::to_string(l.user_sgpr_count));
  // System SGPRs follow the USER_SGPR count, not the enabled ones: LLVM 16
  // declares 13 to 15 user SGPRs on gfx11 and leaves the unused ones free.
  int sys = static_cast<int>(l.user_sgpr_count);
  for (int d = 0; d < 3; ++d)
    if (kd.workgroup_id_enabled(d)) l.workgroup_id[d] = sys++;
  if (kd.workgroup_info_enabled()) l.workgroup_info = sys++;
  if (kd.scratch_enabled() && generation != Generation::Gfx11)
    l.private_segment_wave_offset = sys++;
  return l;
}

const KernelArg* Kernel::arg(const std::string& arg_name) const {
  for (const auto& a : args)
    if (a.name == arg_name) return &a;
  return nullptr;
}

const Kernel* CodeObject::kernel(const std::string& name) const {
  for (const auto& k : kernels)
    if (k.name == name) return &k;
  return nullptr;
}

CodeObject load_code_object(std::span<const uint8_t> elf) {
  const auto eh = read<Elf64_Ehdr>(elf, 0, "ELF header");
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) fail("not an ELF file");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
    fail("not a little-endian ELF64 file");
  if (eh.e_machine != kEmAmdgpu)
    fail("e_machine is " + std::to_string(eh.e_machine) + ", not EM_AMDGPU (224)");
  if (eh.e_ident[EI_OSABI] != kOsAbiAmdgpuHsa)
    fail("OS ABI is " + std::to_string(eh.e_ident[EI_OSABI]) + ", not ELFOSABI_AMDGPU_HSA (64)");
  // ABI version 1, 2, 3: code object v3, v4, v5.
  if (eh.e_ident[EI_ABIVERSION] < 1 || eh.e_ident[EI_ABIVERSION] > 3)
    fail("code object ABI version " + std::to_string(eh.e_ident[EI_ABIVERSION]) +
         " is not v3, v4 or v5");
  if (eh.e_type != ET_DYN) fail("not a shared object (link with ld.lld -shared)");
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_shentsize != sizeof(Elf64_Shdr))
    fail("unexpected program or section header size");

  CodeObject co;
  co.e_flags = eh.e_flags;

  // The image: PT_LOAD segments at their virtual addresses.
  uint64_t image_size = 0;
  std::vector<Elf64_Phdr> loads;
  for (uint32_t i = 0; i < eh.e_phnum; ++i) {
    const auto ph =
        read<Elf64_Phdr>(elf, eh.e_phoff + uint64_t{i} * sizeof(Elf64_Phdr), "program header");
    if (ph.p_type != PT_LOAD) continue;
    if (ph.p_filesz > ph.p_memsz || ph.p_offset > elf.size() ||
        elf.size() - ph.p_offset < ph.p_filesz)
      fail("PT_LOAD segment " + std::to_string(i) + " lies outside the file");
    if (ph.p_vaddr > kMaxImage || ph.p_memsz > kMaxImage - ph.p_vaddr)
      fail("PT_LOAD segment " + std::to_string(i) + " ends past 64 MiB");
    image_size = std::max(image_size, ph.p_vaddr + ph.p_memsz);
    loads.push_back(ph);
  }
  if (loads.empty()) fail("no PT_LOAD segment");
  co.image.assign(static_cast<size_t>(image_size), 0);
  for (const auto& ph : loads)
    std::memcpy(co.image.data() + ph.p_vaddr, elf.data() + ph.p_offset, ph.p_filesz);

  // Sections.
  std::vector<Section> sections;
  for (uint32_t i = 0; i < eh.e_shnum; ++i) {
    Section s;
    s.hdr = read<Elf64_Shdr>(elf, eh.e_shoff + uint64_t{i} * sizeof(Elf64_Shdr), "section header");
    if (s.hdr.sh_type != SHT_NOBITS && s.hdr.sh_size > 0) {
      if (s.hdr.sh_offset > elf.size() || elf.size() - s.hdr.sh_offset < s.hdr.sh_size)
        fail("section " + std::to_string(i) + " lies outside the file");
      s.data = elf.subspan(s.hdr.sh_offset, s.hdr.sh_size);
    }
    sections.push_back(s);
  }

  // Relocations: only R_AMDGPU_RELATIVE64 (base + addend), which needs the
  // GPU address and so is applied by whoever uploads the image.
  for (const auto& s : sections) {
    if (s.hdr.sh_type == SHT_REL) fail("SHT_REL relocations are not supported");
    if (s.hdr.sh_type != SHT_RELA) continue;
    for (uint64_t off = 0; off + sizeof(Elf64_Rela) <= s.data.size(); off += sizeof(Elf64_Rela)) {
      const auto r = read<Elf64_Rela>(s.data, off, "relocation");
      if (ELF64_R_TYPE(r.r_info) != kRAmdgpuRelative64)
        fail("relocation type " + std::to_string(ELF64_R_TYPE(r.r_info)) +
             " is not R_AMDGPU_RELATIVE64");
      if (r.r_offset + 8 > co.image.size()) fail("relocation outside the image");
      co.relocations.push_back({r.r_offset, r.r_addend});
    }
  }

  // The metadata note.
  std::optional<MsgValue> meta;
  for (const auto& s : sections) {
    if (s.hdr.sh_type != SHT_NOTE) continue;
    uint64_t off = 0;
    while (off + 12 <= s.data.size()) {
      const uint32_t namesz = le32(&s.data[off]), descsz = le32(&s.data[off + 4]);
      const uint32_t type = le32(&s.data[off + 8]);
      const uint64_t name_at = off + 12;
      const uint64_t desc_at = name_at + ((uint64_t{namesz} + 3) & ~3ull);
      const uint64_t next = desc_at + ((uint64_t{descsz} + 3) & ~3ull);
      if (desc_at + descsz > s.data.size()) fail("note record runs past its section");
      const std::string name(reinterpret_cast<const char*>(s.data.data() + name_at),
                             namesz > 0 ? namesz - 1 : 0);
      if (name == "AMDGPU" && type == kNtAmdgpuMetadata) {
        if (meta) fail("more than one NT_AMDGPU_METADATA note (objects linked without merging)");
        try {
          meta = parse_msgpack(s.data.data() + desc_at, descsz);
        } catch (const std::exception& e) {
          fail(std::string("metadata note: ") + e.what());
        }
      }
      off = next;
    }
  }
  if (!meta) fail("no NT_AMDGPU_METADATA note (code object v3+ metadata)");
  const std::string target_triple = meta_str(*meta, "amdhsa.target", "", true);
  // "amdgcn-amd-amdhsa--gfx1100" with optional ":feature+" suffixes.
  const size_t dash = target_triple.rfind("--");
  if (dash == std::string::npos) fail("amdhsa.target '" + target_triple + "' has no processor");
  co.target = target_triple.substr(dash + 2, target_triple.find(':', dash) - (dash + 2));
  const auto gen = generation_of(co.target);
  if (!gen) fail("target " + co.target + " is not gfx9, gfx10.3 or gfx11");
  co.generation = *gen;

  // Symbols: the .kd objects.
  const Section* symtab = nullptr;
  for (const auto& s : sections)
    if (s.hdr.sh_type == SHT_SYMTAB) symtab = &s;
  if (symtab == nullptr)
    for (const auto& s : sections)
      if (s.hdr.sh_type == SHT_DYNSYM) symtab = &s;
  if (symtab == nullptr || symtab->hdr.sh_link >= sections.size()) fail("no symbol table");
  const auto strtab = sections[symtab->hdr.sh_link].data;
  auto find_symbol = [&](const std::string& want) -> std::optional<Elf64_Sym> {
    for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= symtab->data.size();
         off += sizeof(Elf64_Sym)) {
      const auto sym = read<Elf64_Sym>(symtab->data, off, "symbol");
      if (sym.st_name >= strtab.size()) continue;
      const char* name = reinterpret_cast<const char*>(strtab.data() + sym.st_name);
      const size_t len = strnlen(name, strtab.size() - sym.st_name);
      if (std::string(name, len) == want) return sym;
    }
    return std::nullopt;
  };

  const MsgValue* kernels = meta->find("amdhsa.kernels");
  if (kernels == nullptr || kernels->type != MsgValue::Type::Array || kernels->array.empty())
    fail("metadata has no amdhsa.kernels");
  for (const MsgValue& km : kernels->array) {
    Kernel k;
    k.name = meta_str(km, ".name", "?", true);
    k.symbol = meta_str(km, ".symbol", k.name, true);
    if (k.symbol != k.name + ".kd") fail("kernel " + k.name + ": symbol is " + k.symbol);
    const auto sym = find_symbol(k.symbol);
    if (!sym) fail("kernel " + k.name + ": no symbol " + k.symbol);
    if (ELF64_ST_TYPE(sym->st_info) != STT_OBJECT || sym->st_size != KernelDescriptor::kSize)
      fail("kernel " + k.name + ": " + k.symbol + " is not a 64-byte object");
    if (sym->st_value % 64 != 0) fail("kernel " + k.name + ": descriptor is not 64-byte aligned");
    if (sym->st_value + KernelDescriptor::kSize > co.image.size())
      fail("kernel " + k.name + ": descriptor lies outside the loaded segments");
    k.descriptor_vaddr = sym->st_value;
    try {
      k.descriptor = parse_kernel_descriptor(
          std::span<const uint8_t>(co.image).subspan(sym->st_value, KernelDescriptor::kSize));
      k.sgprs = layout_sgprs(k.descriptor, co.generation);
    } catch (const CodeObjectError& e) {
      fail("kernel " + k.name + ": " + e.what());
    }
    k.code_vaddr =
        k.descriptor_vaddr + static_cast<uint64_t>(k.descriptor.kernel_code_entry_byte_offset);
    if (k.code_vaddr >= co.image.size())
      fail("kernel " + k.name + ": code entry lies outside the image");
    if (k.code_vaddr % 256 != 0)
      fail("kernel " + k.name +
           ": code entry is not 256-byte aligned (COMPUTE_PGM_LO is address >> 8)");

    k.kernarg_segment_size = meta_u32(km, ".kernarg_segment_size", k.name, true);
    k.kernarg_segment_align = meta_u32(km, ".kernarg_segment_align", k.name, true);
    k.group_segment_fixed_size = meta_u32(km, ".group_segment_fixed_size", k.name, true);
    k.private_segment_fixed_size = meta_u32(km, ".private_segment_fixed_size", k.name, true);
    k.wavefront_size = meta_u32(km, ".wavefront_size", k.name, true);
    k.sgpr_count = meta_u32(km, ".sgpr_count", k.name, true);
    k.vgpr_count = meta_u32(km, ".vgpr_count", k.name, true);
    k.max_flat_workgroup_size = meta_u32(km, ".max_flat_workgroup_size", k.name, false);
    if (const MsgValue* r = km.find(".reqd_workgroup_size"); r != nullptr) {
      if (r->type != MsgValue::Type::Array || r->array.size() != 3)
        fail("kernel " + k.name + ": .reqd_workgroup_size is not 3 integers");
      for (int d = 0; d < 3; ++d) {
        if (!r->array[d].is_int() || r->array[d].i <= 0 || r->array[d].i > 1024)
          fail("kernel " + k.name + ": .reqd_workgroup_size is not 3 sizes in 1..1024");
        k.reqd_workgroup_size[d] = static_cast<uint32_t>(r->array[d].i);
      }
    }
    if (const MsgValue* args = km.find(".args"); args != nullptr) {
      if (args->type != MsgValue::Type::Array) fail("kernel " + k.name + ": .args is not a list");
      for (const MsgValue& am : args->array) {
        KernelArg a;
        a.name = meta_str(am, ".name", k.name, false);
        a.type_name = meta_str(am, ".type_name", k.name, false);
        a.value_kind = meta_str(am, ".value_kind", k.name, true);
        a.offset = meta_u32(am, ".offset", k.name, true);
        a.size = meta_u32(am, ".size", k.name, true);
        if (uint64_t{a.offset} + a.size > k.kernarg_segment_size)
          fail("kernel " + k.name + ": argument " + a.name + " ends past the kernarg segment");
        k.args.push_back(std::move(a));
      }
    }
    // The descriptor and the metadata describe one kernel: they must agree.
    const auto& kd = k.descriptor;
    if (kd.kernarg_size != k.kernarg_segment_size)
      fail("kernel " + k.name + ": descriptor kernarg_size " + std::to_string(kd.kernarg_size) +
           " != metadata .kernarg_segment_size " + std::to_string(k.kernarg_segment_size));
    if (kd.group_segment_fixed_size != k.group_segment_fixed_size)
      fail("kernel " + k.name + ": descriptor and metadata disagree on LDS bytes");
    if (kd.private_segment_fixed_size != k.private_segment_fixed_size)
      fail("kernel " + k.name + ": descriptor and metadata disagree on scratch bytes");
    if ((kd.wave32() ? 32u : 64u) != k.wavefront_size)
      fail("kernel " + k.name + ": descriptor says wave" + (kd.wave32() ? "32" : "64") +
           ", metadata .wavefront_size is " + std::to_string(k.wavefront_size));
    if (co.generation == Generation::Gfx9 && kd.wave32())
      fail("kernel " + k.name + ": wave32 on gfx9");
    co.kernels.push_back(std::move(k));
  }
  return co;
}

// ---- serialisation for the program cache ----

namespace {

constexpr char kMagic[8] = {'S', 'P', 'K', 'A', 'M', 'D', 'C', 'O'};
constexpr uint32_t kFormat = 2;

// FNV-1a 64 over the payload: the trailer that catches damage anywhere,
// image bytes included (nothing else in them could be checked).
uint64_t fnv1a(std::span<const uint8_t> bytes) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : bytes) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return h;
}

class Writer {
 public:
  void u8(uint8_t v) { out.push_back(v); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) u8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    u32(static_cast<uint32_t>(v));
    u32(static_cast<uint32_t>(v >> 32));
  }
  void str(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
  }
  void bytes(const std::vector<uint8_t>& b) {
    u64(b.size());
    out.insert(out.end(), b.begin(), b.end());
  }
  std::vector<uint8_t> out;
};

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}
  uint8_t u8() {
    need(1);
    return in_[pos_++];
  }
  uint32_t u32() {
    need(4);
    const uint32_t v = le32(&in_[pos_]);
    pos_ += 4;
    return v;
  }
  uint64_t u64() {
    const uint64_t lo = u32();
    return lo | uint64_t{u32()} << 32;
  }
  std::string str() {
    const uint32_t n = u32();
    need(n);
    std::string s(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  std::vector<uint8_t> bytes() {
    const uint64_t n = u64();
    need(n);
    std::vector<uint8_t> b(in_.begin() + static_cast<std::ptrdiff_t>(pos_),
                           in_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
    pos_ += static_cast<size_t>(n);
    return b;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  void need(uint64_t n) const {
    if (n > in_.size() - pos_) fail("cached program is truncated");
  }
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

void write_descriptor_bytes(Writer& w, const KernelDescriptor& kd) {
  w.u32(kd.group_segment_fixed_size);
  w.u32(kd.private_segment_fixed_size);
  w.u32(kd.kernarg_size);
  w.u64(static_cast<uint64_t>(kd.kernel_code_entry_byte_offset));
  w.u32(kd.compute_pgm_rsrc3);
  w.u32(kd.compute_pgm_rsrc1);
  w.u32(kd.compute_pgm_rsrc2);
  w.u32(kd.kernel_code_properties | uint32_t{kd.kernarg_preload} << 16);
}

KernelDescriptor read_descriptor(Reader& r) {
  KernelDescriptor kd;
  kd.group_segment_fixed_size = r.u32();
  kd.private_segment_fixed_size = r.u32();
  kd.kernarg_size = r.u32();
  kd.kernel_code_entry_byte_offset = static_cast<int64_t>(r.u64());
  kd.compute_pgm_rsrc3 = r.u32();
  kd.compute_pgm_rsrc1 = r.u32();
  kd.compute_pgm_rsrc2 = r.u32();
  const uint32_t props = r.u32();
  kd.kernel_code_properties = static_cast<uint16_t>(props);
  kd.kernarg_preload = static_cast<uint16_t>(props >> 16);
  return kd;
}

}  // namespace

std::vector<uint8_t> serialize(const CodeObject& co) {
  Writer w;
  for (char c : kMagic) w.u8(static_cast<uint8_t>(c));
  w.u32(kFormat);
  w.str(co.target);
  w.u32(co.e_flags);
  w.bytes(co.image);
  w.u32(static_cast<uint32_t>(co.relocations.size()));
  for (const auto& rel : co.relocations) {
    w.u64(rel.offset);
    w.u64(static_cast<uint64_t>(rel.addend));
  }
  w.u32(static_cast<uint32_t>(co.kernels.size()));
  for (const auto& k : co.kernels) {
    w.str(k.name);
    w.str(k.symbol);
    w.u64(k.descriptor_vaddr);
    write_descriptor_bytes(w, k.descriptor);
    w.u32(k.kernarg_segment_size);
    w.u32(k.kernarg_segment_align);
    w.u32(k.group_segment_fixed_size);
    w.u32(k.private_segment_fixed_size);
    w.u32(k.wavefront_size);
    w.u32(k.sgpr_count);
    w.u32(k.vgpr_count);
    for (uint32_t s : k.reqd_workgroup_size) w.u32(s);
    w.u32(k.max_flat_workgroup_size);
    w.u32(static_cast<uint32_t>(k.args.size()));
    for (const auto& a : k.args) {
      w.str(a.name);
      w.str(a.type_name);
      w.str(a.value_kind);
      w.u32(a.offset);
      w.u32(a.size);
    }
  }
  w.u64(fnv1a(w.out));
  return w.out;
}

CodeObject deserialize(std::span<const uint8_t> bytes) {
  if (bytes.size() < sizeof(kMagic) + 8) fail("cached program is truncated");
  const auto body = bytes.first(bytes.size() - 8);
  uint64_t stored = 0;
  for (int i = 7; i >= 0; --i) stored = stored << 8 | bytes[body.size() + static_cast<size_t>(i)];
  if (stored != fnv1a(body)) fail("cached program fails its checksum");
  Reader r(body);
  for (char c : kMagic)
    if (r.u8() != static_cast<uint8_t>(c)) fail("cached program has the wrong magic");
  if (r.u32() != kFormat) fail("cached program has another format version");
  CodeObject co;
  co.target = r.str();
  const auto gen = generation_of(co.target);
  if (!gen) fail("cached program is for unknown target " + co.target);
  co.generation = *gen;
  co.e_flags = r.u32();
  co.image = r.bytes();
  const uint32_t nrel = r.u32();
  for (uint32_t i = 0; i < nrel; ++i) {
    CodeObject::Relocation rel;
    rel.offset = r.u64();
    rel.addend = static_cast<int64_t>(r.u64());
    if (rel.offset + 8 > co.image.size()) fail("cached relocation outside the image");
    co.relocations.push_back(rel);
  }
  const uint32_t nk = r.u32();
  if (nk == 0 || nk > 1024) fail("cached program has " + std::to_string(nk) + " kernels");
  for (uint32_t i = 0; i < nk; ++i) {
    Kernel k;
    k.name = r.str();
    k.symbol = r.str();
    k.descriptor_vaddr = r.u64();
    k.descriptor = read_descriptor(r);
    k.kernarg_segment_size = r.u32();
    k.kernarg_segment_align = r.u32();
    k.group_segment_fixed_size = r.u32();
    k.private_segment_fixed_size = r.u32();
    k.wavefront_size = r.u32();
    k.sgpr_count = r.u32();
    k.vgpr_count = r.u32();
    for (uint32_t& s : k.reqd_workgroup_size) s = r.u32();
    k.max_flat_workgroup_size = r.u32();
    const uint32_t na = r.u32();
    if (na > 4096) fail("cached kernel has too many arguments");
    for (uint32_t j = 0; j < na; ++j) {
      KernelArg a;
      a.name = r.str();
      a.type_name = r.str();
      a.value_kind = r.str();
      a.offset = r.u32();
      a.size = r.u32();
      if (uint64_t{a.offset} + a.size > k.kernarg_segment_size)
        fail("cached argument out of range");
      k.args.push_back(std::move(a));
    }
    // Everything derived is recomputed and checked as on a fresh load.
    if (k.descriptor_vaddr + KernelDescriptor::kSize > co.image.size())
      fail("cached descriptor outside the image");
    const auto in_image = parse_kernel_descriptor(
        std::span<const uint8_t>(co.image).subspan(k.descriptor_vaddr, KernelDescriptor::kSize));
    if (!(in_image == k.descriptor))
      fail("cached descriptor of " + k.name + " differs from the one in its image");
    k.sgprs = layout_sgprs(k.descriptor, co.generation);
    k.code_vaddr =
        k.descriptor_vaddr + static_cast<uint64_t>(k.descriptor.kernel_code_entry_byte_offset);
    if (k.code_vaddr >= co.image.size() || k.code_vaddr % 256 != 0)
      fail("cached code entry of " + k.name + " is invalid");
    co.kernels.push_back(std::move(k));
  }
  if (!r.done()) fail("cached program has trailing bytes");
  return co;
}

}  // namespace sparkle::amdgpu
