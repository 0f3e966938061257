#!/usr/bin/env bash
# By hand, not in CI: the failures of issue #11 (hostile input, broken
# plugins, memory, CLI), each run the way it was found, against one build
# tree. Prints exit status, seconds, peak RSS and the first stderr lines of
# each. docs/RELIABILITY.md has the results before and after the fixes.
#   usage: tools/hostile_recheck.sh BUILD_DIR   (BIG_ENTRY=1G for a smaller cache file)
# The 64x512x224x224 case needs 13 GB and is only run against builds that
# refuse it (those with the host budget check); an older build would be
# killed by the OOM killer at ~19 GB, along with whatever else it takes.
set -u
B=$(realpath "$1")
R=$B/tools/sparkle-run/sparkle-run
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
export SPARKLE_PLUGIN_PATH=$B/plugins/cpu:$B/plugins/opengl
src=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d /tmp/sparkle-recheck.XXXXXX); cd $W
export SPARKLE_CACHE_DIR=$W/cache
run() {  # run NAME CMD...
  local name=$1; shift
  /usr/bin/time -o $W/time -f "%e s, %M KB" timeout 60 "$@" > $W/out 2> $W/err
  local rc=$?
  printf '== %-34s rc=%-3s %s\n' "$name" "$rc" "$(cat $W/time | tail -1)"
  grep -v "^Command exited" $W/err | head -${LINES_SHOWN:-3} | cut -c1-220 | sed 's/^/   err: /'
}
python3 - <<'PY'
import struct
def npy(path, header, body):
    header += " " * ((64 - (12 + len(header) + 1) % 64) % 64) + "\n"
    open(path, "wb").write(b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header)) + header.encode("latin1") + body)
