// Launch planning for the kernels in shaders/amdgpu (see launch.hpp).
#include "launch.hpp"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <sparkle/plugin.hpp>
#include <string>

namespace sparkle::amdgpu {
namespace {

using plugin::Error;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
// Work-groups along x before the direct kernel's grid folds into y.
constexpr uint64_t kMaxGroupsX = 1u << 20;
// The most items one copy launch covers (the kernels index with uint).
constexpr uint64_t kMaxCopyItems = 1ull << 31;

uint32_t u32(int64_t v) { return static_cast<uint32_t>(static_cast<int32_t>(v)); }

void add_conv_args(Launch& l, const sparkle_conv2d_desc& d) {
  l.args.push_back({"x", Operand::X, 0, 0});
  l.args.push_back({"w", Operand::W, 0, 0});
  l.args.push_back({"bias", Operand::Bias, 0, 0});
  l.args.push_back({"y", Operand::Y, 0, 0});
  const std::pair<const char*, int64_t> values[] = {
      {"n", d.n},
      {"c", d.c},
      {"h", d.h},
      {"iw", d.w},
      {"k", d.k},
      {"r", d.r},
      {"s", d.s},
      {"out_h", d.out_h},
      {"out_w", d.out_w},
      {"stride_h", d.stride_h},
      {"stride_w", d.stride_w},
      {"pad_top", d.pad_top},
      {"pad_left", d.pad_left},
      {"dilation_h", d.dilation_h},
      {"dilation_w", d.dilation_w},
      {"groups", d.groups},
      {"has_bias", d.has_bias != 0 ? 1 : 0},
      {"relu", d.relu != 0 ? 1 : 0},
  };
  for (const auto& [name, v] : values) l.args.push_back({name, Operand::Value, u32(v), 0});
}

}  // namespace

const LaunchArg* Launch::arg(const std::string& name) const {
  for (const auto& a : args)
    if (a.name == name) return &a;
  return nullptr;
}

const char* conv2d_kernel_name(Conv2dKernel k) {
  return k == Conv2dKernel::Direct ? "conv2d_direct" : "conv2d_tiled";
}

KernelChoice kernel_choice_from_env() {
  const char* v = std::getenv("SPARKLE_AMDGPU_KERNEL");
  if (v == nullptr || *v == '\0' || std::string(v) == "auto") return KernelChoice::Auto;
  if (std::string(v) == "direct") return KernelChoice::Direct;
  if (std::string(v) == "tiled") return KernelChoice::Tiled;
  throw Error(SPARKLE_INVALID_ARGUMENT,
              std::string("SPARKLE_AMDGPU_KERNEL=") + v + " must be auto, direct or tiled");
}

void check_conv2d_limits(const sparkle_conv2d_desc& d) {
  const std::pair<const char*, int64_t> fields[] = {{"n", d.n},
                                                    {"c", d.c},
                                                    {"h", d.h},
                                                    {"w", d.w},
                                                    {"k", d.k},
                                                    {"r", d.r},
                                                    {"s", d.s},
                                                    {"stride_h", d.stride_h},
                                                    {"stride_w", d.stride_w},
                                                    {"pad_top", d.pad_top},
                                                    {"pad_left", d.pad_left},
                                                    {"dilation_h", d.dilation_h},
                                                    {"dilation_w", d.dilation_w},
                                                    {"groups", d.groups},
                                                    {"out_h", d.out_h},
                                                    {"out_w", d.out_w}};
  for (const auto& [name, v] : fields)
    if (v < 0 || v > kInt32Max)
      throw Error(SPARKLE_UNSUPPORTED, std::string("amdgpu kernels take 32-bit sizes; ") + name +
                                           "=" + std::to_string(v) + " does not fit");
  // Index arithmetic inside the kernels (ints): pixels per image, the
  // reduction length, padded input coordinates.
  const int64_t pixels = d.out_h * d.out_w;
  if (pixels > (int64_t{1} << 30))
    throw Error(SPARKLE_UNSUPPORTED,
                "amdgpu kernels: out_h*out_w=" + std::to_string(pixels) + " exceeds 2^30");
  const int64_t reduction = (d.c / d.groups) * d.r * d.s;
  if (reduction > (int64_t{1} << 30))
    throw Error(SPARKLE_UNSUPPORTED,
                "amdgpu kernels: (c/groups)*r*s=" + std::to_string(reduction) + " exceeds 2^30");
  if ((d.out_h - 1) * d.stride_h + (d.r - 1) * d.dilation_h > kInt32Max ||
      (d.out_w - 1) * d.stride_w + (d.s - 1) * d.dilation_w > kInt32Max)
    throw Error(SPARKLE_UNSUPPORTED, "amdgpu kernels: input coordinates exceed 32 bits");
  const uint64_t total =
      static_cast<uint64_t>(d.n) * static_cast<uint64_t>(d.k) * static_cast<uint64_t>(pixels);
  if ((total + kGroupSize - 1) / kGroupSize > kMaxGroupsX * 0xFFFFFFFFull)
    throw Error(SPARKLE_UNSUPPORTED, "amdgpu kernels: output does not fit the grid");
}

Conv2dKernel choose_conv2d_kernel(const sparkle_conv2d_desc& d, KernelChoice choice) {
  if (choice == KernelChoice::Direct) return Conv2dKernel::Direct;
  if (choice == KernelChoice::Tiled) return Conv2dKernel::Tiled;
  // The tiled kernel reads each weight once per 64 pixels instead of once
  // per pixel; it pays off when a group has enough output channels to fill
  // much of its 8-channel tile and the image fills much of a 64-pixel block.
  const int64_t kg = d.k / d.groups;
  return kg >= 4 && d.out_h * d.out_w >= 32 ? Conv2dKernel::Tiled : Conv2dKernel::Direct;
}

Launch plan_conv2d(const sparkle_conv2d_desc& d, Conv2dKernel kernel) {
  check_conv2d_limits(d);
  Launch l;
  l.kernel = conv2d_kernel_name(kernel);
  add_conv_args(l, d);
  if (kernel == Conv2dKernel::Direct) {
    const uint64_t total =
        static_cast<uint64_t>(d.n * d.k) * static_cast<uint64_t>(d.out_h * d.out_w);
    const uint64_t groups = (total + kGroupSize - 1) / kGroupSize;
    const uint64_t gx = std::min(groups, kMaxGroupsX);
    const uint64_t gy = (groups + gx - 1) / gx;
    l.groups[0] = static_cast<uint32_t>(gx);
    l.groups[1] = static_cast<uint32_t>(gy);
    l.args.push_back({"groups_x", Operand::Value, static_cast<uint32_t>(gx), 0});
  } else {
    const int64_t kg = d.k / d.groups;
    const int64_t k_blocks = (kg + kTileK - 1) / kTileK;
    const uint64_t gy = static_cast<uint64_t>(d.groups * k_blocks);
    if (gy > 0xFFFFFFFFull || static_cast<uint64_t>(d.n) > 0xFFFFFFFFull)
      throw Error(SPARKLE_UNSUPPORTED, "conv2d_tiled: grid y or z exceeds 2^32");
    l.groups[0] = static_cast<uint32_t>((d.out_h * d.out_w + kGroupSize - 1) / kGroupSize);
    l.groups[1] = static_cast<uint32_t>(gy);
    l.groups[2] = static_cast<uint32_t>(d.n);
    l.args.push_back({"k_blocks_per_group", Operand::Value, u32(k_blocks), 0});
  }
  return l;
}

std::vector<Launch> plan_copy(uint64_t src_offset, uint64_t dst_offset, uint64_t bytes) {
  std::vector<Launch> out;
  const bool words = src_offset % 4 == 0 && dst_offset % 4 == 0 && bytes % 4 == 0;
  const uint64_t unit = words ? 4 : 1;
  const uint64_t items = bytes / unit;
  for (uint64_t done = 0; done < items;) {
    const uint64_t n = std::min(items - done, kMaxCopyItems);
    Launch l;
    l.kernel = words ? "copy_words" : "copy_bytes";
    l.groups[0] = static_cast<uint32_t>((n + kGroupSize - 1) / kGroupSize);
    l.args.push_back({"src", Operand::Src, 0, src_offset + done * unit});
    l.args.push_back({"dst", Operand::Dst, 0, dst_offset + done * unit});
    l.args.push_back({"count", Operand::Value, static_cast<uint32_t>(n), 0});
    out.push_back(std::move(l));
    done += n;
  }
  return out;
}

}  // namespace sparkle::amdgpu
