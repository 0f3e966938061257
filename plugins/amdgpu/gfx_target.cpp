// The family / external-revision table behind identify_target().
//
// Sources (read, not copied):
//  - family ids: libdrm include/drm/amdgpu_drm.h AMDGPU_FAMILY_AI = 141,
//    AMDGPU_FAMILY_NV = 143; Mesa src/amd/addrlib/src/amdgpu_asic_addr.h
//    FAMILY_NV3 = 0x91 (145, Navi 3x; libdrm 2.4.114 has no constant for it).
//  - revision ranges [lo, hi): amdgpu_asic_addr.h AMDGPU_VEGA10_RANGE ..
//    AMDGPU_NAVI33_RANGE.
//  - Aldebaran (MI200, gfx90a): Linux drivers/gpu/drm/amd/amdgpu/soc15.c sets
//    external_rev_id = rev_id + 0x3c for CHIP_ALDEBARAN, past Vega 20's range
//    (addrlib no longer lists the Instinct parts).
//  - the gfx target of each chip (gfx1030 = Navi 21, ...): the descriptions of
//    Gentoo's amdgpu_targets_gfx* USE flags (packages.gentoo.org/useflags).
#include "gfx_target.hpp"

#include <cstdio>

namespace sparkle::amdgpu {
namespace {

struct Row {
  uint32_t family;
  uint32_t rev_lo, rev_hi;  // lo <= chip_external_rev < hi
  const char* target;
  const char* chip;
};

constexpr uint32_t kFamilyAi = 141;   // Vega and Instinct (gfx9)
constexpr uint32_t kFamilyNv = 143;   // Navi 1x and 2x (gfx10.1, gfx10.3)
constexpr uint32_t kFamilyNv3 = 145;  // Navi 3x (gfx11)

constexpr Row kRows[] = {
    {kFamilyAi, 0x01, 0x14, "gfx900", "Vega 10"},
    {kFamilyAi, 0x14, 0x28, "gfx904", "Vega 12"},
    {kFamilyAi, 0x28, 0x31, "gfx906", "Vega 20"},
    {kFamilyAi, 0x3C, 0x100, "gfx90a", "Aldebaran (MI200)"},
    {kFamilyNv, 0x01, 0x0A, "gfx1010", "Navi 10"},
    {kFamilyNv, 0x0A, 0x14, "gfx1011", "Navi 12"},
    {kFamilyNv, 0x14, 0x28, "gfx1012", "Navi 14"},
    {kFamilyNv, 0x28, 0x32, "gfx1030", "Navi 21"},
    {kFamilyNv, 0x32, 0x3C, "gfx1031", "Navi 22"},
    {kFamilyNv, 0x3C, 0x46, "gfx1032", "Navi 23"},
    {kFamilyNv, 0x46, 0x50, "gfx1034", "Navi 24"},
    {kFamilyNv3, 0x01, 0x10, "gfx1100", "Navi 31"},
    {kFamilyNv3, 0x10, 0x20, "gfx1102", "Navi 33"},
    {kFamilyNv3, 0x20, 0x100, "gfx1101", "Navi 32"},
};

std::string hex(uint32_t v) {
  char out[16];
  std::snprintf(out, sizeof out, "0x%x", v);
  return out;
}

}  // namespace

const char* generation_name(Generation g) {
  switch (g) {
    case Generation::Gfx9:
      return "gfx9";
    case Generation::Gfx10_3:
      return "gfx10.3";
    case Generation::Gfx11:
      return "gfx11";
  }
  return "?";
}

std::optional<Generation> generation_of(const std::string& target) {
  if (target.rfind("gfx9", 0) == 0 && target.size() == 6) return Generation::Gfx9;
  if (target.rfind("gfx103", 0) == 0 && target.size() == 7) return Generation::Gfx10_3;
  if (target.rfind("gfx11", 0) == 0 && target.size() == 7) return Generation::Gfx11;
  return std::nullopt;
}

std::optional<GfxTarget> identify_target(uint32_t family_id, uint32_t chip_external_rev,
                                         uint32_t gfx_ip_major, std::string* why) {
  for (const Row& r : kRows) {
    if (r.family != family_id || chip_external_rev < r.rev_lo || chip_external_rev >= r.rev_hi)
      continue;
    const std::string target = r.target;
    const auto gen = generation_of(target);
    if (!gen) {
      *why = target + " (" + r.chip + ") is gfx10.1; this backend drives gfx9, gfx10.3 and gfx11";
      return std::nullopt;
    }
    const uint32_t major = *gen == Generation::Gfx9 ? 9u : *gen == Generation::Gfx10_3 ? 10u : 11u;
    if (gfx_ip_major != major) {
      *why = "family " + std::to_string(family_id) + " revision " + hex(chip_external_rev) +
             " looks like " + target + " but the GFX hw-ip version is " +
             std::to_string(gfx_ip_major) + ".x, not " + std::to_string(major) + ".x";
      return std::nullopt;
    }
    return GfxTarget{target, *gen, r.chip};
  }
  *why = "family " + std::to_string(family_id) + " revision " + hex(chip_external_rev) +
         " (GFX hw-ip " + std::to_string(gfx_ip_major) +
         ".x) is not a GPU this backend knows (gfx9 Vega/MI200, gfx10.3 Navi 2x, gfx11 Navi 3x)";
  return std::nullopt;
}

}  // namespace sparkle::amdgpu
