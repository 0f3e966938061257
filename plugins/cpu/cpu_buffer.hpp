// CPU device memory: host memory that may alias a caller's array (dense), or
// a tensor kept in a blocked channel layout (layout.hpp). Every upload,
// download and copy through the plugin ABI sees dense row-major data; the
// conversion happens here, so convolutions on blocked tensors never do it.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <sparkle/plugin.hpp>
#include <string>

#include "layout.hpp"

namespace sparkle::cpu {

class HostBuffer final : public plugin::Buffer {
 public:
  // Dense memory of `bytes`.
  explicit HostBuffer(size_t bytes);
  // A tensor in `layout` (dense or blocked); zero-filled, so padding lanes
  // of a blocked tensor start (and stay) zero.
  explicit HostBuffer(const Layout& layout);
  // Caller memory, dense, not owned.
  HostBuffer(void* host, size_t bytes);

  void upload(size_t offset, const void* src, size_t bytes) override;
  void download(size_t offset, void* dst, size_t bytes) override;
  // Blocked storage has no dense address to hand out.
  void* map() override { return layout_.blocked() ? nullptr : data_; }
  size_t size() const override { return bytes_; }

  float* data() { return data_; }
  size_t bytes() const { return bytes_; }
  const Layout& layout() const { return layout_; }

  // A device-side copy of dense bytes [src_offset, +bytes) of src into
  // [dst_offset, +bytes) of this buffer, whatever the two layouts.
  void copy_from(HostBuffer& src, size_t src_offset, size_t dst_offset, size_t bytes);

 private:
  void check(size_t offset, size_t bytes, const char* what) const;
  std::unique_ptr<float[]> owned_;
  float* data_;
  size_t bytes_;  // logical (dense) size
  Layout layout_;
};

// The block a new activation tensor of dims (N, C, H, W) gets on this CPU
// (SPARKLE_CPU_ISA's vector width, or 0: dense), see cpu_buffer.cpp.
int tensor_block(int64_t c);

}  // namespace sparkle::cpu
