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
// order, rank via expected_rank when > 0, truncated body).
NpyArray read_npy(const std::string& path, int expected_rank = 0);
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data);

}  // namespace sparkle
