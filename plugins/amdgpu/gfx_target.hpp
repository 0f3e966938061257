// Which gfx target (the ISA name clang's -mcpu takes, e.g. gfx1100) a GPU is,
// from what the amdgpu kernel driver reports: the GFX hw-ip major version
// (amdgpu_query_hw_ip_info) and the family id and external revision
// (amdgpu_query_gpu_info). The generation picks the register table and the
// packet forms (pm4.hpp) and the user-SGPR rules (code_object.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace sparkle::amdgpu {

enum class Generation { Gfx9, Gfx10_3, Gfx11 };

const char* generation_name(Generation g);  // "gfx9", "gfx10.3", "gfx11"

struct GfxTarget {
  std::string name;  // "gfx1100"
  Generation generation;
  const char* chip;  // "Navi 31"
};

// The generation of a target name, or nothing for targets this backend has
// no register table for (gfx10.1, gfx8 and older, gfx12, unknown names).
std::optional<Generation> generation_of(const std::string& target);

// The target of a GPU. Nothing, with *why, when the family or revision is not
// one the table knows, or when the hw-ip major disagrees with it.
std::optional<GfxTarget> identify_target(uint32_t family_id, uint32_t chip_external_rev,
                                         uint32_t gfx_ip_major, std::string* why);

}  // namespace sparkle::amdgpu
