// libFuzzer target: the shapes-file parser and the benchdnn problem parser
// on arbitrary text, and what the engine derives from each layer they
// accept (output size, FLOPs, the selector's signature), so that a
// descriptor that passes validation but overflows later is found too.
#include <cstdint>
#include <sparkle/error.hpp>
#include <sparkle/shapes.hpp>
#include <string>
#include <vector>

#include "select/cost_model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The first byte picks the batch, so that batch-dependent overflows are reached.
  const int64_t batches[] = {1, 32, int64_t{1} << 31, int64_t{1} << 62};
  const int64_t batch = batches[data[0] % 4];
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    // Bit 2 of the first byte picks the reader: shapes file or benchdnn problem.
    const std::vector<sparkle::Layer> layers =
        data[0] & 4 ? std::vector<sparkle::Layer>{sparkle::parse_benchdnn_conv(text)}
                    : sparkle::parse_shapes(text, "fuzz", batch);
    for (const sparkle::Layer& l : layers) {
      const sparkle::Conv2dDesc& d = l.desc;
      if (d.out_h() <= 0 || d.out_w() <= 0) __builtin_trap();  // validate() promised this
      (void)d.output_elements();
      (void)d.to_string();
      (void)d.to_c();
      (void)sparkle::select::signature_of(d);
    }
  } catch (const sparkle::Error&) {
  }
  return 0;
}
