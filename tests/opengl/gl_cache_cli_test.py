#!/usr/bin/env python3
"""The OpenGL program cache seen from `sparkle-run conv2d --device opengl`.

usage: gl_cache_cli_test.py SPARKLE_RUN [SCENARIO...]

Each scenario runs separate processes on its own fresh SPARKLE_CACHE_DIR:
  warm       two runs in a row: the second compiles nothing, loads from disk,
             and writes a bit-identical output; prints each process's wall
             time (time to first result, including plugin start-up)
  bad entries (truncated, flipped payload byte, flipped header byte, other
             device fingerprint, other kernel variant, zero-length file,
             wrong binary format, garbled binary): the entry is a miss with
             ONE warning line, the result is still correct (--check), it is
             replaced, and a third run compiles nothing
  directory  a directory where the entry should be: one warning, skipped
  readonly   SPARKLE_CACHE_DIR below a regular file (root ignores chmod)
  full       SPARKLE_CACHE_MAX_BYTES smaller than an entry; and LRU eviction
  disabled   SPARKLE_CACHE_DISABLE=1
  noformats  a driver with no program binary formats (Mesa without its shader
             cache): the disk level is skipped silently
Exits 77 (skipped) where there is no OpenGL device.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

EXE = sys.argv[1]
ONLY = set(sys.argv[2:])
CONV = ["conv2d", "--device", "opengl", "--shape", "1,16,16,16", "--filter", "32,3,3",
        "--pad", "1", "--bias-random", "--relu", "--repeat", "1", "--warmup", "0",
        "--check", "--stats"]
# A second shape, for eviction.
CONV_B = ["conv2d", "--device", "opengl", "--shape", "1,8,12,12", "--filter", "16,3,3",
          "--repeat", "1", "--warmup", "0", "--check", "--stats"]
MAGIC = b"SPKBLOB1"
FIELDS = ["core build", "plugin", "plugin build", "kind", "name", "device fingerprint",
          "options", "source sha"]
TMP = tempfile.mkdtemp(prefix="sparkle-gl-cache-test-")
# Mesa only offers program binaries while its own shader cache is on; keep it
# private so that runs do not depend on ~/.cache.
BASE_ENV = dict(os.environ)
BASE_ENV.pop("MESA_SHADER_CACHE_DISABLE", None)
BASE_ENV.pop("SPARKLE_CACHE_DISABLE", None)
BASE_ENV.pop("SPARKLE_CACHE_MAX_BYTES", None)
BASE_ENV.setdefault("XDG_RUNTIME_DIR", TMP)
BASE_ENV["MESA_SHADER_CACHE_DIR"] = os.path.join(TMP, "mesa")
failures = []


class Run:
    def __init__(self, proc, wall_s, output):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.wall_s = wall_s
        self.output = output
        lines = [l for l in proc.stdout.splitlines() if l.startswith('{"cache"')]
        self.stats = json.loads(lines[-1])["cache"] if lines else None
        self.warnings = [l for l in proc.stderr.splitlines() if "warning: cache:" in l]


def run(cache_dir, args=CONV, extra_env=None, tag="run"):
    env = dict(BASE_ENV)
    env["SPARKLE_CACHE_DIR"] = cache_dir
    env.update(extra_env or {})
    out = os.path.join(TMP, "y-%d.npy" % time.monotonic_ns())
    t0 = time.monotonic()
    proc = subprocess.run([EXE] + args + ["--output", out], env=env, capture_output=True,
                          text=True, timeout=300)
    r = Run(proc, time.monotonic() - t0, out)
    if r.rc != 0 or r.stats is None:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise AssertionError("%s: sparkle-run exited %d" % (tag, r.rc))
    return r


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def entries(cache_dir):
    d = os.path.join(cache_dir, "programs")
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".blob"))


# ---- entry format (core/cache/blob_store.cpp) -------------------------------

def u64(v):
    return v.to_bytes(8, "little")


def parse(data):
    assert data[:8] == MAGIC
    hsize = int.from_bytes(data[8:12], "little")
    header = data[12:12 + hsize]
    assert hashlib.sha256(header).digest() == data[12 + hsize:12 + hsize + 32]
    payload = data[12 + hsize + 32:]
    pos, fields = 0, []
    for _ in range(8):
        n = int.from_bytes(header[pos:pos + 8], "little")
        fields.append(header[pos + 8:pos + 8 + n])
        pos += 8 + n
    ms_bits = header[pos:pos + 8]
    return fields, ms_bits, payload, hsize


def build(fields, ms_bits, payload):
    """A well-formed entry: both checksums match whatever the fields say."""
    header = b"".join(u64(len(f)) + f for f in fields) + ms_bits + u64(len(payload))
    sha = hashlib.sha256(payload).hexdigest().encode()
    header += u64(len(sha)) + sha
    return (MAGIC + len(header).to_bytes(4, "little") + header +
            hashlib.sha256(header).digest() + payload)


def rewrite(path, fn):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(fn(data))


def flip(data, i):
    return data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]


# ---- scenarios ---------------------------------------------------------------

def populate(name):
    d = os.path.join(TMP, name)
    first = run(d, tag=name + " run 1")
    check(first.stats["compiles"] >= 1 and first.stats["disk_hits"] == 0,
          "%s: first run compiles (%s)" % (name, first.stats))
    es = entries(d)
    check(len(es) >= 1, "%s: first run stores an entry" % name)
    return d, first, es


def scenario_warm():
    d = os.path.join(TMP, "warm")
    cold = run(d, tag="warm run 1")
    warm = run(d, tag="warm run 2")
    print("time to first result (process wall time), %s: cold %.3f s (%s), warm %.3f s (%s)" %
          (" ".join(CONV[:9]), cold.wall_s, cold.stats, warm.wall_s, warm.stats))
    check(cold.stats["compiles"] >= 1 and cold.stats["disk_hits"] == 0,
          "warm: first run compiles: %s" % cold.stats)
    check(warm.stats["compiles"] == 0 and warm.stats["disk_hits"] > 0,
          "warm: second run compiles 0 and loads from disk: %s" % warm.stats)
    check(same_file(cold.output, warm.output), "warm: outputs bit-identical")
    check(not cold.warnings and not warm.warnings, "warm: no cache warnings")


def bad_entry(name, corrupt, replaceable=True):
    d, first, es = populate(name)
    if not es:
        return
    detail = corrupt(es[0], d)
    if detail is False:
        print("%s: not applicable here, skipped" % name)
        return
    second = run(d, tag=name + " run 2")
    check(len(second.warnings) == 1,
          "%s: exactly one cache warning, got %d: %s" % (name, len(second.warnings),
                                                          second.warnings))
    check(second.stats["compiles"] == 1, "%s: recompiled once: %s" % (name, second.stats))
    third = run(d, tag=name + " run 3")
    if replaceable:
        check(third.stats["compiles"] == 0 and third.stats["disk_hits"] >= 1,
              "%s: entry replaced, third run compiles 0: %s" % (name, third.stats))
        check(not third.warnings, "%s: third run has no warnings: %s" % (name, third.warnings))
    else:
        check(len(third.warnings) == 1, "%s: third run warns once: %s" % (name, third.warnings))
    check(same_file(first.output, second.output) and same_file(first.output, third.output),
          "%s: outputs bit-identical to the first run" % name)
    print("%s: ok (%s; run 2 %s, run 3 %s)" % (name, second.warnings[0].split("cache: ")[-1]
                                             if second.warnings else "-", second.stats,
                                             third.stats))


def truncate(path, _):
    rewrite(path, lambda b: b[:len(b) // 2])


def flip_payload(path, _):
    rewrite(path, lambda b: flip(b, len(b) - 7))


def flip_header(path, _):
    rewrite(path, lambda b: flip(b, 12 + 20))  # inside the core build id


def other_fingerprint(path, _):
    def fn(b):
        fields, ms, payload, _ = parse(b)
        fields[5] = b"Other GPU | Other vendor | 4.6 | binary formats 0x1234"
        return build(fields, ms, payload)
    rewrite(path, fn)


def other_variant(path, d):
    # An entry made under another SPARKLE_GL_* option, copied where the
    # default kernel's entry lives.
    other = d + "-naive"
    run(other, extra_env={"SPARKLE_GL_KERNEL": "naive"}, tag="naive variant")
    src = entries(other)
    with open(src[0], "rb") as f:
        if parse(f.read())[0][7] == parse(open(path, "rb").read())[0][7]:
            return False  # the default kernel is the naive one here
    shutil.copyfile(src[0], path)


def zero_length(path, _):
    open(path, "wb").close()


def wrong_format(path, _):
    def fn(b):
        fields, ms, payload, _ = parse(b)
        return build(fields, ms, (0x7E57BAD0).to_bytes(4, "little") + payload[4:])
    rewrite(path, fn)


def garbled_binary(path, _):
    # Valid checksums around a binary the driver must refuse: Mesa's format
    # (0x875f) carries its own CRC. Other drivers are not fed garbage.
    with open(path, "rb") as f:
        fields, ms, payload, _ = parse(f.read())
    if int.from_bytes(payload[:4], "little") != 0x875F:
        return False
    body = payload[4:]
    mid = len(body) // 2
    rewrite(path, lambda _b: build(fields, ms, payload[:4] + flip(body, mid)))


def scenario_directory():
    def make_dir(path, _):
        os.remove(path)
        os.mkdir(path)
    bad_entry("directory", make_dir, replaceable=False)


def scenario_readonly():
    d = os.path.join(TMP, "readonly")
    os.makedirs(d)
    blocker = os.path.join(d, "not-a-folder")
    open(blocker, "w").close()
    cache = os.path.join(blocker, "cache")  # can never be created, even by root
    for i in (1, 2):
        r = run(cache, tag="readonly run %d" % i)
        check(len(r.warnings) == 1, "readonly run %d: one warning: %s" % (i, r.warnings))
        check(r.stats["compiles"] >= 1, "readonly run %d compiles: %s" % (i, r.stats))
    if os.geteuid() != 0:  # a real read-only folder, where chmod means something
        ro = os.path.join(d, "ro")
        os.makedirs(os.path.join(ro, "programs"))
        os.chmod(os.path.join(ro, "programs"), 0o555)
        r = run(ro, tag="readonly chmod")
        check(len(r.warnings) == 1, "readonly (chmod): one warning: %s" % r.warnings)
        os.chmod(os.path.join(ro, "programs"), 0o755)
    print("readonly: ok (%s)" % (r.warnings[0].split("cache: ")[-1] if r.warnings else "-"))


def scenario_full():
    d = os.path.join(TMP, "full")
    for i in (1, 2):
        r = run(d, extra_env={"SPARKLE_CACHE_MAX_BYTES": "64"}, tag="full run %d" % i)
        check(len(r.warnings) == 1, "full run %d: one warning: %s" % (i, r.warnings))
        check(r.stats["compiles"] >= 1, "full run %d compiles: %s" % (i, r.stats))
        check(not entries(d), "full run %d stores nothing" % i)
    print("full: ok (%s)" % (r.warnings[0].split("cache: ")[-1] if r.warnings else "-"))
    # Room for about one entry: the least recently used one goes.
    d = os.path.join(TMP, "evict")
    run(d, tag="evict A")
    (a,) = entries(d)
    cap = str(os.path.getsize(a) * 3 // 2)
    b = run(d, args=CONV_B, extra_env={"SPARKLE_CACHE_MAX_BYTES": cap}, tag="evict B")
    check(not b.warnings, "evict: no warnings: %s" % b.warnings)
    es = entries(d)
    check(len(es) == 1 and a not in es, "evict: A evicted, B kept: %s" % es)
    b2 = run(d, args=CONV_B, extra_env={"SPARKLE_CACHE_MAX_BYTES": cap}, tag="evict B again")
    check(b2.stats["compiles"] == 0, "evict: B still cached: %s" % b2.stats)
    print("evict: ok")


def scenario_disabled():
    d = os.path.join(TMP, "disabled")
    for i in (1, 2):
        r = run(d, extra_env={"SPARKLE_CACHE_DISABLE": "1"}, tag="disabled run %d" % i)
        check(r.stats["compiles"] >= 1 and r.stats["disk_hits"] == 0,
              "disabled run %d compiles: %s" % (i, r.stats))
        check(not r.warnings, "disabled run %d: no warnings" % i)
    check(not entries(d), "disabled: nothing stored")
    print("disabled: ok")


def scenario_noformats():
    env = dict(BASE_ENV, MESA_SHADER_CACHE_DISABLE="true")
    proc = subprocess.run([EXE, "devices", "--json"], env=env, capture_output=True, text=True,
                          timeout=120)
    devs = [x for x in json.loads(proc.stdout)["devices"] if x["backend"] == "opengl"]
    if not devs or devs[0]["properties"].get("program_binary_formats") != "none":
        print("noformats: the driver still offers program binaries; skipped")
        return
    d = os.path.join(TMP, "noformats")
    for i in (1, 2):
        r = run(d, extra_env={"MESA_SHADER_CACHE_DISABLE": "true"}, tag="noformats %d" % i)
        check(r.stats["compiles"] >= 1 and r.stats["disk_hits"] == 0,
              "noformats run %d compiles: %s" % (i, r.stats))
        check(not r.warnings, "noformats run %d: no warnings" % i)
    check(not entries(d), "noformats: nothing stored")
    print("noformats: ok")


def main():
    proc = subprocess.run([EXE, "devices", "--json"], env=BASE_ENV, capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0 or not any(x["backend"] == "opengl"
                                       for x in json.loads(proc.stdout)["devices"]):
        print("SKIP: no OpenGL device")
        return 77
    scenarios = {
        "warm": scenario_warm,
        "truncated": lambda: bad_entry("truncated", truncate),
        "payload": lambda: bad_entry("payload", flip_payload),
        "header": lambda: bad_entry("header", flip_header),
        "fingerprint": lambda: bad_entry("fingerprint", other_fingerprint),
        "variant": lambda: bad_entry("variant", other_variant),
        "empty": lambda: bad_entry("empty", zero_length),
        "format": lambda: bad_entry("format", wrong_format),
        "garbled": lambda: bad_entry("garbled", garbled_binary),
        "directory": scenario_directory,
        "readonly": scenario_readonly,
        "full": scenario_full,
        "disabled": scenario_disabled,
        "noformats": scenario_noformats,
    }
    for name, fn in scenarios.items():
        if ONLY and name not in ONLY:
            continue
        try:
            fn()
        except AssertionError as e:
            failures.append("%s: %s" % (name, e))
            print("FAIL: %s: %s" % (name, e))
    if failures:
        print("%d failure(s):\n  %s" % (len(failures), "\n  ".join(failures)))
        return 1
    shutil.rmtree(TMP, ignore_errors=True)
    print("all OpenGL program cache scenarios passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
