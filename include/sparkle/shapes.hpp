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

// A oneDNN benchdnn convolution problem, e.g. "mb1ic64ih56oc64kh3ph1" or
// "g32mb8ic32ih112oc32oh112kh3ph1n\"mobilenet:dw\"": keys g mb ic ih iw oc
// oh ow kh kw sh sw ph pw dh dw and n"name", '_' allowed between them, with
// benchdnn's defaults (mb 2, square sizes when one is given, stride 1,
// dilation counted from 0, padding derived from oh/ow when those are given).
// The layer's name is the n"..." part, else the text. Throws
// Error(invalid_argument) naming the key at fault.
Layer parse_benchdnn_conv(const std::string& text);

// A benchdnn batch file: problems and options, '#' comments; --mb, --dir
// (FWD_B adds the bias), --dt/--cfg f32, --attr-post-ops=relu, --reset and
// --batch=FILE (included, relative to this file) are understood, algorithm
// and layout hints ignored, anything else refused. batch_override > 0
// replaces every problem's mb.
std::vector<Layer> read_benchdnn_batch(const std::string& path, int64_t batch_override = 0);

// Parses "A" or "A,B" or ... into exactly `want` values (1 value repeated
// for all). Throws naming `field` on junk.
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& field,
                                    const std::vector<size_t>& allowed_counts);

}  // namespace sparkle
