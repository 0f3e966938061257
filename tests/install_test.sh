#!/usr/bin/env bash
# Installs the build into a DESTDIR, then builds an out-of-tree program and an
# out-of-tree plugin against it through pkg-config only, drops the plugin
# into the installed plugin folder and shows that both the embedding program
# and the installed sparkle-run load it. Nothing here uses the build tree.
#   usage: install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(realpath "$1")
src=$(realpath "$2")
work=$(mktemp -d /tmp/sparkle-install-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
# meson test points LD_LIBRARY_PATH at the build tree; the installed tree must
# stand on its own.
unset SPARKLE_PLUGIN_PATH SPARKLE_DEVICE LD_LIBRARY_PATH

meson install -C "$build" --no-rebuild --quiet --destdir "$work/dest"
# Move the tree somewhere else: it must be relocatable.
prefix=$(meson introspect "$build" --buildoptions |
  python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
mv "$work/dest$prefix" "$work/moved"
root="$work/moved"
export PKG_CONFIG_PATH="$root/lib/pkgconfig"

cxx=${CXX:-c++}
export CXX=$cxx

echo "--- the README's embedding example, built and run exactly as written there"
# The first cpp block after "## Embedding" is app.cpp; the sh block after it
# is the command line.
python3 - "$src/README.md" "$work/readme" <<'PY'
import os, re, sys
text = open(sys.argv[1]).read()
section = text[text.index("## Embedding"):]
blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
code = next(b for lang, b in blocks if lang == "cpp")
command = next(b for lang, b in blocks if lang == "sh")
os.makedirs(sys.argv[2])
open(os.path.join(sys.argv[2], "app.cpp"), "w").write(code)
open(os.path.join(sys.argv[2], "build.sh"), "w").write(command.replace("c++ ", "$CXX ", 1))
PY
(cd "$work/readme" && bash -e build.sh)

# shellcheck disable=SC2046
$cxx -std=c++20 -O1 "$src/tests/out_of_tree/embed.cpp" -o "$work/embed" \
  $(pkg-config --cflags --libs sparkle) -Wl,-rpath,"$(pkg-config --variable=libdir sparkle)"
plugindir=$(pkg-config --variable=plugindir sparkle-plugin)
echo "plugin dir from pkg-config: $plugindir"
# The README's plugin recipe, -Wl,--no-undefined included.
# shellcheck disable=SC2046
$cxx -std=c++20 -O1 -shared -fPIC -fvisibility=hidden -Wl,--no-undefined \
  "$src/tests/out_of_tree/example_plugin.cpp" \
  $(pkg-config --cflags sparkle-plugin) -o "$plugindir/libsparkle-example.so"
# ... which turns an undefined vtable into a build error (it used to build and
# then fail to load with a misleading errno text).
cat > "$work/novtable.cpp" <<'CPP'
#include <sparkle/plugin.hpp>
struct Half : sparkle::plugin::Backend {
  std::vector<sparkle::plugin::DeviceEntry> devices() override;  // never defined
  std::unique_ptr<sparkle::plugin::Device> open_device(size_t) override { return nullptr; }
};
SPARKLE_DEFINE_PLUGIN(Half, "half", "1.0", "half-1")
CPP
# shellcheck disable=SC2046
if $cxx -std=c++20 -shared -fPIC -fvisibility=hidden -Wl,--no-undefined "$work/novtable.cpp" \
    $(pkg-config --cflags sparkle-plugin) -o "$work/libsparkle-half.so" 2>"$work/novtable.log"; then
  echo "a plugin with an undefined vtable linked despite -Wl,--no-undefined" >&2
  exit 1
fi
grep -q "undefined reference" "$work/novtable.log"
# pkg-config no longer forces a language standard on the consumer.
if pkg-config --cflags sparkle | grep -q -- "-std="; then
  echo "pkg-config --cflags sparkle forces -std" >&2
  exit 1
fi

echo "--- embedding program"
"$work/embed"
echo "--- installed sparkle-run"
"$root/bin/sparkle-run" devices | tee "$work/devices.txt"
grep -q "^  loaded   .*libsparkle-example.so \[example 1.0\]" "$work/devices.txt"
grep -q "^  example:0  simulated  out-of-tree example backend" "$work/devices.txt"
"$root/bin/sparkle-run" conv2d --shape 2,4,9,7 --filter 6,3,3 --pad 1 --groups 2 --bias-random \
  --device example --check --repeat 1
"$root/bin/sparkle-run" conv2d --shape 1,8,16,16 --filter 8,3,3 --pad 1 --device cpu --check \
  --repeat 1

echo "--- the same program and plugin through CMake (find_package(sparkle))"
rm "$plugindir/libsparkle-example.so"
cmake -S "$src/tests/out_of_tree" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$root" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/cmake" >/dev/null
cp "$work/cmake/libsparkle-example.so" "$plugindir/"
"$work/cmake/embed"
"$root/bin/sparkle-run" devices | grep -q "^  loaded   .*libsparkle-example.so \[example 1.0\]"

echo "--- installed programs, docs, man page and completion"
if [ -x "$root/bin/sparkle-bench-onednn" ]; then
  # It once had no RUNPATH (exit 127) and a default shapes file in the source tree.
  "$root/bin/sparkle-bench-onednn" --help | tee "$work/onednn-help.txt"
  grep -q "Default shapes: $root/share/sparkle/shapes/resnet50_v1_5.shapes" "$work/onednn-help.txt"
fi
for f in CLI.md ENVIRONMENT.md RELIABILITY.md PLUGINS.md README.md; do
  test -f "$root/share/doc/sparkle/$f"
done
"$root/bin/sparkle-run" --help | grep -q "$root/share/doc/sparkle/ENVIRONMENT.md"
"$root/bin/sparkle-run" --help | grep -q -- "--version"
test -f "$root/share/man/man1/sparkle-run.1"
if command -v man >/dev/null; then man -l "$root/share/man/man1/sparkle-run.1" | grep -q -- "--batch-file"; fi
bash -c "source '$root/share/bash-completion/completions/sparkle-run'
  COMP_WORDS=(sparkle-run conv2d --che); COMP_CWORD=2; _sparkle_run
  [ \"\${COMPREPLY[*]}\" = --check ]"
test -f "$root/lib/cmake/sparkle/sparkleConfig.cmake"
echo "install test passed"
