#!/usr/bin/env bash
# One-command set-up for a fresh Debian 12 machine (see README.md):
#   tools/setup.sh demo   install what is missing, build, install into
#                         ./_install and run a sparkle-run demo on the
#                         auto-selected device
#   tools/setup.sh test   install what is missing, build with -Werror, run
#                         every test suite, then again under AddressSanitizer
#                         + UndefinedBehaviorSanitizer, the concurrency tests
#                         under ThreadSanitizer, and the libFuzzer targets for
#                         a bounded time; ends with the line "N passed, N failed"
# Safe to run again: it installs only missing packages and reuses builds.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-demo}

packages=(
  meson ninja-build pkg-config g++ cmake git python3 file
  libboost-dev libboost-program-options-dev libtbb-dev doctest-dev
  python3-glad libegl-dev libegl1 libegl-mesa0 libgl1-mesa-dri libdrm-dev
  libdnnl-dev nettle-dev nlohmann-json3-dev libxxhash-dev libxbyak-dev
  clang-16 lld-16 llvm-16 ocl-icd-opencl-dev opencl-headers pocl-opencl-icd
  clang-14 libclang-rt-14-dev
)

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# Mesa warns on every context without a runtime dir.
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d /tmp/sparkle-xdg.XXXXXX)}

configure() {  # configure DIR ARGS...
  local dir=$1
  shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

# Prints "N passed, N failed[, N skipped]" from meson's JSON test logs.
summarise() {
  python3 - "$@" <<'PY'
import json, sys
passed = failed = skipped = 0
for log in sys.argv[1:]:
    for line in open(log):
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print("%d passed, %d failed" % (passed, failed) + (", %d skipped" % skipped if skipped else ""))
PY
}

case "$mode" in
  demo)
    install_missing
    configure build-release --buildtype=release --prefix="$PWD/_install" -Dtests=false
    ninja -C build-release
    meson install -C build-release --quiet
    run=_install/bin/sparkle-run
    echo "== devices"
    "$run" devices
    echo "== one 3x3 convolution on the auto-selected device, checked against the reference"
    "$run" conv2d --shape 1,64,56,56 --filter 64,3,3 --pad 1 --bias-random --relu --check
    echo "== ResNet-50 v1.5, batch 1, auto-selected device"
    "$run" bench --suite resnet50 --batch 1 --repeat 3
    ;;
  test)
    install_missing
    status=0
    configure build-ci --buildtype=debugoptimized -Dwerror=true
    ninja -C build-ci
    meson test -C build-ci --print-errorlogs --num-processes 2 || status=1
    logs=(build-ci/meson-logs/testlog.json)
    if [ "${SPARKLE_SKIP_SANITIZERS:-0}" != 1 ]; then
      # ASan + UBSan over the same suites (bad input included). Leaks inside
      # Mesa's llvmpipe are not ours: tests/sanitizer/lsan.supp lists them.
      # At -O0: -O1 ran the tests 10% faster but took 4 minutes longer to
      # build on the 2-core machine. The oneDNN bench has no tests.
      configure build-asan --buildtype=debug -Dwerror=true -Db_sanitize=address,undefined \
        -Db_lundef=false -Donednn=disabled
      ninja -C build-asan
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      LSAN_OPTIONS=suppressions=$PWD/tests/sanitizer/lsan.supp \
        meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 4 \
        --no-suite install || status=1
      logs+=(build-asan/meson-logs/testlog.json)
      # ThreadSanitizer over the concurrency tests (16 threads on the program
      # cache, 8 on one engine). oneTBB is not instrumented: tsan.supp hides
      # only races whose stack runs through libtbb. GL is left out: Mesa is
      # not instrumented either. So is amdgpu: GCC's TSan refuses its
      # atomic_thread_fence (-Werror=tsan), and it has no device here.
      configure build-tsan --buildtype=debugoptimized -Dwerror=true -Db_sanitize=thread \
        -Db_lundef=false -Dopengl=disabled -Donednn=disabled -Damdgpu=disabled
      ninja -C build-tsan
      TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/tests/sanitizer/tsan.supp" \
        meson test -C build-tsan --print-errorlogs --num-processes 2 --timeout-multiplier 4 \
        --suite threads || status=1
      logs+=(build-tsan/meson-logs/testlog.json)
      # libFuzzer (clang, ASan + UBSan) on the .npy, shapes-file and
      # cache-entry readers, SPARKLE_FUZZ_SECONDS (default 20) each. Only the
      # fuzz targets are built with clang; --no-rebuild keeps meson test from
      # building the rest of the project with it.
      CC=clang-14 CXX=clang++-14 configure build-fuzz --buildtype=debugoptimized -Dwerror=true \
        -Dfuzzers=true -Dtests=false -Dopengl=disabled -Donednn=disabled \
        -Db_sanitize=address,undefined -Db_lundef=false
      ninja -C build-fuzz tests/fuzz/fuzz_npy tests/fuzz/fuzz_shapes tests/fuzz/fuzz_cache_entry
      meson test -C build-fuzz --print-errorlogs --no-rebuild --suite fuzz || status=1
      logs+=(build-fuzz/meson-logs/testlog.json)
    fi
    summarise "${logs[@]}"
    exit $status
    ;;
  *)
    echo "usage: tools/setup.sh demo|test" >&2
    exit 2
    ;;
esac
