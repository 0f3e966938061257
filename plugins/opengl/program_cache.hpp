// The one place GLSL becomes a GL program, through two cache levels (see
// docs/CACHE.md):
//  1. the context's LiveCache of shared Programs (capacity 256, or
//     SPARKLE_GL_PROGRAM_CACHE_CAPACITY): a hit is reported to the host as
//     SPARKLE_CACHE_MEMORY_HIT; concurrent misses on one key build once;
//  2. the host's blob store (ABI 1.1, when the host offers it and the driver
//     has program binary formats): a binary loaded with glProgramBinary is a
//     SPARKLE_CACHE_DISK_HIT; a binary the driver refuses is rejected
//     (blob_reject) and the program compiled again.
// Otherwise the program is compiled from source (SPARKLE_CACHE_COMPILE) and
// its binary stored with blob_put.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "gl_context.hpp"

namespace sparkle::opengl {

// A linked GL program. It may be released on any thread; glDeleteProgram
// always runs on the context's GL thread, after work already queued there.
class Program {
 public:
  Program(GlContext& ctx, GLuint id) : ctx_(&ctx), id_(id) {}
  ~Program();
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;
  GLuint id() const { return id_; }

 private:
  GlContext* ctx_;  // outlives the program: plans hold the context
  GLuint id_;
};

using ProgramPtr = std::shared_ptr<Program>;

// Any thread but the context's GL thread (a miss runs GL work there and
// waits for it). Returns the linked program for (kernel_name, source). Throws
// plugin::Error(SPARKLE_DEVICE_ERROR) with the kernel name and the driver's
// info log when compile or link fails; a failure is not cached.
ProgramPtr compile_program(GlContext& ctx, const std::string& kernel_name,
                           const std::string& source);

// Entries the per-context LiveCache keeps beyond those in use: 256, or
// SPARKLE_GL_PROGRAM_CACHE_CAPACITY (0 to 2^24; throws plugin::Error naming
// it otherwise).
size_t program_cache_capacity();

// The device part of the blob key: the device's one fingerprint
// (gl_fingerprint: vendor, renderer, version and binary formats).
std::string program_device_fingerprint(const GlInfo& info);

// The plugin's build id (backend.cpp): changes whenever generated code may.
const char* plugin_build_id();

}  // namespace sparkle::opengl
