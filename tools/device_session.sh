#!/usr/bin/env bash
# One batched measurement session on the GPU test machine (H200 or H100 +
# 16 CPU cores), covering the executor (resident tensors, streams against
# PyTorch's pipeline), the OpenGL race (vs cuDNN), the program cache's warm
# start, the auto-selector against the per-layer oracle, and the CPU vs
# oneDNN.
# Full logs go to OUT/logs.tgz, the summary to OUT/summary.txt.
#   usage (repository root, after `source .devpkg/env.sh`):
#     tools/device_session.sh OUT [STEP...]
#   steps: exec exectest gl cache select cpu cputest (default all)
set -uo pipefail
dest=${1:?usage: device_session.sh OUT [STEP...]}
shift
steps=${*:-exec exectest gl cache select cpu cputest}
has() { [[ " $steps " == *" $1 "* ]]; }  # whole step names: "cpu" is not "cputest"
logs=$(mktemp -d)
mkdir -p "$dest"
export XDG_RUNTIME_DIR=$(mktemp -d)
export SPARKLE_CACHE_DIR=$(mktemp -d)
summary="$logs/summary.txt"
save() { tar czf "$dest/logs.tgz" -C "$logs" . ; cp "$summary" "$dest/summary.txt"; }
step() {  # name timeout command...: runs it, logs everything, notes exit and time
  local name=$1 limit=$2
  shift 2
  local t0=$EPOCHREALTIME
  echo "\$ $*" > "$logs/$name.txt"
  timeout "$limit" "$@" >> "$logs/$name.txt" 2>&1
  local rc=$?
  local t1=$EPOCHREALTIME
  printf '%-28s exit %3d  %7.2f s\n' "$name" "$rc" \
    "$(python3 -c "print($t1 - $t0)")" >> "$summary"
  save
  return $rc
}
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nproc;
  grep -m1 'model name' /proc/cpuinfo; } > "$summary" 2>&1
step devices 60 sparkle-run devices

plugins=$(dirname "$(command -v sparkle-run)")/../lib/sparkle/plugins

# The executor's tests on the real GPU: EGL syncs, mapped staging and
# transfer queues on shared contexts (llvmpipe in CI has no concurrency).
# The test program is copied into .devpkg by hand (tests are not installed).
if has exectest && command -v executor_test > /dev/null; then
  for tq in on off; do
    SPARKLE_PLUGIN_PATH=$plugins SPARKLE_TEST_DEVICES=opengl:0,cpu:0 SPARKLE_GL_TRANSFER_QUEUES=$tq \
      step "executor-test-transfer-$tq" 300 executor_test
  done
fi

if has exec; then
  step resident-b32 300 sparkle-run bench --resident --suite resnet50 --batch 32 --device opengl \
    --repeat 10 --json
  step resident-b1 300 sparkle-run bench --resident --suite resnet50 --batch 1 --device opengl \
    --repeat 10 --json
  step host-b32 300 sparkle-run bench --suite resnet50 --batch 32 --device opengl --repeat 3 \
    --timer wall --json
  # res2_2b and res4b_2b, 64 batches each, copy and direct transfers, each
  # beside PyTorch's 3-stream pipeline; res2_2b b32 once more with the
  # transfer queues on contexts of their own.
  for layer in "res2_2b 64,56,56 64,3,3" "res4b_2b 256,14,14 256,3,3"; do
    set -- $layer
    for b in 8 32; do
      step "stream-$1-b$b" 200 sparkle-run stream --shape "$b,$2" --filter "$3" --pad 1 \
        --batches 64 --slots 3 --device opengl --transfer both --json
      PYTHONUNBUFFERED=1 step "torch-stream-$1-b$b" 200 python3 bench/torch_stream.py \
        --shape "$b,$2" --filter "$3" --pad 1 --batches 64 --slots 3 --rounds 3
    done
  done
  SPARKLE_GL_TRANSFER_QUEUES=on step stream-res2_2b-b32-transfer-contexts 200 sparkle-run stream \
    --shape 32,64,56,56 --filter 64,3,3 --pad 1 --batches 64 --slots 3 --device opengl --json
  step select-resident-b32 600 python3 tools/selector_oracle.py sparkle-run --suite resnet50 \
    --batch 32 --resident --repeat 5
fi

if has cache; then
  # Time to first result, cold then warm cache, two processes in a row.
  for i in 1 2; do
    step "warmstart-$i" 120 sparkle-run conv2d --shape 32,256,56,56 --filter 64,1,1 \
      --device opengl --repeat 1 --warmup 0 --stats --output "$logs/y$i.npy"
  done
  cmp "$logs/y1.npy" "$logs/y2.npy" && echo "warm start output bit-identical" >> "$summary"
  grep -h '"cache"' "$logs"/warmstart-*.txt >> "$summary"
  rm -f "$logs"/y*.npy
  step cache-warm-resnet50-b32 200 sparkle-run cache warm --suite resnet50 --batch 32 --device opengl
  step cache-stats 30 sparkle-run cache stats
