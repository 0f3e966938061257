// Compiles GLSL compute programs once per (context, kernel, source).
#include "program_cache.hpp"

#include <vector>

namespace sparkle::opengl {

using plugin::Error;

namespace {

std::string shader_log(const GladGLContext& gl, GLuint shader) {
  GLint len = 0;
  gl.GetShaderiv(shader, GL_INFO_LOG_LENGTH, &len);
  std::vector<char> log(static_cast<size_t>(len > 0 ? len : 1), '\0');
  gl.GetShaderInfoLog(shader, static_cast<GLsizei>(log.size()), nullptr, log.data());
  return log.data();
}

std::string program_log(const GladGLContext& gl, GLuint program) {
  GLint len = 0;
  gl.GetProgramiv(program, GL_INFO_LOG_LENGTH, &len);
  std::vector<char> log(static_cast<size_t>(len > 0 ? len : 1), '\0');
  gl.GetProgramInfoLog(program, static_cast<GLsizei>(log.size()), nullptr, log.data());
  return log.data();
}

}  // namespace

GLuint compile_program(GlContext& ctx, const std::string& kernel_name, const std::string& source) {
  auto& programs = ctx.program_map();
  const std::string key = kernel_name + '\n' + source;
  if (auto it = programs.find(key); it != programs.end()) return it->second;

  const auto& gl = ctx.gl();
  GLuint shader = gl.CreateShader(GL_COMPUTE_SHADER);
  const char* text = source.c_str();
  gl.ShaderSource(shader, 1, &text, nullptr);
  gl.CompileShader(shader);
  GLint ok = 0;
  gl.GetShaderiv(shader, GL_COMPILE_STATUS, &ok);
  if (ok == 0) {
    std::string log = shader_log(gl, shader);
    gl.DeleteShader(shader);
    clear_gl_errors(gl);
    throw Error(SPARKLE_DEVICE_ERROR, "kernel " + kernel_name + ": GLSL compile failed on " +
                                          ctx.info().renderer + ": " + log);
  }
  GLuint program = gl.CreateProgram();
  gl.AttachShader(program, shader);
  gl.LinkProgram(program);
  gl.DeleteShader(shader);
  gl.GetProgramiv(program, GL_LINK_STATUS, &ok);
  if (ok == 0) {
    std::string log = program_log(gl, program);
    gl.DeleteProgram(program);
    clear_gl_errors(gl);
    throw Error(SPARKLE_DEVICE_ERROR, "kernel " + kernel_name + ": GLSL link failed on " +
                                          ctx.info().renderer + ": " + log);
  }
  check_gl(gl, ("building kernel " + kernel_name).c_str());
  programs.emplace(key, program);
  return program;
}

}  // namespace sparkle::opengl
