// Conversions between dense NCHW and blocked channels (see layout.hpp).
#include "layout.hpp"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>

namespace sparkle::cpu {

int64_t Layout::index(int64_t e) const {
  if (!blocked()) return e;
  const int64_t hw = h * w;
  const int64_t p = e % hw;
  const int64_t nc = e / hw;
  const int64_t ch = nc % c, img = nc / c;
  return ((img * blocks() + ch / block) * hw + p) * block + ch % block;
}

void to_blocked(const Layout& l, const float* dense, float* blocked) {
  if (!l.blocked()) {
    std::memcpy(blocked, dense, static_cast<size_t>(l.elements()) * sizeof(float));
    return;
  }
  const int64_t hw = l.h * l.w, cb = l.blocks(), v = l.block;
  tbb::parallel_for(int64_t{0}, l.n * cb, [&](int64_t job) {
    const int64_t img = job / cb, b = job % cb;
    float* out = blocked + job * hw * v;
    const int64_t lanes = std::min<int64_t>(v, l.c - b * v);
    const float* in = dense + (img * l.c + b * v) * hw;
    for (int64_t p0 = 0; p0 < hw; p0 += 64) {
      const int64_t p1 = std::min(hw, p0 + 64);
      for (int64_t p = p0; p < p1; ++p) {
        float* o = out + p * v;
        for (int64_t lane = 0; lane < lanes; ++lane) o[lane] = in[lane * hw + p];
        for (int64_t lane = lanes; lane < v; ++lane) o[lane] = 0.0f;
      }
    }
  });
}

void to_dense(const Layout& l, const float* blocked, float* dense) {
  if (!l.blocked()) {
    std::memcpy(dense, blocked, static_cast<size_t>(l.elements()) * sizeof(float));
    return;
  }
  const int64_t hw = l.h * l.w, cb = l.blocks(), v = l.block;
  tbb::parallel_for(int64_t{0}, l.n * cb, [&](int64_t job) {
    const int64_t img = job / cb, b = job % cb;
    const float* in = blocked + job * hw * v;
    const int64_t lanes = std::min<int64_t>(v, l.c - b * v);
    float* out = dense + (img * l.c + b * v) * hw;
    for (int64_t lane = 0; lane < lanes; ++lane) {
      float* o = out + lane * hw;
      for (int64_t p = 0; p < hw; ++p) o[p] = in[p * v + lane];
    }
  });
}

void write_dense_range(const Layout& l, float* storage, int64_t first, int64_t count,
                       const float* src) {
  if (!l.blocked()) {
    std::memcpy(storage + first, src, static_cast<size_t>(count) * sizeof(float));
    return;
  }
  for (int64_t i = 0; i < count; ++i) storage[l.index(first + i)] = src[i];
}

void read_dense_range(const Layout& l, const float* storage, int64_t first, int64_t count,
                      float* dst) {
  if (!l.blocked()) {
    std::memcpy(dst, storage + first, static_cast<size_t>(count) * sizeof(float));
    return;
  }
  for (int64_t i = 0; i < count; ++i) dst[i] = storage[l.index(first + i)];
}

}  // namespace sparkle::cpu
