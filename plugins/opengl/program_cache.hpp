// The one place GLSL becomes a GL program. Programs are kept per context in
// memory, keyed by kernel name and full source; a disk cache can hook in here.
#pragma once

#include <string>

#include "gl_context.hpp"

namespace sparkle::opengl {

// GL thread only. Returns the linked program for (kernel_name, source),
// compiling it on first use. Throws plugin::Error(SPARKLE_DEVICE_ERROR) with
// the kernel name and the driver's info log when compile or link fails.
GLuint compile_program(GlContext& ctx, const std::string& kernel_name, const std::string& source);

}  // namespace sparkle::opengl
