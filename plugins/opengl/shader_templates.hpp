// GLSL templates from shaders/, embedded at build time by embed_shaders.py.
#pragma once

namespace sparkle::opengl {

// Template text by file name ("conv2d_tiled.comp"), or nullptr.
const char* shader_template(const char* name);
// Hash of the templates and the code generator: part of the plugin build id.
const char* shader_build_id();

}  // namespace sparkle::opengl
