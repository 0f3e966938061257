// Reading and writing NumPy .npy files: little-endian float32, C order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparkle {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// Throws sparkle::Error naming the file and what is wrong with it (dtype,
// order, rank via expected_rank when > 0, truncated body). Only float32
// little-endian ('<f4') is read as is; with cast, float64 and big-endian
// files ('<f8', '>f8', '>f4') are converted to float32 (rounded to nearest,
// out-of-range values become +-inf), as numpy's astype(float32) does.
NpyArray read_npy(const std::string& path, int expected_rank = 0, bool cast = false);
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data);

}  // namespace sparkle
