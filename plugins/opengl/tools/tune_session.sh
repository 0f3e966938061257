#!/usr/bin/env bash
# One device call on the GPU machine for issue 12 (docs/OPENGL.md, "Tuner"):
#   1. the devices as sparkle sees them (compute units, subgroups);
#   2. the whole OpenGL variant space against float64 on the real driver
#      (gl_variant_space_test, when packed), then the odd-shapes plugin test;
#   3. sparkle-run tune --suite resnet50 at batch 32, then batch 1, each with
#      a time budget, on a fresh cache folder (every timing kept);
#   4. the race: bench/gl_vs_cudnn.py, sparkle (the tuned winners) and
#      PyTorch/cuDNN in strict FP32 taking turns over ROUNDS rounds in one
#      process, outputs checked, medians, spread, % of the FP32 peak.
# Full logs go to OUT/logs.tgz (re-packed after every step, so a call cut
# short still returns what it did), the tables to OUT/summary.txt, which is
# also printed last. About 6 minutes with the default budgets; every step has
# a timeout, so a stuck step cannot eat the call.
#   usage (repository root, after `source .devpkg/env.sh`):
#     plugins/opengl/tools/tune_session.sh OUT [B32_BUDGET_S] [B1_BUDGET_S] [ROUNDS]
set -uo pipefail
dest=${1:?usage: tune_session.sh OUT [B32_BUDGET_S] [B1_BUDGET_S] [ROUNDS]}
budget32=${2:-100}
budget1=${3:-40}
rounds=${4:-3}
mkdir -p "$dest"
logs=$(mktemp -d)
summary="$logs/summary.txt"
export XDG_RUNTIME_DIR=$(mktemp -d)
# A fresh cache: tuning and its compiles are measured from scratch, and the
# race then runs what this call tuned. NVIDIA's own shader cache stays off so
# compile times are sparkle's.
export SPARKLE_CACHE_DIR=${SPARKLE_CACHE_DIR:-$(mktemp -d)}  # a fresh, empty folder
export __GL_SHADER_DISK_CACHE=0
export PYTHONUNBUFFERED=1
exe=$(command -v sparkle-run)
plugin=$(dirname "$exe")/../lib/sparkle/plugins/libsparkle-opengl.so
save() { tar czf "$dest/logs.tgz" -C "$logs" . ; cp "$summary" "$dest/summary.txt"; }
step() {  # name timeout command...: runs it, logs everything, notes exit and time
  local name=$1 limit=$2
  shift 2
  local t0=$EPOCHREALTIME
  echo "\$ $*" > "$logs/$name.txt"
  timeout "$limit" "$@" >> "$logs/$name.txt" 2>&1
  local rc=$?
  printf '%-26s exit %3d  %7.1f s\n' "$name" "$rc" \
    "$(python3 -c "print($EPOCHREALTIME - $t0)")" >> "$summary"
  save
  return $rc
}
{ date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.sm --format=csv,noheader
  nproc; git log -1 --format='commit %h %s' 2>/dev/null; } > "$summary" 2>&1
step devices 60 sparkle-run devices
grep -E "compute_units|subgroup|parallel_compile|timer_queries|max_shared" "$logs/devices.txt" \
  | sort -u >> "$summary"

if [[ -x .devpkg/gl_variant_space_test ]]; then
  SPARKLE_GL_PLUGIN=$plugin SPARKLE_TEST_VARIANTS=all \
    step variant-space 90 .devpkg/gl_variant_space_test
  grep -hE "variants run|worst relative|test cases" "$logs/variant-space.txt" >> "$summary"
fi
if [[ -x .devpkg/opengl_plugin_test ]]; then
  SPARKLE_GL_PLUGIN=$plugin step plugin-test-auto 45 .devpkg/opengl_plugin_test
  grep -hE "test cases" "$logs/plugin-test-auto.txt" >> "$summary"
fi

for b in 32 1; do
  budget=$budget32
  [[ $b == 1 ]] && budget=$budget1
  # The JSON (every timing) goes to its own file; stderr has the progress.
  t0=$EPOCHREALTIME
  # Records are saved per layer, so a run cut by the timeout still leaves
  # the layers it tuned to the race.
  timeout $((budget + 90)) sparkle-run tune --suite resnet50 --batch "$b" --device opengl \
    --budget "$budget" --json > "$logs/tune-b$b.json" 2> "$logs/tune-b$b.log"
  rc=$?
  printf '%-26s exit %3d  %7.1f s\n' "tune-b$b (budget ${budget}s)" "$rc" \
    "$(python3 -c "print($EPOCHREALTIME - $t0)")" >> "$summary"
  save
done

step race 240 python3 bench/gl_vs_cudnn.py --sparkle-run "$exe" --batch 32 1 --rounds "$rounds" \
  --json "$logs/race.json" --log "$logs/race-sparkle.log"

{
  echo
  python3 - "$logs" <<'PY'
import json, os, sys
logs = sys.argv[1]
for b in (32, 1):
    path = os.path.join(logs, 'tune-b%d.json' % b)
    try:
        t = json.load(open(path))
    except Exception as e:
        print('tune batch %d: no JSON (%s)' % (b, e))
        continue
    print('tune batch %d: %.1f s, %d failures; best %.3f ms (defaults %s ms)' %
          (b, t['seconds'], t['failures'], t['total_ms'],
           '%.3f' % t['default_total_ms'] if t.get('default_total_ms') else '?'))
    print('  %-10s %9s %9s %6s %8s  %s' % ('layer', 'best ms', 'default', 'x', 'measured', 'winner'))
    for l in t['layers']:
        n = sum(v['measured'] for v in l['variants'])
        d = l['default_ms'] if l['default_ms'] and l['default_ms'] > 0 else float('nan')
        print('  %-10s %9.4f %9.4f %6.2f %4d/%-3d  %s' % (l['name'], l['ms'], d, d / l['ms'], n,
                                                      len(l['variants']), l['winner']))
PY
  echo
  sed -n '/^batch 32: median/,$p' "$logs/race.txt"
} >> "$summary" 2>&1
save
cat "$summary"
