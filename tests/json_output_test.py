#!/usr/bin/env python3
"""Every --json output of every sparkle-run command is exactly one JSON
document, valid UTF-8, read by a strict parser (no NaN, no Infinity, no
trailing text), also with --explain and --stats, and with layer and file
names that are not UTF-8.

usage: json_output_test.py SPARKLE_RUN
"""
import json
import os
import subprocess
import sys
import tempfile


def strict_load(raw):
    """Parses bytes as one JSON document; raises on anything else."""
    text = raw.decode("utf-8", errors="strict")

    def refuse(name):
        raise ValueError("non-standard constant %s" % name)

    doc = json.loads(text, parse_constant=refuse)  # json.loads refuses trailing data
    if text.count("\n") != 1 or not text.endswith("\n"):
        raise ValueError("expected one line, got %d" % text.count("\n"))
    return doc


def main():
    exe = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="sparkle-json-")
    env = dict(os.environ, SPARKLE_CACHE_DIR=os.path.join(tmp, "cache"))
    # A layer name and a shapes-file name that are not UTF-8 (Latin-1 bytes).
    shapes = os.path.join(tmp.encode(), b"caf\xe9.shapes")
    with open(shapes, "wb") as f:
        f.write(b"l\xe9yer\xff 4 6 6 4 3 3 1 1 2\nplain 4 6 6 8 1 1 1 0 1\n")
    batch = os.path.join(tmp, "convs.batch")
    with open(batch, "w") as f:
        f.write("--dir=FWD_B\nmb1ic4ih6oc4kh3ph1n\"a\" mb1ic4ih6oc8kh1n\"b\"\n")
    # A plugin folder with a misnamed plugin, and one that does not exist.
    odd = os.path.join(tmp, "odd-plugins")
    os.makedirs(odd)
    open(os.path.join(odd, "sparkle-misnamed.so"), "w").close()
    verbose_env = dict(env, SPARKLE_PLUGIN_PATH=env.get("SPARKLE_PLUGIN_PATH", "") + ":" + odd +
                       ":" + os.path.join(tmp, "missing"))
    conv = ["conv2d", "--shape", "1,4,6,6", "--filter", "4,3,3", "--repeat", "1", "--warmup", "0",
            "--json"]
    bench = ["bench", "--shapes", shapes, "--repeat", "1", "--warmup", "0", "--spinup", "0",
             "--json", "--quiet"]
    cases = [
        ("devices", ["devices", "--json"], lambda d: "plugins" in d and "devices" in d),
        ("conv2d", conv, lambda d: d["ms"] > 0 and "explanation" not in d and "cache" not in d),
        ("conv2d --explain", conv + ["--explain"],
         lambda d: d["explanation"][-1].startswith("selected: ")),
        ("conv2d --stats", conv + ["--stats"], lambda d: d["cache"]["compiles"] >= 0),
        ("conv2d --explain --stats --check", conv + ["--explain", "--stats", "--check"],
         lambda d: d["check"]["passed"] and d["explanation"] and "memory_hits" in d["cache"]),
        ("bench, non-UTF-8 names", bench,
         lambda d: d["layers"][0]["name"] == "l\\xe9yer\\xff" and d["suite"].endswith("caf\\xe9.shapes")
         and d["version"] and d["build_id"] and d["devices"] and d["devices"][0]["fingerprint"]
         and d["warmup"] == 0 and d["repeat"] == 1
         and all(l["min_ms"] <= l["median_ms"] <= l["max_ms"] and l["desc"] and
                 len(l["input_shape"]) == 4 and len(l["weight_shape"]) == 4 for l in d["layers"])),
        ("devices --verbose", ["devices", "--json", "--verbose"],
         lambda d: any(f["path"] == odd and "sparkle-misnamed.so" in f["ignored"][0]
                       for f in d["search"])
         and any(f["problem"] == "does not exist" for f in d["search"])
         and any("misnamed.so is not loaded" in h for h in d["hints"])
         and d["environment"]["SPARKLE_CACHE_DIR"], verbose_env),
        ("bench --batch-file", ["bench", "--batch-file", batch, "--repeat", "1", "--warmup", "0",
                                "--spinup", "0", "--json", "--quiet"],
         lambda d: [l["name"] for l in d["layers"]] == ["a", "b"]
         and d["layers"][0]["desc"].endswith("_b1_r0")),
        ("stream", ["stream", "--shape", "1,4,6,6", "--filter", "4,3,3", "--batches", "4",
                    "--rounds", "1", "--spinup", "0", "--json", "--quiet"], lambda d: "device" in d),
        ("bench --resident", bench + ["--resident"],
         lambda d: d["resident"] and d["layers"][0]["min_ms"] is None),
        ("cache warm", ["cache", "warm", "--shapes", shapes, "--json"],
         lambda d: "entries" in d),
        ("cache stats", ["cache", "stats", "--json"], lambda d: "directory" in d),
        ("cache list", ["cache", "list", "--json"], lambda d: isinstance(d, list)),
        ("cache clear", ["cache", "clear", "--json"], lambda d: "removed" in d),
    ]
    failed = 0
    for name, args, check, *case_env in cases:
        proc = subprocess.run([exe.encode()] + [a if isinstance(a, bytes) else a.encode()
                                                for a in args],
                              capture_output=True, env=case_env[0] if case_env else env,
                              timeout=300)
        try:
            if proc.returncode != 0:
                raise ValueError("exit %d: %s" % (proc.returncode, proc.stderr[-300:]))
            doc = strict_load(proc.stdout)
            if not check(doc):
                raise ValueError("content check failed: %s" % proc.stdout[:400])
            print("ok   %s" % name)
        except (ValueError, KeyError, IndexError, TypeError) as e:
            failed += 1
            print("FAIL %s: %s" % (name, e))
    print("%d JSON cases, %d failed" % (len(cases), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
