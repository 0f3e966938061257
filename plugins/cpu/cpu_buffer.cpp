// CPU buffers and their layout-aware transfers (see cpu_buffer.hpp).
#include "cpu_buffer.hpp"

#include <cstdlib>
#include <vector>

#include "isa.hpp"

namespace sparkle::cpu {

using plugin::Error;

HostBuffer::HostBuffer(size_t bytes)
    : owned_(new float[(bytes + 3) / 4]), data_(owned_.get()), bytes_(bytes) {
  layout_.n = static_cast<int64_t>((bytes + 3) / 4);
}

HostBuffer::HostBuffer(const Layout& layout)
    : owned_(new float[static_cast<size_t>(layout.storage())]()),
      data_(owned_.get()),
      bytes_(static_cast<size_t>(layout.elements()) * sizeof(float)),
      layout_(layout) {}

HostBuffer::HostBuffer(void* host, size_t bytes) : data_(static_cast<float*>(host)), bytes_(bytes) {
  layout_.n = static_cast<int64_t>((bytes + 3) / 4);
}

void HostBuffer::check(size_t offset, size_t bytes, const char* what) const {
  if (offset > bytes_ || bytes > bytes_ - offset)
    throw Error(SPARKLE_INVALID_ARGUMENT, std::string(what) + " of " + std::to_string(bytes) +
                                              " bytes at offset " + std::to_string(offset) +
                                              " exceeds buffer of " + std::to_string(bytes_));
  if (layout_.blocked() && (offset % sizeof(float) != 0 || bytes % sizeof(float) != 0))
    throw Error(SPARKLE_INVALID_ARGUMENT,
                std::string(what) + " of a tensor must cover whole floats (offset " +
                    std::to_string(offset) + ", " + std::to_string(bytes) + " bytes)");
}

void HostBuffer::upload(size_t offset, const void* src, size_t bytes) {
  check(offset, bytes, "upload");
  if (!layout_.blocked()) {
    std::memcpy(reinterpret_cast<char*>(data_) + offset, src, bytes);
  } else if (offset == 0 && bytes == bytes_) {
    to_blocked(layout_, static_cast<const float*>(src), data_);
  } else {
    write_dense_range(layout_, data_, static_cast<int64_t>(offset / 4),
                      static_cast<int64_t>(bytes / 4), static_cast<const float*>(src));
  }
}

void HostBuffer::download(size_t offset, void* dst, size_t bytes) {
  check(offset, bytes, "download");
  if (!layout_.blocked()) {
    std::memcpy(dst, reinterpret_cast<const char*>(data_) + offset, bytes);
  } else if (offset == 0 && bytes == bytes_) {
    to_dense(layout_, data_, static_cast<float*>(dst));
  } else {
    read_dense_range(layout_, data_, static_cast<int64_t>(offset / 4),
                     static_cast<int64_t>(bytes / 4), static_cast<float*>(dst));
  }
}

void HostBuffer::copy_from(HostBuffer& src, size_t src_offset, size_t dst_offset, size_t bytes) {
  src.check(src_offset, bytes, "copy source");
  check(dst_offset, bytes, "copy destination");
  if (!layout_.blocked()) {
    src.download(src_offset, reinterpret_cast<char*>(data_) + dst_offset, bytes);
  } else if (!src.layout_.blocked()) {
    upload(dst_offset, reinterpret_cast<const char*>(src.data_) + src_offset, bytes);
  } else if (layout_.same_as(src.layout_) && src_offset == 0 && dst_offset == 0 &&
             bytes == bytes_) {
    std::memcpy(data_, src.data_, static_cast<size_t>(layout_.storage()) * sizeof(float));
  } else {
    std::vector<float> dense(bytes / 4);
    src.download(src_offset, dense.data(), bytes);
    upload(dst_offset, dense.data(), bytes);
  }
}

int tensor_block(int64_t c) {
  // A tensor with fewer channels than one vector stays dense: padding 3
  // channels (an RGB input) to 16 would multiply its size by 5, and the
  // kernels read dense input directly.
  Isa isa;
  try {
    isa = selected_isa();
  } catch (const Error&) {
    return 0;  // planning reports the bad SPARKLE_CPU_ISA; memory stays dense
  }
  int v = 0;
  if (isa == Isa::avx512) v = 16;
  if (isa == Isa::avx2) v = 8;
  if (const char* env = std::getenv("SPARKLE_CPU_LAYOUT"); env != nullptr && *env != '\0') {
    const std::string want = env;
    if (want == "nchw") return 0;
    if (want != "blocked" && want != "auto")
      throw Error(SPARKLE_INVALID_ARGUMENT,
                  "SPARKLE_CPU_LAYOUT=" + want + " is unknown; use auto, blocked or nchw");
  }
  return v > 0 && c >= v ? v : 0;
}

}  // namespace sparkle::cpu
