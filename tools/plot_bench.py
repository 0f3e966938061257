#!/usr/bin/env python3
"""Per-layer GFLOPS of a sparkle benchmark against a reference run, as SVG.

usage: plot_bench.py SPARKLE_LOG [--reference LOG] [--batch N] [--peak GFLOPS]
                     [--title TEXT] -o OUT.svg

Reads the raw logs as they are written:
  - `sparkle-run bench --json` output (one series: sparkle on its device);
  - `sparkle-bench-onednn --json` output (two series from one file, sparkle
    and oneDNN measured side by side, and the FMA peak it measured);
  - `bench/cudnn_reference.py` output, its --json file or its text table
    (cuDNN; --batch picks the batch when the log has several);
  - `bench/gl_vs_cudnn.py --json` output, plain or gzipped (two series
    from one file, sparkle's OpenGL backend and cuDNN taking turns, and the
    FP32 peak it computed from the device).
The dashed line is the measured peak: from the oneDNN bench's log, or
--peak when the log has none. Plain SVG, written by hand: no plotting
library needed (Debian's python3 is enough).
"""
import argparse
import json
import re
import sys
from xml.sax.saxutils import escape


def load(path, batch):
    """[(series name, {layer: gflops}, layer order, peak or None)] from one log."""
    if path.endswith(".gz"):
        import gzip
        text = gzip.open(path, "rt", encoding="utf-8").read()
    else:
        text = open(path, encoding="utf-8").read()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "layers" in doc and doc["layers"] and "onednn_ms" in doc["layers"][0]:
        order = [l["name"] for l in doc["layers"]]
        sp = {l["name"]: l["gflop"] / l["sparkle_ms"] * 1e3 for l in doc["layers"]}
        od = {l["name"]: l["gflop"] / l["onednn_ms"] * 1e3 for l in doc["layers"]}
        peak = (doc.get("peaks_gflops") or {}).get(doc.get("sparkle_isa"))
        return [("sparkle cpu (%s, %d threads)" % (doc.get("sparkle_isa", "?"),
                                                   doc.get("threads", 0)), sp, order, peak),
                ("oneDNN %s" % doc.get("onednn_version", ""), od, order, peak)]
    if isinstance(doc, dict) and "layers" in doc:  # sparkle-run bench --json
        order = [l["name"] for l in doc["layers"]]
        return [("sparkle %s" % doc.get("device", ""),
                 {l["name"]: l["gflops"] for l in doc["layers"]}, order, None)]
    if isinstance(doc, dict) and "batches" in doc and "peak_tflops" in doc:  # gl_vs_cudnn.py
        runs = [b for b in doc["batches"] if batch is None or b["batch"] == batch]
        if not runs:
            sys.exit("%s: no batch %s" % (path, batch))
        layers = runs[0]["layers"]
        order = [l["name"] for l in layers]
        sp = {l["name"]: l["flops"] / (l["sparkle_ms"] * 1e6) for l in layers}
        cu = {l["name"]: l["flops"] / (l["cudnn_ms"] * 1e6) for l in layers}
        peak = doc["peak_tflops"] * 1e3
        return [("sparkle opengl, tuned (%s)" % doc.get("gpu", ""), sp, order, peak),
                ("cuDNN %s (strict FP32)" % doc.get("cudnn", ""), cu, order, peak)]
    if isinstance(doc, dict) and "results" in doc:  # cudnn_reference.py --json
        runs = [r for r in doc["results"] if batch is None or r["batch"] == batch]
        if not runs:
            sys.exit("%s: no batch %s" % (path, batch))
        order = [l["name"] for l in runs[0]["layers"]]
        return [("cuDNN %s (strict FP32)" % doc.get("cudnn", ""),
                 {l["name"]: l["gflops"] for l in runs[0]["layers"]}, order, None)]
    # cudnn_reference.py's text table: "batch N" then "name count ms GFLOPS" rows.
    series, current, order = {}, None, {}
    for line in text.splitlines():
        m = re.match(r"batch (\d+)$", line.strip())
        if m:
            current = int(m.group(1))
            series[current], order[current] = {}, []
            continue
        f = line.split()
        if current is not None and len(f) == 4 and re.match(r"^\d+$", f[1]):
            series[current][f[0]] = float(f[3])
            order[current].append(f[0])
    if not series:
        sys.exit("%s: not a log this script knows" % path)
    b = batch if batch is not None else min(series)
    if b not in series:
        sys.exit("%s: no batch %d (has %s)" % (path, b, sorted(series)))
    gpu = text.splitlines()[0].lstrip("# ").split(",")[0]
    return [("cuDNN on %s (strict FP32)" % gpu, series[b], order[b], None)]


def svg(series, order, peak, title):
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    w_plot, h_plot, left, top, bottom = 22 * len(order) + 40, 300, 70, 50, 110
    width, height = left + w_plot + 20, top + h_plot + bottom
    top_value = max([v for _, s, _, _ in series for v in s.values()] + [peak or 0]) * 1.08
    # Round the axis to a 1-2-5 step.
    raw = top_value / 5
    mag = 10 ** len(str(int(raw))) / 10
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    y = lambda v: top + h_plot - v / (step * 5) * h_plot
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="11">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="20" font-size="14">%s</text>' % (left, escape(title))]
    for i in range(6):
        v = i * step
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' %
                   (left, left + w_plot, y(v), y(v)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (left - 5, y(v) + 4, v))
    out.append('<text x="15" y="%d" transform="rotate(-90 15 %d)" text-anchor="middle">'
               'GFLOPS</text>' % (top + h_plot / 2, top + h_plot / 2))
    bar = 18.0 / len(series)
    for li, name in enumerate(order):
        x0 = left + 20 + li * 22
        for si, (_, values, _, _) in enumerate(series):
            if name in values:
                v = values[name]
                out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s">'
                           '<title>%s: %.0f GFLOPS</title></rect>' %
                           (x0 + si * bar, y(v), bar, top + h_plot - y(v), colors[si],
                            escape(name), v))
        out.append('<text x="%.1f" y="%d" transform="rotate(-60 %.1f %d)" text-anchor="end">%s'
                   '</text>' % (x0 + 9, top + h_plot + 12, x0 + 9, top + h_plot + 12,
                                escape(name)))
    if peak:
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#d62728" '
                   'stroke-dasharray="6 4"/>' % (left, left + w_plot, y(peak), y(peak)))
        out.append('<text x="%d" y="%.1f" fill="#d62728" text-anchor="end">measured peak %.0f'
                   '</text>' % (left + w_plot, y(peak) - 4, peak))
    for si, (label, _, _, _) in enumerate(series):
        lx = left + 10 + si * 260
        out.append('<rect x="%d" y="30" width="12" height="12" fill="%s"/>' % (lx, colors[si]))
        out.append('<text x="%d" y="40">%s</text>' % (lx + 16, escape(label)))
    out.append('</svg>')
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sparkle")
    ap.add_argument("--reference")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--peak", type=float, help="peak GFLOPS, when the logs have none")
    ap.add_argument("--title", default="")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    series = load(args.sparkle, args.batch)
    if args.reference:
        series += load(args.reference, args.batch)
    order = series[0][2]
    peak = args.peak or next((p for _, _, _, p in series if p), None)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(svg(series, order, peak, args.title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
