#!/usr/bin/env python3
"""Runs Debian's glad 2 offline and flattens its output into one folder.

Meson outputs cannot live in sub-folders, so glad/gl.h becomes glad_gl.h
(and so on) and the #include lines are rewritten to match.
usage: generate.py GLAD OUTDIR
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

RENAMES = {
    'include/glad/gl.h': 'glad_gl.h',
    'include/glad/egl.h': 'glad_egl.h',
    'include/KHR/khrplatform.h': 'glad_khrplatform.h',
    'include/EGL/eglplatform.h': 'glad_eglplatform.h',
    'src/gl.c': 'glad_gl.c',
    'src/egl.c': 'glad_egl.c',
}
INCLUDES = {
    '<glad/gl.h>': '"glad_gl.h"',
    '<glad/egl.h>': '"glad_egl.h"',
    '<KHR/khrplatform.h>': '"glad_khrplatform.h"',
    '<EGL/eglplatform.h>': '"glad_eglplatform.h"',
}
# Only what the OpenGL backend uses: keeps gl.h and the build small.
EXTENSIONS = [
    'EGL_EXT_client_extensions', 'EGL_EXT_device_base', 'EGL_EXT_device_enumeration',
    'EGL_EXT_device_query', 'EGL_EXT_device_drm', 'EGL_EXT_platform_base',
    'EGL_EXT_platform_device', 'EGL_MESA_platform_surfaceless', 'EGL_KHR_create_context',
    'EGL_KHR_surfaceless_context', 'EGL_KHR_no_config_context', 'EGL_KHR_platform_gbm',
    'GL_KHR_shader_subgroup', 'GL_NV_gpu_shader5', 'GL_ARB_gl_spirv',
    'GL_KHR_parallel_shader_compile', 'GL_ARB_parallel_shader_compile',
]


def main():
    glad, outdir = sys.argv[1], pathlib.Path(sys.argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [glad, '--quiet', '--reproducible', '--api', 'gl:core=4.5,egl=1.5',
               '--extensions', ','.join(EXTENSIONS), '--out-path', tmp, 'c', '--loader',
               '--mx']
        subprocess.run(cmd, check=True)
        for src, dst in RENAMES.items():
            text = pathlib.Path(tmp, src).read_text()
            for old, new in INCLUDES.items():
                text = text.replace('#include ' + old, '#include ' + new)
            tmp_out = outdir / (dst + '.tmp')
            tmp_out.write_text(text)
            os.replace(tmp_out, outdir / dst)
    return 0


if __name__ == '__main__':
    sys.exit(main())
