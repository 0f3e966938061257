// What the CPU backend tells the engine about the host processor.
#pragma once

#include <sparkle/plugin.hpp>

namespace sparkle::cpu {

// Model name, thread count, ISA flags and a fingerprint of all of them.
plugin::DeviceEntry describe_host_cpu();

}  // namespace sparkle::cpu
