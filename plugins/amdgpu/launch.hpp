// What runs for an operation: the kernel of shaders/amdgpu, its grid and
// every argument by name. The AMDGPU path writes these into kernarg memory
// at the offsets the code object's metadata gives; the PoCL conformance test
// sets the same arguments through OpenCL, so the arithmetic checked on the
// CPU is the arithmetic of exactly these launches.
#pragma once

#include <sparkle/plugin.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sparkle::amdgpu {

// Work-items per group of every kernel (SPK_GROUP_SIZE in the .cl files) and
// output channels per work-item of conv2d_tiled (SPK_TILE_K).
constexpr uint32_t kGroupSize = 64;
constexpr uint32_t kTileK = 8;

enum class Operand { X, W, Bias, Y, Src, Dst, Value };

struct LaunchArg {
  std::string name;
  Operand operand = Operand::Value;
  uint32_t value = 0;        // Operand::Value: the 32-bit argument
  uint64_t byte_offset = 0;  // buffers: added to the buffer's address
};

struct Launch {
  std::string kernel;
  uint32_t groups[3] = {1, 1, 1};
  uint32_t group_size[3] = {kGroupSize, 1, 1};
  std::vector<LaunchArg> args;

  const LaunchArg* arg(const std::string& name) const;
};

enum class Conv2dKernel { Direct, Tiled };
const char* conv2d_kernel_name(Conv2dKernel k);  // "conv2d_direct", "conv2d_tiled"

// SPARKLE_AMDGPU_KERNEL: "auto" (or unset), "direct" or "tiled". Anything
// else throws plugin::Error(SPARKLE_INVALID_ARGUMENT) naming the variable.
enum class KernelChoice { Auto, Direct, Tiled };
KernelChoice kernel_choice_from_env();

// Throws plugin::Error(SPARKLE_UNSUPPORTED) when a size does not fit the
// kernels' 32-bit index arithmetic or the 32-bit grid.
void check_conv2d_limits(const sparkle_conv2d_desc& d);

Conv2dKernel choose_conv2d_kernel(const sparkle_conv2d_desc& d, KernelChoice choice);

// The launch of y = conv(x, w) + bias on a kernel.
Launch plan_conv2d(const sparkle_conv2d_desc& d, Conv2dKernel kernel);

// dst[dst_offset..+bytes) = src[src_offset..+bytes): copy_words when both
// offsets and the size are multiples of 4, else copy_bytes; split into
// several launches when one would exceed 2^31 items.
std::vector<Launch> plan_copy(uint64_t src_offset, uint64_t dst_offset, uint64_t bytes);

}  // namespace sparkle::amdgpu
