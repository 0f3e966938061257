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
# shellcheck disable=SC2046
$cxx -std=c++20 -O1 "$src/tests/out_of_tree/embed.cpp" -o "$work/embed" \
  $(pkg-config --cflags --libs sparkle) -Wl,-rpath,"$root/lib"
plugindir=$(pkg-config --variable=plugindir sparkle-plugin)
echo "plugin dir from pkg-config: $plugindir"
# shellcheck disable=SC2046
$cxx -std=c++20 -O1 -shared -fPIC -fvisibility=hidden "$src/tests/out_of_tree/example_plugin.cpp" \
  $(pkg-config --cflags sparkle-plugin) -o "$plugindir/libsparkle-example.so"

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
echo "install test passed"