fi

if has gl; then
  step gl-b32 200 sparkle-run bench --suite resnet50 --batch 32 --device opengl --repeat 5 --json
  step gl-b1 120 sparkle-run bench --suite resnet50 --batch 1 --device opengl --repeat 5 --json
  SPARKLE_GL_KERNEL=naive step gl-naive-b32 300 sparkle-run bench --suite resnet50 --batch 32 \
    --device opengl --repeat 3 --json
  PYTHONUNBUFFERED=1 step cudnn 200 python3 bench/cudnn_reference.py bench/resnet50_v1_5.shapes \
    --batch 1 32
fi

if has select; then
  for b in 1 32; do
    step "select-resnet50-b$b" 400 python3 tools/selector_oracle.py sparkle-run --suite resnet50 \
      --batch "$b" --repeat 3
  done
  step select-tiny 200 python3 tools/selector_oracle.py sparkle-run --shapes bench/tiny.shapes \
    --batch 1 --repeat 5
fi

if has cpu && command -v sparkle-bench-onednn > /dev/null; then
  # Both GEMM orientations with constant weights (as oneDNN's weights are
  # reordered once), then the pixel orientation reading weights per call.
  for b in 1 8; do
    for v in pixels channels; do
      SPARKLE_CPU_VECTORIZE=$v step "onednn-b$b-$v" 300 sparkle-bench-onednn \
        --shapes bench/resnet50_v1_5.shapes --batch "$b" --repeat 5 --rounds 3 \
        --json "$logs/onednn-b$b-$v.json"
    done
  done
  step onednn-b1-per-call 300 sparkle-bench-onednn --shapes bench/resnet50_v1_5.shapes --batch 1 \
    --repeat 5 --rounds 3 --weights per-call --json "$logs/onednn-b1-per-call.json"
  grep -h "total ratio" "$logs"/onednn-*.txt >> "$summary"
fi

# The CPU conformance suite on every ISA this CPU has (AVX-512 cannot run on
# the build machine), with packed weights and both orientations. The test
# programs are copied into .devpkg by hand (tests are not installed).
if has cputest && command -v conformance_test > /dev/null; then
  for isa in avx512 avx2 portable; do
    for v in pixels channels; do
      SPARKLE_PLUGIN_PATH=$plugins SPARKLE_TEST_DEVICES=cpu SPARKLE_CPU_ISA=$isa \
        SPARKLE_CPU_VECTORIZE=$v SPARKLE_TEST_CONSTANT_WEIGHTS=1 \
        step "conformance-$isa-$v" 300 conformance_test
      SPARKLE_PLUGIN_PATH=$plugins SPARKLE_CPU_ISA=$isa SPARKLE_CPU_VECTORIZE=$v \
        step "cpu-paths-$isa-$v" 300 cpu_paths_test
    done
  done
fi

for f in "$logs"/gl-*.txt; do
  [[ -f $f ]] || continue
  echo "$(basename "$f"): $(tail -n 1 "$f" | python3 -c 'import json,sys
try:
  d=json.loads(sys.stdin.read()); print("total %.3f ms, %.2f TFLOPS" % (d["total_ms"], d["total_gflops"]/1e3))
except Exception as e: print("no JSON:", e)')" >> "$summary"
done
grep -h "auto total" "$logs"/select-*.txt >> "$summary" 2>/dev/null
for f in "$logs"/resident-*.txt "$logs"/host-*.txt; do
  [[ -f $f ]] || continue
  echo "$(basename "$f"): $(tail -n 1 "$f" | python3 -c 'import json,sys
try:
  d=json.loads(sys.stdin.read()); p=d.get("pass")
  print("per layer: wall %.3f ms, kernels %.3f ms" % (d["total_wall_ms"], d["total_kernel_ms"])
        + ("; network pass: wall %.3f ms, kernels %.3f ms, ratio %.3f" % (p["wall_ms"], p["kernel_ms"], p["wall_ms"] / p["kernel_ms"]) if p else ""))
except Exception as e: print("no JSON:", e)')" >> "$summary"
done
for f in "$logs"/stream-*.txt; do
  [[ -f $f ]] || continue
  echo "$(basename "$f"): $(tail -n 1 "$f" | python3 -c 'import json,sys
try:
  d=json.loads(sys.stdin.read())
  print("sync %.3f, bound %.3f, " % (d["synchronous"]["ms_per_batch"], d["bound_ms"]) + ", ".join(
    "%s/%s %.3f (%.2fx bound)" % (p["transfer"], p["memory"], p["ms_per_batch"], p["over_bound"]) for p in d["pipelined"])
    + ("" if d["outputs_identical"] else " MISMATCH"))
except Exception as e: print("no JSON:", e)')" >> "$summary"
done
grep -h "pipelined\|^stages" "$logs"/torch-stream-*.txt >> "$summary" 2>/dev/null
save
cat "$summary"
