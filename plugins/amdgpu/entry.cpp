// Entry point of libsparkle-amdgpu.so.
#include <sparkle/plugin.hpp>

#include "backend.hpp"
#include "program_cache.hpp"

SPARKLE_DEFINE_PLUGIN(sparkle::amdgpu::AmdBackend, "amdgpu", SPARKLE_AMDGPU_VERSION,
                      sparkle::amdgpu::plugin_build_id())
