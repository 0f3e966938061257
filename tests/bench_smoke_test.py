#!/usr/bin/env python3
"""Runs `sparkle-run bench ARGS --json --repeat 1` and checks the report.

usage: bench_smoke_test.py SPARKLE_RUN BENCH_ARGS...
The JSON must list every layer with a positive time, and total_ms must equal
the sum of ms x count. Speed is not judged here (see docs/PERFORMANCE.md).
"""
import json
import subprocess
import sys

exe, args = sys.argv[1], sys.argv[2:]
proc = subprocess.run([exe, "bench"] + args + ["--json", "--repeat", "1"],
                      capture_output=True, text=True, timeout=550)
sys.stderr.write(proc.stderr)
if proc.returncode != 0:
    sys.exit("bench exited with %d" % proc.returncode)
report = json.loads(proc.stdout)
layers = report["layers"]
assert len(layers) == 23, len(layers)
assert sum(l["count"] for l in layers) == 53
for l in layers:
    assert l["ms"] > 0 and l["gflops"] > 0, l
total = sum(l["ms"] * l["count"] for l in layers)
assert abs(total - report["total_ms"]) <= 1e-3 * total, (total, report["total_ms"])
progress = [l for l in proc.stderr.splitlines() if l.startswith("[")]
assert len(progress) == 23, "expected one progress line per layer"
print("bench ok: device %s, batch %d, total %.2f ms, %.1f GFLOPS" %
      (report["device"], report["batch"], report["total_ms"], report["total_gflops"]))
