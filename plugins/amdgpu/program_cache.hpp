// The code objects compiled at build time (clang-16 + ld.lld-16, one per
// target of the amdgpu_targets meson option, embedded in the plugin) become
// loaded programs through the same two cache levels as every other program
// (docs/CACHE.md):
//  1. a per-device LiveCache of loaded programs: a hit is reported as
//     SPARKLE_CACHE_MEMORY_HIT;
//  2. the host's blob store (ABI 1.1): the payload is the parsed, checked
//     program (code_object.hpp serialize), so a disk hit skips ELF, note and
//     descriptor parsing (SPARKLE_CACHE_DISK_HIT). A payload that does not
//     deserialise or does not match is rejected (blob_reject) and reloaded.
// Otherwise the embedded ELF is parsed and checked ("compiling" it is that
// load: SPARKLE_CACHE_COMPILE) and the result stored with blob_put. Either
// way the image is then uploaded to a GPU buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <sparkle/live_cache.hpp>
#include <string>
#include <vector>

#include "code_object.hpp"
#include "device_core.hpp"

namespace sparkle::amdgpu {

struct EmbeddedCodeObject {
  const char* target;  // "gfx1100"
  const uint8_t* data;
  size_t size;
};

// Generated at build time (embed_code_objects.py).
std::span<const EmbeddedCodeObject> embedded_code_objects();
// A hash over every embedded object: part of the plugin's build id.
const char* embedded_code_hash();
// The clang flags the objects were built with (part of the blob key).
const char* kernel_compile_flags();

// nullptr when the build has no object for the target.
const EmbeddedCodeObject* embedded_code_object(const std::string& target);
// "gfx1100, gfx1030, gfx90a" for messages.
std::string embedded_target_list();

// The plugin's build id (backend.cpp).
const char* plugin_build_id();

// A code object loaded into GPU memory.
struct LoadedProgram {
  CodeObject code;
  std::shared_ptr<GpuBo> image;  // code.image at image->va(), relocations applied
  uint64_t entry_va(const Kernel& k) const { return image->va() + k.code_vaddr; }
};

class ProgramCache {
 public:
  explicit ProgramCache(std::shared_ptr<DeviceCore> core);
  // The program for the device's target. Throws plugin::Error when the
  // build has no code object for it or loading fails.
  std::shared_ptr<const LoadedProgram> program();

 private:
  std::shared_ptr<LoadedProgram> build(const EmbeddedCodeObject& embedded);

  std::shared_ptr<DeviceCore> core_;
  LiveCache<std::string, const LoadedProgram> live_;
};

// Parses an embedded object (what a blob-store miss does); exposed for tests.
CodeObject load_embedded(const EmbeddedCodeObject& embedded);

}  // namespace sparkle::amdgpu
