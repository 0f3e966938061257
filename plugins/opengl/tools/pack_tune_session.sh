#!/usr/bin/env bash
# Builds what tune_session.sh needs on the GPU machine, on this (Debian)
# machine: a release build with the tests, packed by
# ../shared/device/pack-for-device.sh into .devpkg, plus the two OpenGL test
# programs (tests are not installed). Then prints the device command.
#   usage (repository root): plugins/opengl/tools/pack_tune_session.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../../.."
build=${1:-build-rel}
pack=${PACK_FOR_DEVICE:-../shared/device/pack-for-device.sh}
[[ -x $pack ]] || pack=/work/shared/device/pack-for-device.sh
if [[ ! -f $build/build.ninja ]]; then
  meson setup "$build" --buildtype=release >/dev/null
fi
ninja -C "$build" -j"${JOBS:-2}" >/dev/null
"$pack" "$build" .devpkg
cp "$build/tests/opengl/gl_variant_space_test" "$build/tests/opengl/opengl_plugin_test" .devpkg/
[[ -d .gl ]] || echo "note: .gl (the GL loader debs) is missing: run ../shared/device/fetch-gl-debs.sh"
cat <<'CMD'
device command (carry: [".gl", ".devpkg"], timeout_s 600):
  for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; source .devpkg/env.sh; plugins/opengl/tools/tune_session.sh $OUT
CMD
