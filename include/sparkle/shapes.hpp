// Benchmark shape files: one convolution layer per line,
//   name C H W K R S stride pad count [groups=G] [dilation=DH,DW]
//                                     [stride=SH,SW] [pad=PT,PL,PB,PR]
// '#' starts a comment. The optional fields override the columns.
#pragma once

#include <sparkle/conv2d.hpp>
#include <string>
#include <vector>

namespace sparkle {

struct Layer {
  std::string name;
  Conv2dDesc desc;    // n is the batch given to the reader
  int64_t count = 1;  // how many times the network runs this layer
};

// Throws sparkle::Error(invalid_argument) with "FILE:LINE: ..." for a bad line.
std::vector<Layer> read_shapes_file(const std::string& path, int64_t batch);
std::vector<Layer> parse_shapes(const std::string& text, const std::string& origin, int64_t batch);

// Parses "A" or "A,B" or ... into exactly `want` values (1 value repeated
// for all). Throws naming `field` on junk.
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& field,
                                    const std::vector<size_t>& allowed_counts);

}  // namespace sparkle
