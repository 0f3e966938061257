#!/usr/bin/env bash
# One batched measurement session on the GPU machine (see docs/OPENGL.md):
# device listing, the plugin tests on real hardware, sparkle-run bench for
# the auto choice, the naive kernel and a sweep of forced tile shapes, and
# the PyTorch/cuDNN strict-FP32 reference. Full logs go to $OUT; a summary
# table is printed last.
#   usage (repository root, after sourcing .devpkg/env.sh):
#     plugins/opengl/tools/gpu_session.sh OUTDIR [TILE...]
set -uo pipefail
dest=${1:?usage: gpu_session.sh OUTDIR [TILE...]}
shift
tiles=("$@")
# Logs are kept in a scratch folder and re-packed into OUTDIR/logs.tgz after
# every step, so a run cut short still returns what it did (the device tool
# returns at most 8 files).
out=$(mktemp -d)
save() { tar czf "$dest/logs.tgz" -C "$out" . ; cp "$out/summary.txt" "$dest/" 2>/dev/null; }
mkdir -p "$dest"
plugin=$(dirname "$(command -v sparkle-run)")/../lib/sparkle/plugins/libsparkle-opengl.so
shapes=bench/resnet50_v1_5.shapes

{ date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv; } \
  > "$out/machine.txt" 2>&1
sparkle-run devices > "$out/devices.txt" 2>&1
save

if [[ -x .devpkg/opengl_plugin_test ]]; then
  # Entries are KERNEL or KERNEL,VAR=VALUE (e.g. tiled,SPARKLE_GL_SPLIT_K=3).
  for k in ${TEST_KERNELS:-tiled naive}; do
    IFS=, read -r kern extra <<< "$k"
    env ${extra:+"$extra"} SPARKLE_GL_PLUGIN=$plugin SPARKLE_GL_KERNEL=$kern timeout 90 \
      .devpkg/opengl_plugin_test -d > "$out/test-${k//[=,]/_}.txt" 2>&1
    echo "plugin test ($k): exit $? ($(grep -c ' s: ' "$out/test-${k//[=,]/_}.txt") cases)" \
      >> "$out/summary.txt"
    save
  done
fi

bench() {  # name batch [env...]
  local name=$1 batch=$2
  shift 2
  local t0=$SECONDS
  env "$@" timeout "${BENCH_TIMEOUT:-90}" sparkle-run bench --suite resnet50 --batch "$batch" \
    --device opengl --repeat 3 --json > "$out/bench-$name-b$batch.json" \
    2> "$out/bench-$name-b$batch.log"
  echo "bench $name batch $batch: exit $? in $((SECONDS - t0)) s" >> "$out/summary.txt"
  save
}
bench auto 32
bench naive 32 SPARKLE_GL_KERNEL=naive
PYTHONUNBUFFERED=1 timeout 120 python3 bench/cudnn_reference.py "$shapes" \
  --batch 1 32 --json "$out/cudnn.json" > "$out/cudnn.txt" 2>&1
echo "cudnn reference: exit $?" >> "$out/summary.txt"
save
bench auto 1
for t in "${tiles[@]}"; do bench "tile-$t" 32 SPARKLE_GL_TILE="$t"; done

{
python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
rows = []
for path in sorted(glob.glob(os.path.join(out, 'bench-*.json'))):
    try:
        data = json.load(open(path))
    except Exception as e:
        rows.append((os.path.basename(path), None, str(e)))
        continue
    rows.append((os.path.basename(path), data, ''))
print(open(os.path.join(out, 'summary.txt')).read())
print(f"{'run':<36} {'total ms':>10} {'TFLOPS':>8}  timer")
best = {}
for name, data, err in rows:
    if data is None:
        print(f"{name:<36} failed: {err}")
        continue
    timers = sorted({l['timer'] for l in data['layers']})
    print(f"{name:<36} {data['total_ms']:>10.3f} {data['total_gflops'] / 1e3:>8.2f}  {','.join(timers)}")
    if data['batch'] == 32:
        for l in data['layers']:
            b = best.get(l['name'])
            if b is None or l['ms'] < b[0]:
                best[l['name']] = (l['ms'], l['kernel'], l['count'], l['gflops'])
try:
    c = json.load(open(os.path.join(out, 'cudnn.json')))
    for r in c['results']:
        print(f"cudnn batch {r['batch']:<24} {r['total_ms']:>10.3f} {r['total_gflops'] / 1e3:>8.2f}")
except Exception as e:
    print('cudnn: no result', e)
if best:
    tot = sum(v[0] * v[2] for v in best.values())
    print(f"\nbest kernel per layer over all batch-32 runs: {tot:.3f} ms")
    for k, v in best.items():
        print(f"  {k:<10} {v[0]:8.3f} ms {v[3] / 1e3:6.2f} TFLOPS  {v[1]}")
PY
} 2>&1 | tee "$out/report.txt"
save
