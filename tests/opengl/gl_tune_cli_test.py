#!/usr/bin/env python3
"""`sparkle-run tune` on the OpenGL device, as whole processes.

usage: gl_tune_cli_test.py SPARKLE_RUN

On a fresh SPARKLE_CACHE_DIR:
  - tune a small suite: every layer gets a measured winner, progress lines
    give the time left;
  - tune it again: every layer comes from the record, nothing is measured;
  - --measure and bench use the winners, outputs checked;
  - a record line with a flipped byte, and a truncated file: one warning
    naming the corrupt records, those layers are tuned again, the others
    still come from the record, exit 0;
  - --budget shares a time budget out over the layers;
  - an unknown device is exit 2 with one error line;
  - cache clear removes the records.
Exits 77 (skipped) where there is no OpenGL device.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

EXE = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="sparkle-gl-tune-test-")
SHAPES = os.path.join(TMP, "small.shapes")
with open(SHAPES, "w") as f:
    f.write("# name C H W K R S stride pad count\n"
            "conv3x3  8  12 12 40 3 3 1 1 2\n"
            "point    16 10 10 48 1 1 1 0 1\n"
            "down     16 11 11 36 1 1 2 0 1\n")
ENV = dict(os.environ)
ENV["SPARKLE_CACHE_DIR"] = os.path.join(TMP, "cache")
ENV.setdefault("XDG_RUNTIME_DIR", TMP)
for var in ("SPARKLE_GL_KERNEL", "SPARKLE_GL_TILE", "SPARKLE_GL_SPLIT_K", "SPARKLE_TUNING_DISABLE"):
    ENV.pop(var, None)
QUICK = ["--max-variants", "4", "--repeat", "2", "--rounds", "1", "--busy-ms", "1"]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(args, want_rc=0):
    proc = subprocess.run([EXE] + args, env=ENV, capture_output=True, text=True, timeout=600)
    if proc.returncode != want_rc:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise AssertionError("sparkle-run %s: exit %d, wanted %d" %
                             (" ".join(args), proc.returncode, want_rc))
    return proc


def tune(extra=()):
    proc = run(["tune", "--shapes", SHAPES, "--device", "opengl", "--json"] + QUICK + list(extra))
    return json.loads(proc.stdout), proc.stderr


def records_file():
    folder = os.path.join(ENV["SPARKLE_CACHE_DIR"], "tuning-v1")
    files = [os.path.join(folder, f) for f in os.listdir(folder)] if os.path.isdir(folder) else []
    return files[0] if len(files) == 1 else None


def main():
    devices = run(["devices"]).stdout
    if "opengl:" not in devices:
        print("SKIP: no OpenGL device")
        return 77

    first, err = tune()
    layers = first["layers"]
    check(len(layers) == 3 and first["failures"] == 0, "three layers tuned")
    check(all(l["winner"] and l["ms"] > 0 and not l["from_record"] for l in layers),
          "every layer has a measured winner")
    check(all(2 <= sum(v["measured"] for v in l["variants"]) <= 4 for l in layers),
          "--max-variants 4 measured 2 to 4 variants per layer")
    check(all(any(v["default"] and v["measured"] for v in l["variants"]) for l in layers),
          "the default variant is measured as the baseline")
    check(err.count("left") == 3 and "[3/3]" in err, "one progress line per layer with time left")
    path = records_file()
    check(path is not None, "one record file per device fingerprint")
    winners = {l["name"]: l["winner"] for l in layers}

    second, _ = tune()
    check(all(l["from_record"] for l in second["layers"]), "a second run comes from the record")
    check({l["name"]: l["winner"] for l in second["layers"]} == winners, "same winners")

    proc = run(["tune", "--shapes", SHAPES, "--device", "opengl", "--measure", "--json",
                "--repeat", "3", "--rounds", "1", "--busy-ms", "1"])
    m = json.loads(proc.stdout)
    check(all(l["correct"] and l["tuned"] for l in m["layers"]), "--measure: outputs checked, tuned")
    check({l["name"]: l["kernel"] for l in m["layers"]} == winners, "--measure runs the winners")
    bench = json.loads(run(["bench", "--shapes", SHAPES, "--device", "opengl", "--repeat", "1",
                            "--warmup", "0", "--json"]).stdout)
    check({l["name"]: l["kernel"] for l in bench["layers"]} == winners,
          "the engine (bench) plans the winners")

    # A flipped byte in the first record line: that op is tuned again.
    with open(path) as f:
        lines = f.read().split("\n")
    records = [i for i, l in enumerate(lines) if l.startswith("v1\t")]
    bad = lines[records[0]]
    op = [kv[3:] for kv in bad.split("\t") if kv.startswith("op=")][0]
    mid = len(bad) // 2
    lines[records[0]] = bad[:mid] + ("x" if bad[mid] != "x" else "y") + bad[mid + 1:]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    third, err = tune()
    warnings = [l for l in err.splitlines() if "warning: tune:" in l]
    check(len(warnings) == 1 and "corrupt" in warnings[0], "one warning for the corrupt record")
    retuned = [l for l in third["layers"] if not l["from_record"]]
    check(len(retuned) == 1 and retuned[0]["op"] == op, "only the corrupt record's op is retuned")
    check(third["failures"] == 0, "exit 0 with a corrupt record")

    # A file cut in the middle of a line.
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text[: len(text) * 2 // 3])
    fourth, err = tune()
    check(any("corrupt" in l for l in err.splitlines()), "a truncated file warns")
    check(any(not l["from_record"] for l in fourth["layers"]) and fourth["failures"] == 0,
          "the cut record is retuned, the run succeeds")

    # A budget shared out over the layers; still at least two variants each.
    proc = run(["tune", "--shapes", SHAPES, "--device", "opengl", "--json", "--retune",
                "--budget", "3", "--repeat", "2", "--rounds", "1", "--busy-ms", "1"])
    budgeted = json.loads(proc.stdout)
    check(all(sum(v["measured"] for v in l["variants"]) >= 2 for l in budgeted["layers"]),
          "--budget: at least two variants per layer")
    check(budgeted["seconds"] < 60, "--budget 3 finished in %.1f s" % budgeted["seconds"])

    proc = run(["tune", "--shapes", SHAPES, "--device", "nope"], want_rc=2)
    check(proc.stderr.strip().count("\n") == 0 and "unknown device" in proc.stderr,
          "an unknown device is one error line, exit 2")

    run(["cache", "clear"])
    check(records_file() is None, "cache clear removes the tuning records")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)
