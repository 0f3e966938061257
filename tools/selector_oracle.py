#!/usr/bin/env python3
"""Compares --device auto with the per-layer best-device oracle.

usage: selector_oracle.py SPARKLE_RUN SHAPES_ARGS... [--batch N]
Runs `sparkle-run bench --timer wall --json` on every device, then twice with
--device auto (the first run is the warm-up that teaches the selector; the
cache folder keeps what it learned), and prints per layer the device auto
chose, its time, the best device and its time, and the totals. Exits 1 if
auto's total is more than 10% above the oracle's.
"""
import json
import subprocess
import sys


def bench(exe, args, device):
    cmd = [exe, "bench", "--timer", "wall", "--json", "--quiet", "--device", device] + args
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    exe, args = sys.argv[1], sys.argv[2:]
    listing = json.loads(subprocess.run([exe, "devices", "--json"], check=True,
                                        capture_output=True, text=True).stdout)
    devices = [d["name"] for d in listing["devices"]]
    per_device = {d: bench(exe, args, d) for d in devices}
    bench(exe, args, "auto")  # warm-up: calibration and learning
    auto = bench(exe, args, "auto")
    total_auto = total_oracle = 0.0
    print("%-10s %5s  %-16s %10s  %-10s %10s" % ("layer", "count", "auto chose", "auto ms",
                                                "best", "best ms"))
    for i, layer in enumerate(auto["layers"]):
        best = min(devices, key=lambda d: per_device[d]["layers"][i]["ms"])
        best_ms = per_device[best]["layers"][i]["ms"]
        total_auto += layer["ms"] * layer["count"]
        total_oracle += best_ms * layer["count"]
        print("%-10s %5d  %-16s %10.3f  %-10s %10.3f" % (layer["name"], layer["count"],
                                                        layer["device"], layer["ms"], best, best_ms))
    for d in devices:
        print("only %-10s total %10.3f ms" % (d, per_device[d]["total_ms"]))
    ratio = total_auto / total_oracle
    print("auto total %.3f ms, oracle total %.3f ms, auto/oracle %.3f" %
          (total_auto, total_oracle, ratio))
    return 0 if ratio <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
