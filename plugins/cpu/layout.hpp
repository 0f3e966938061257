// Activation layouts of CPU tensors: dense NCHW, or channels blocked by the
// vector width (nChw16c for AVX-512, nChw8c for AVX2), which the JIT and
// Winograd kernels read and write directly. A blocked tensor pads C up to a
// multiple of the block with zeros; every kernel that writes one keeps the
// padded lanes zero, so the next layer's full-width vector loads see zeros.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sparkle::cpu {

struct Layout {
  int block = 0;  // channels per block; 0: dense row-major
  int64_t n = 1, c = 1, h = 1, w = 1;

  bool blocked() const { return block > 0; }
  int64_t blocks() const { return blocked() ? (c + block - 1) / block : c; }
  int64_t elements() const { return n * c * h * w; }
  // Floats of storage (padding lanes included).
  int64_t storage() const { return blocked() ? n * blocks() * h * w * block : elements(); }
  // Storage index of the dense (row-major NCHW) element e.
  int64_t index(int64_t e) const;
  bool same_as(const Layout& o) const {
    return block == o.block && n == o.n && c == o.c && h == o.h && w == o.w;
  }
};

// Whole-tensor conversions, parallel over (image, channel block).
void to_blocked(const Layout& l, const float* dense, float* blocked);
void to_dense(const Layout& l, const float* blocked, float* dense);
// Dense elements [first, first + count) between dense memory and storage.
void write_dense_range(const Layout& l, float* storage, int64_t first, int64_t count,
                       const float* src);
void read_dense_range(const Layout& l, const float* storage, int64_t first, int64_t count,
                      float* dst);

}  // namespace sparkle::cpu
