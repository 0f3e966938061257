// The CPU queue (see cpu_queue.hpp).
#include "cpu_queue.hpp"

#include <string>

#include "cpu_buffer.hpp"

namespace sparkle::cpu {

using plugin::Error;

namespace {
HostBuffer* host_buffer(plugin::Buffer* b, const char* what) {
  auto* h = dynamic_cast<HostBuffer*>(b);
  if (h == nullptr) throw Error(SPARKLE_INVALID_ARGUMENT, std::string(what) + " buffer is missing");
  return h;
}
}  // namespace

std::unique_ptr<plugin::Fence> CpuQueue::write(plugin::Buffer* dst, size_t offset, const void* src,
                                               size_t bytes, plugin::WaitList waits) {
  HostBuffer* to = host_buffer(dst, "write");
  if (offset > to->bytes() || bytes > to->bytes() - offset)
    throw Error(SPARKLE_INVALID_ARGUMENT,
                "write of " + std::to_string(bytes) + " bytes at offset " + std::to_string(offset) +
                    " exceeds the buffer's " + std::to_string(to->bytes()));
  return push(waits, [=] { to->upload(offset, src, bytes); });
}

std::unique_ptr<plugin::Fence> CpuQueue::read(plugin::Buffer* src, size_t offset, void* dst,
                                              size_t bytes, plugin::WaitList waits) {
  HostBuffer* from = host_buffer(src, "read");
  if (offset > from->bytes() || bytes > from->bytes() - offset)
    throw Error(SPARKLE_INVALID_ARGUMENT, "read of " + std::to_string(bytes) + " bytes at offset " +
                                              std::to_string(offset) + " exceeds the buffer's " +
                                              std::to_string(from->bytes()));
  return push(waits, [=] { from->download(offset, dst, bytes); });
}

std::unique_ptr<plugin::Fence> CpuQueue::copy(plugin::Buffer* src, size_t src_offset,
                                              plugin::Buffer* dst, size_t dst_offset, size_t bytes,
                                              plugin::WaitList waits) {
  HostBuffer* from = host_buffer(src, "copy source");
  HostBuffer* to = host_buffer(dst, "copy destination");
  if (src_offset > from->bytes() || bytes > from->bytes() - src_offset ||
      dst_offset > to->bytes() || bytes > to->bytes() - dst_offset)
    throw Error(SPARKLE_INVALID_ARGUMENT, "copy of " + std::to_string(bytes) +
                                              " bytes exceeds a buffer (source " +
                                              std::to_string(from->bytes()) + ", destination " +
                                              std::to_string(to->bytes()) + " bytes)");
  return push(waits, [=] { to->copy_from(*from, src_offset, dst_offset, bytes); });
}

}  // namespace sparkle::cpu
