// The AMDGPU code object loader: reads the ELF that clang-16 + ld.lld-16
// produce (code object v4/v5, ET_DYN), finds each kernel's `name.kd` symbol,
// parses the 64-byte kernel descriptor, reads the kernel's arguments from the
// AMDGPU metadata note and lays out the kernel's user SGPRs from the
// descriptor's properties. It also builds the image that is copied to GPU
// memory (the PT_LOAD segments at their virtual addresses).
//
// Kernel descriptor: LLVM AMDGPUUsage, "Kernel Descriptor" (code object V3+).
// Initial SGPR order: LLVM AMDGPUUsage, "Initial Kernel Execution State".
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "gfx_target.hpp"

namespace sparkle::amdgpu {

// A malformed or unsupported code object; the message names the field.
class CodeObjectError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The 64-byte kernel descriptor, field by field.
struct KernelDescriptor {
  static constexpr size_t kSize = 64;
  uint32_t group_segment_fixed_size = 0;      // offset 0: LDS bytes
  uint32_t private_segment_fixed_size = 0;    // 4: scratch bytes per work-item
  uint32_t kernarg_size = 0;                  // 8
  int64_t kernel_code_entry_byte_offset = 0;  // 16: from the descriptor's address
  uint32_t compute_pgm_rsrc3 = 0;             // 44
  uint32_t compute_pgm_rsrc1 = 0;             // 48
  uint32_t compute_pgm_rsrc2 = 0;             // 52
  uint16_t kernel_code_properties = 0;        // 56
  uint16_t kernarg_preload = 0;               // 58 (code object v5, gfx940 only)
  bool operator==(const KernelDescriptor&) const = default;

  // kernel_code_properties bits
  static constexpr uint16_t kPrivateSegmentBuffer = 1u << 0;
  static constexpr uint16_t kDispatchPtr = 1u << 1;
  static constexpr uint16_t kQueuePtr = 1u << 2;
  static constexpr uint16_t kKernargSegmentPtr = 1u << 3;
  static constexpr uint16_t kDispatchId = 1u << 4;
  static constexpr uint16_t kFlatScratchInit = 1u << 5;
  static constexpr uint16_t kPrivateSegmentSize = 1u << 6;
  static constexpr uint16_t kWavefrontSize32 = 1u << 10;
  static constexpr uint16_t kUsesDynamicStack = 1u << 11;

  // COMPUTE_PGM_RSRC2 fields the layout needs.
  uint32_t user_sgpr_count() const { return (compute_pgm_rsrc2 >> 1) & 0x1f; }
  bool scratch_enabled() const { return (compute_pgm_rsrc2 & 1u) != 0; }
  bool workgroup_id_enabled(int dim) const { return ((compute_pgm_rsrc2 >> (7 + dim)) & 1u) != 0; }
  bool workgroup_info_enabled() const { return ((compute_pgm_rsrc2 >> 10) & 1u) != 0; }
  uint32_t workitem_id_components() const { return (compute_pgm_rsrc2 >> 11) & 3u; }
  bool wave32() const { return (kernel_code_properties & kWavefrontSize32) != 0; }
};

// Parses 64 bytes; throws CodeObjectError on reserved bits or sizes that no
// valid descriptor has.
KernelDescriptor parse_kernel_descriptor(std::span<const uint8_t> bytes);

// What a user SGPR holds, in the order the hardware loads them.
enum class UserSgpr {
  PrivateSegmentBuffer,  // 4 SGPRs, gfx6-gfx10 only
  DispatchPtr,           // 2
  QueuePtr,              // 2
  KernargSegmentPtr,     // 2
  DispatchId,            // 2
  FlatScratchInit,       // 2, gfx6-gfx10 only
  PrivateSegmentSize,    // 1
};
const char* user_sgpr_name(UserSgpr what);

struct SgprSlot {
  UserSgpr what;
  uint32_t first;  // s[first : first + count - 1]
  uint32_t count;
};

// Where a kernel expects its inputs when it starts.
struct SgprLayout {
  std::vector<SgprSlot> user;    // from s0 up, in hardware order
  uint32_t user_sgpr_count = 0;  // COMPUTE_PGM_RSRC2.USER_SGPR: USER_DATA registers loaded
  // System SGPRs, placed after the user SGPRs; -1 when not enabled.
  int workgroup_id[3] = {-1, -1, -1};
  int workgroup_info = -1;
  int private_segment_wave_offset = -1;
  // The first SGPR of the kernarg pointer pair, or -1.
  int kernarg_ptr() const;
};

// The layout for a descriptor on a generation. gfx11 has architected flat
// scratch: a descriptor asking for the private segment buffer or flat scratch
// init there is invalid. Throws CodeObjectError when the enabled user SGPRs
// do not fit COMPUTE_PGM_RSRC2.USER_SGPR.
SgprLayout layout_sgprs(const KernelDescriptor& kd, Generation generation);

// One kernel argument from the metadata (.args).
struct KernelArg {
  std::string name;        // empty unless compiled with -cl-kernel-arg-info
  std::string type_name;   // "float*", "int"
  std::string value_kind;  // "global_buffer", "by_value", "hidden_..."
  uint32_t offset = 0, size = 0;
};

struct Kernel {
  std::string name;               // "conv2d_direct"
  std::string symbol;             // "conv2d_direct.kd"
  uint64_t descriptor_vaddr = 0;  // where the descriptor sits in the image
  uint64_t code_vaddr = 0;        // descriptor_vaddr + kernel_code_entry_byte_offset
  KernelDescriptor descriptor;
  SgprLayout sgprs;
  // From the metadata.
  std::vector<KernelArg> args;
  uint32_t kernarg_segment_size = 0, kernarg_segment_align = 0;
  uint32_t group_segment_fixed_size = 0, private_segment_fixed_size = 0;
  uint32_t wavefront_size = 0;
  uint32_t sgpr_count = 0, vgpr_count = 0;
  uint32_t reqd_workgroup_size[3] = {0, 0, 0};  // zeros when not required
  uint32_t max_flat_workgroup_size = 0;

  const KernelArg* arg(const std::string& arg_name) const;
};

struct CodeObject {
  std::string target;  // "gfx1100", from the metadata's amdhsa.target
  Generation generation = Generation::Gfx11;
  uint32_t e_flags = 0;
  std::vector<uint8_t> image;  // PT_LOAD segments at their vaddrs; copy to a GPU buffer
  // R_AMDGPU_RELATIVE64: the uploader writes (image GPU address + addend) at
  // image[offset]. clang's conv kernels have none, but the loader honours them.
  struct Relocation {
    uint64_t offset;
    int64_t addend;
  };
  std::vector<Relocation> relocations;
  std::vector<Kernel> kernels;

  const Kernel* kernel(const std::string& name) const;
};

// Parses and checks a whole code object. Descriptor and metadata must agree
// (kernarg size, LDS and scratch bytes, wavefront size); the kernel entry
// must be 256-byte aligned (COMPUTE_PGM_LO holds address >> 8); relocations
// other than R_AMDGPU_RELATIVE64 are refused. Throws CodeObjectError.
CodeObject load_code_object(std::span<const uint8_t> elf);

// Serialised form of a loaded CodeObject, for the program cache: a disk hit
// skips ELF, note and descriptor parsing. deserialize throws CodeObjectError
// on anything malformed.
std::vector<uint8_t> serialize(const CodeObject& co);
CodeObject deserialize(std::span<const uint8_t> bytes);

}  // namespace sparkle::amdgpu
