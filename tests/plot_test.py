#!/usr/bin/env python3
"""tools/plot_bench.py draws every log format it claims to read: one bar per
layer and series, with the right heights, and the measured peak line.

usage: plot_test.py SOURCE_ROOT
"""
import json
import os
import subprocess
import sys
import tempfile
import xml.dom.minidom

root = sys.argv[1]
logs = os.path.join(root, "docs", "perf-logs")
tmp = tempfile.mkdtemp(prefix="sparkle-plot-")
sparkle_json = os.path.join(tmp, "sparkle.json")
json.dump({"device": "cpu:0", "layers": [{"name": "a", "gflops": 10.0}, {"name": "b", "gflops": 40.0}]},
          open(sparkle_json, "w"))
cudnn_json = os.path.join(tmp, "cudnn.json")
json.dump({"cudnn": 91900, "results": [{"batch": 1, "layers": [{"name": "a", "gflops": 20.0},
                                                                {"name": "b", "gflops": 20.0}]}]},
          open(cudnn_json, "w"))
cases = [
    # (args, bars, peak line expected)
    ([sparkle_json, "--reference", cudnn_json, "--peak", "50"], 4, True),
    ([os.path.join(logs, "2026-11-25-2core", "final_b1_1.json")], 46, True),
    ([os.path.join(logs, "2026-11-24-h100", "gl-b32.json"), "--reference",
      os.path.join(logs, "2026-11-24-h100", "cudnn.txt"), "--batch", "32"], 46, False),
]
failed = 0
for args, bars, peak in cases:
    out = os.path.join(tmp, "out.svg")
    subprocess.run([sys.executable, os.path.join(root, "tools", "plot_bench.py")] + args +
                   ["-o", out], check=True)
    doc = xml.dom.minidom.parse(out)
    rects = [r for r in doc.getElementsByTagName("rect") if r.getElementsByTagName("title")]
    lines = [l for l in doc.getElementsByTagName("line") if l.getAttribute("stroke-dasharray")]
    problems = []
    if len(rects) != bars:
        problems.append("%d bars, expected %d" % (len(rects), bars))
    if bool(lines) != peak:
        problems.append("peak line %s" % ("missing" if peak else "unexpected"))
    if args[0] == sparkle_json:
        heights = [float(r.getAttribute("height")) for r in rects]
        # a: 10 vs 20, b: 40 vs 20: bar heights in the same ratios.
        if abs(heights[1] / heights[0] - 2) > 1e-6 or abs(heights[2] / heights[0] - 4) > 1e-6:
            problems.append("bar heights %s are not proportional to GFLOPS" % heights)
    print(("FAIL " if problems else "ok   ") + " ".join(os.path.basename(a) for a in args),
          "; ".join(problems))
    failed += bool(problems)
sys.exit(1 if failed else 0)