f4 = struct.pack("<4f", 1, 2, 3, 4)
npy("big.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2, 2" + " " * 40000 + "), }", f4)
npy("big3.npy", "{'descr': '" + "<" * 40000 + "', 'fortran_order': False, 'shape': (1, 1, 2, 2), }", f4)
npy("decoy.npy", "{'extra': \"'descr': '<f4'\", 'descr': '>f4', 'fortran_order': False, 'shape': (1, 1, 2, 2), }", struct.pack(">4f", 1, 2, 3, 4))
npy("newline.npy", "{'descr': '<f8\nsparkle-run: error: fake', 'fortran_order': False, 'shape': (1, 1, 2, 2), }", bytes(32))
npy("x.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 8, 2, 2), }", bytes(128))
npy("w.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2, 1, 1), }", bytes(32))
open("utf8.shapes", "wb").write(b"l\xe9yer\xff 4 6 6 4 3 3 1 1 2\n")
open("huge.shapes", "w").write("huge 65536 1 1 65536 3 3 1 1 1\n")
PY
echo "#### 1. .npy headers"
run "40 KB header (spaces in shape)" $R conv2d --input big.npy --filter 1,1,1 --device cpu --repeat 1
run "40 KB header (40 KB descr)" $R conv2d --input big3.npy --filter 1,1,1 --device cpu --repeat 1
run "decoy descr" $R conv2d --input decoy.npy --filter 1,1,1 --device cpu --repeat 1
LINES_SHOWN=4 run "newline in header" $R conv2d --input newline.npy --filter 1,1,1 --device cpu
echo "#### 2. plugins in a searched folder"
P=$W/plugins; mkdir -p $P
cp $B/plugins/cpu/libsparkle-cpu.so $P/libsparkle-trunc.so; truncate -s 100000 $P/libsparkle-trunc.so
SPARKLE_PLUGIN_PATH=$P:$SPARKLE_PLUGIN_PATH run "truncated .so: devices" $R devices
rm $P/*
# Unresolved symbol: a plugin that calls a function nobody defines, in init.
cat > $W/unres.cpp <<'CPP'
#include <sparkle/plugin.h>
#include <cstring>
extern "C" int symbol_nobody_defines();
static size_t zero() { return 0; }
static sparkle_status init(const sparkle_host_services*) { return symbol_nobody_defines() ? nullptr : nullptr; }
extern "C" SPARKLE_PLUGIN_EXPORT const sparkle_plugin* sparkle_plugin_entry(uint32_t) {
  static sparkle_plugin d;
  std::memset(&d, 0, sizeof d);
  d.struct_size = sizeof d; d.abi_version = SPARKLE_PLUGIN_ABI_VERSION; d.name = "unres";
  d.init = &init; d.device_count = &zero;
  void* never = reinterpret_cast<void*>(&zero);
  d.device_info = (decltype(d.device_info))never; d.open_device = (decltype(d.open_device))never;
  d.close_device = (decltype(d.close_device))never; d.supports_conv2d = (decltype(d.supports_conv2d))never;
  d.buffer_create = (decltype(d.buffer_create))never; d.buffer_destroy = (decltype(d.buffer_destroy))never;
  d.buffer_upload = (decltype(d.buffer_upload))never; d.buffer_download = (decltype(d.buffer_download))never;
  d.plan_conv2d = (decltype(d.plan_conv2d))never; d.plan_destroy = (decltype(d.plan_destroy))never;
  d.enqueue_conv2d = (decltype(d.enqueue_conv2d))never; d.fence_poll = (decltype(d.fence_poll))never;
  d.fence_wait = (decltype(d.fence_wait))never; d.fence_destroy = (decltype(d.fence_destroy))never;
  return &d;
}
CPP
g++ -std=c++20 -shared -fPIC -I"$src/include" $W/unres.cpp -o $P/libsparkle-unres.so
SPARKLE_PLUGIN_PATH=$P:$SPARKLE_PLUGIN_PATH run "unresolved symbol: devices" $R devices
rm $P/*
mkfifo $P/libsparkle-x.so
SPARKLE_PLUGIN_PATH=$P:$SPARKLE_PLUGIN_PATH run "FIFO plugin: devices (60 s limit)" $R devices
rm $P/*
ln -s $P/nowhere.so $P/libsparkle-dangling.so; ln -s $P/libsparkle-loop.so $P/libsparkle-loop.so
SPARKLE_PLUGIN_PATH=$P:$SPARKLE_PLUGIN_PATH run "dangling + looping links: devices" $R devices
grep -c "dangling\|loop" $W/out | sed 's/^/   rows naming them: /'
echo "#### 3. validation"
run "stride 2^32 on opengl" $R conv2d --shape 1,2,5,5 --filter 3,3,3 --stride 4294967296 --device opengl --check --repeat 1
fails=0; for i in $(seq 10); do SPARKLE_CACHE_DIR=$W/fresh$i timeout 60 $R conv2d --shape 1,2,5,5 --filter 3,3,3 --stride 4294967296 --pad 4294967296 --dilation 4294967296 --check --repeat 1 >/dev/null 2>&1 || fails=$((fails+1)); done
echo "== auto, 10 fresh caches: $fails failed"
echo "#### 4. memory"
LINES_SHOWN=0 run "CPU, dilation 5e7, 1x4x4x8 output" $R conv2d --shape 1,2,4,8 --filter 4,2,1 --dilation 50000000,1 --pad 25000000,0 --device cpu --check --repeat 1
SIZE=${BIG_ENTRY:-3G}
mkdir -p $W/cache/programs
SPARKLE_CACHE_DIR=$W/c1 $R conv2d --shape 1,4,8,8 --filter 4,3,3 --device opengl --repeat 1 >/dev/null 2>&1
for f in $W/c1/programs/*.blob; do truncate -s $SIZE $f; done
SPARKLE_CACHE_DIR=$W/c1 run "cache entries of $SIZE each" $R conv2d --shape 1,4,8,8 --filter 4,3,3 --device opengl --repeat 1 --check
# Only a sparkle-run with the budget check (it came with --problem) refuses it.
if $R conv2d --help | grep -q -- --problem; then
  run "64x512x224x224 (limit 8 GB)" env SPARKLE_HOST_MEMORY_LIMIT=8000000000 $R conv2d --shape 64,512,224,224 --filter 512,3,3 --pad 1
  run "64x512x224x224 --check (real memory)" $R conv2d --shape 64,512,224,224 --filter 512,3,3 --pad 1 --check
fi
run "bench with huge weights" $R bench --shapes huge.shapes
echo "#### 5. CLI"
run "--pad 0 1" $R conv2d --shape 1,3,8,8 --filter 4,3,3 --pad 0 1 --repeat 1
run "--repeat ' 1'" $R conv2d --shape 1,3,8,8 --filter 4,3,3 --repeat " 1"
run "--repeat '+1'" $R conv2d --shape 1,3,8,8 --filter 4,3,3 --repeat "+1"
run "--repeat '8 '" $R conv2d --shape 1,3,8,8 --filter 4,3,3 --repeat "8 "
$R bench --shapes utf8.shapes --repeat 1 --warmup 0 --json --quiet > $W/bench.json 2>/dev/null
python3 -c "import sys,json; json.loads(open(sys.argv[1],'rb').read().decode('utf-8')); print('== bench --json with a Latin-1 layer name: valid UTF-8 JSON')" $W/bench.json 2>&1 | tail -1
echo "#### UBSan cases (meaningful in an ASan+UBSan build)"
run "stride 2^32 x 2^32 (cost model)" $R conv2d --shape 1,2,5,5 --filter 3,3,3 --stride 4294967296 --device cpu --repeat 1
run "weights C/groups * groups overflow" $R conv2d --input x.npy --weights w.npy --groups 4611686018427387904
rm -rf "$W"
