#!/usr/bin/env python3
"""Table-driven bad-input test of sparkle-run.

Every case must exit with status 2 and print exactly one line starting with
"sparkle-run: error:" that contains the case's specific message; nothing may
crash (signals, sanitizer reports). Usage: bad_input_test.py SPARKLE_RUN
"""
import os
import struct
import subprocess
import sys
import tempfile


def npy(path, dtype, shape, body_bytes=None):
    """Writes a .npy file by hand (no numpy needed)."""
    shape_text = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (dtype, shape_text)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    count = 1
    for s in shape:
        count *= s
    itemsize = int(dtype[2:])
    if body_bytes is None:
        body_bytes = count * itemsize
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(bytes(body_bytes))


def raw_npy(path, header, body_bytes):
    """A .npy file with this exact header text (which may be malformed)."""
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        f.write(bytes(body_bytes))


def main():
    exe = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="sparkle-bad-input-")
    p = lambda name: os.path.join(tmp, name)
    npy(p("f8.npy"), "<f8", [1, 3, 8, 8])
    npy(p("rank2.npy"), "<f4", [3, 8])
    npy(p("trunc.npy"), "<f4", [1, 3, 8, 8], body_bytes=100)
    npy(p("x.npy"), "<f4", [1, 3, 8, 8])
    npy(p("w4.npy"), "<f4", [4, 4, 3, 3])
    npy(p("b5.npy"), "<f4", [5])
    with open(p("junk.npy"), "wb") as f:
        f.write(b"not numpy at all")
    with open(p("bad.shapes"), "w") as f:
        f.write("# header\nconv1 3 224 224 64 7 7 2 3 1\nres2 64 56 56\n")
    with open(p("huge-weights.shapes"), "w") as f:
        f.write("huge 65536 1 1 65536 3 3 1 1 1\n")
    with open(p("plus.shapes"), "w") as f:
        f.write("a +3 8 8 4 3 3 1 1 1\n")
    raw_npy(p("decoy.npy"), "{'extra': \"'descr': '<f4'\", 'descr': '>f4', "
            "'fortran_order': False, 'shape': (1, 1, 2, 2), }", 16)
    raw_npy(p("newline.npy"), "{'descr': '<f8\nsparkle-run: error: fake', "
            "'fortran_order': False, 'shape': (1, 1, 2, 2), }", 32)
    raw_npy(p("escape.npy"), "{'descr': '<f8\x1b[2J', 'fortran_order': False, "
            "'shape': (1, 1, 2, 2), }", 32)
    os.mkfifo(p("fifo.npy"))
    os.mkfifo(p("fifo.shapes"))
    budget_8gb = {"SPARKLE_HOST_MEMORY_LIMIT": "8000000000"}

    conv = ["conv2d", "--shape", "1,3,8,8", "--filter", "4,3,3"]
    cases = [
        ("negative padding", conv + ["--pad=-1"], "pad_top=-1 must be >= 0"),
        ("negative stride", conv + ["--stride=-2"], "stride_h=-2 must be > 0"),
        ("zero dilation", conv + ["--dilation", "1,0"], "dilation_w=0 must be > 0"),
        ("K = 0", ["conv2d", "--shape", "1,3,8,8", "--filter", "0,3,3"], "k=0 must be > 0"),
        ("H = 0", ["conv2d", "--shape", "1,3,0,8", "--filter", "4,3,3"], "h=0 must be > 0"),
        ("groups do not divide C",
         ["conv2d", "--shape", "1,6,8,8", "--filter", "4,3,3", "--groups", "4"],
         "groups=4 does not divide C=6"),
        ("groups do not divide K",
         ["conv2d", "--shape", "1,8,8,8", "--filter", "6,3,3", "--groups", "4"],
         "groups=4 does not divide K=6"),
        ("output size <= 0", ["conv2d", "--shape", "1,3,4,4", "--filter", "4,7,7"],
         "output height would be <= 0"),
        ("overflowing product",
         ["conv2d", "--shape", "4294967296,4294967296,2,2", "--filter", "4,1,1"],
         "input element count overflows int64"),
        ("larger than memory",
         ["conv2d", "--shape", "100000,100000,100,10", "--filter", "4,1,1"],
         "of host memory are available"),
        ("shape with 3 values", ["conv2d", "--shape", "1,3,8", "--filter", "4,3,3"],
         "shape='1,3,8' needs 4 comma-separated values"),
        ("non-integer size", ["conv2d", "--shape", "1,a,8,8", "--filter", "4,3,3"],
         "shape='a' is not an integer"),
        ("npy wrong dtype", ["conv2d", "--input", p("f8.npy"), "--filter", "4,3,3"],
         "dtype '<f8' is not float32"),
        ("npy wrong rank", ["conv2d", "--input", p("rank2.npy"), "--filter", "4,3,3"],
         "rank 2 but expected 4"),
        ("npy truncated body", ["conv2d", "--input", p("trunc.npy"), "--filter", "4,3,3"],
         "truncated body"),
        ("npy not numpy", ["conv2d", "--input", p("junk.npy"), "--filter", "4,3,3"],
         "not a .npy file (bad magic)"),
        ("npy missing", ["conv2d", "--input", p("missing.npy"), "--filter", "4,3,3"],
         "cannot open for reading"),
        ("weights disagree with input",
         ["conv2d", "--input", p("x.npy"), "--weights", p("w4.npy")],
         "has C/groups=4, but input C=3"),
        ("bias disagrees with K", conv + ["--bias", p("b5.npy")], "bias has 5 elements, but K=4"),
        ("unknown device", conv + ["--device", "quantum"], "unknown device 'quantum'"),
        ("device index not a number", conv + ["--device", "cpu:abc"],
         "index 'abc' is not a number"),
        ("input given twice", conv + ["--input", p("x.npy")], "give exactly one of --input"),
        ("repeat 0", conv + ["--repeat", "0"], "repeat=0 must be > 0"),
        ("unknown option", conv + ["--frobnicate"], "unrecognised option '--frobnicate'"),
        ("bad shapes-file line", ["bench", "--shapes", p("bad.shapes")],
         "bad.shapes:3: expected 10 fields"),
        ("missing shapes file", ["bench", "--shapes", p("nope.shapes")],
         "cannot open shapes file"),
        ("unknown suite", ["bench", "--suite", "vgg"], "unknown suite 'vgg'"),
        ("batch 0", ["bench", "--batch", "0"], "batch=0 must be > 0"),
        ("unknown command", ["convolve"], "unknown command 'convolve'"),
        # Stray tokens were ignored: --pad 0 1 ran with pad 0.
        ("stray token after --pad", conv + ["--pad", "0", "1"], "unexpected argument '1'"),
        ("stray token after devices", ["devices", "all"], "unexpected argument 'all'"),
        ("stray token after cache", ["cache", "stats", "now"], "unexpected argument 'now'"),
        # One integer grammar: " 1" and "+1" were accepted, "8 " refused.
        ("integer with a space before", conv + ["--repeat", " 1"], "repeat=' 1' is not an integer"),
        ("integer with a plus", conv + ["--repeat", "+1"], "repeat='+1' is not an integer"),
        ("integer with a space after", ["bench", "--batch", "8 "], "batch='8 ' is not an integer"),
        ("plus in a shapes file", ["bench", "--shapes", p("plus.shapes")],
         "C='+3' is not an integer"),
        ("out-of-range integer", conv + ["--groups", "99999999999999999999"], "is out of range"),
        # .npy headers
        ("npy decoy descr", ["conv2d", "--input", p("decoy.npy"), "--filter", "1,1,1"],
         "unexpected key 'extra'"),
        ("npy newline in the header", ["conv2d", "--input", p("newline.npy"), "--filter", "1,1,1"],
         "unterminated string"),
        ("npy escape in the header", ["conv2d", "--input", p("escape.npy"), "--filter", "1,1,1"],
         "dtype '<f8\\x1b[2J'"),
        ("npy float64 names --cast", ["conv2d", "--input", p("f8.npy"), "--filter", "4,3,3"],
         "--cast converts it"),
        ("npy FIFO", ["conv2d", "--input", p("fifo.npy"), "--filter", "4,3,3"],
         "not a regular file"),
        ("shapes FIFO", ["bench", "--shapes", p("fifo.shapes")], "not a regular file"),
        # Host memory: killed by the kernel at 19 GB RSS with no message, and
        # bench left the weights out of its check.
        ("the issue's 64x512x224x224 conv", ["conv2d", "--shape", "64,512,224,224", "--filter",
                                             "512,3,3", "--pad", "1"],
         "input 6.6 GB (6576668672 bytes), weights 9.4 MB (9437184 bytes), output 6.6 GB "
         "(6576668672 bytes): together 13.2 GB (13162774528 bytes), but only 8.0 GB "
         "(8000000000 bytes) of host memory are available (SPARKLE_HOST_MEMORY_LIMIT)",
         budget_8gb),
        ("--check needs the reference's memory too",
         ["conv2d", "--shape", "16,512,224,224", "--filter", "512,3,3", "--pad", "1", "--check"],
         "reference output (float64)", budget_8gb),
        ("bench with huge weights", ["bench", "--shapes", p("huge-weights.shapes")],
         "weights 154.6 GB (154618822656 bytes)"),
        ("bad SPARKLE_HOST_MEMORY_LIMIT", ["conv2d", "--shape", "64,512,224,224", "--filter",
                                           "512,3,3"],
         "SPARKLE_HOST_MEMORY_LIMIT='8G' is not a byte count", {"SPARKLE_HOST_MEMORY_LIMIT": "8G"}),
        ("pad same with stride 2", conv + ["--pad", "same", "--stride", "2"],
         "pad=same needs stride 1"),
        ("unknown pad word", conv + ["--pad", "full"], "pad='full' is not an integer"),
        # Every core variable by one rule: an error naming it, before anything runs.
        ("bad SPARKLE_LOG_LEVEL", ["devices"], "SPARKLE_LOG_LEVEL='loud' must be one of debug",
         {"SPARKLE_LOG_LEVEL": "loud"}),
        ("bad SPARKLE_CACHE_MAX_BYTES", conv, "SPARKLE_CACHE_MAX_BYTES='12k' is not a byte count",
         {"SPARKLE_CACHE_MAX_BYTES": "12k"}),
        ("bad SPARKLE_CACHE_DISABLE", conv, "SPARKLE_CACHE_DISABLE='yes' must be one of 0, 1",
         {"SPARKLE_CACHE_DISABLE": "yes"}),
        ("bad SPARKLE_TUNING_DISABLE", conv, "SPARKLE_TUNING_DISABLE='on' must be one of 0, 1",
         {"SPARKLE_TUNING_DISABLE": "on"}),
        ("bad SPARKLE_DEVICE", conv, "SPARKLE_DEVICE='cpu:x' must be auto, a backend name",
         {"SPARKLE_DEVICE": "cpu:x"}),
        ("bad SPARKLE_VERBOSE", conv, "SPARKLE_VERBOSE='all' must be a comma-separated list",
         {"SPARKLE_VERBOSE": "all"}),
        # The backends' variables by the same rule: each plugin checks its
        # own at init, and no command starts (devices included).
        *[("bad " + var, ["devices"], var + "=" + value, {var: value}) for var, value in [
            ("SPARKLE_CPU_ISA", "sse9"), ("SPARKLE_CPU_KERNEL", "fast"),
            ("SPARKLE_CPU_VECTORIZE", "rows"), ("SPARKLE_CPU_LAYOUT", "nhwc"),
            ("SPARKLE_CPU_JIT_PREFETCH", "yes"), ("SPARKLE_CPU_JIT_BLOCKING", "4by2"),
            ("SPARKLE_GL_DEVICE", "first"), ("SPARKLE_GL_KERNEL", "fft"),
            ("SPARKLE_GL_TILE", "big"), ("SPARKLE_GL_SPLIT_K", "0"),
            ("SPARKLE_GL_COMPUTE_UNITS", "-1"), ("SPARKLE_GL_DISPATCH_LIMIT", "x"),
            ("SPARKLE_GL_TRANSFER_QUEUES", "maybe"), ("SPARKLE_GL_PROGRAM_CACHE_CAPACITY", "1e3"),
            ("SPARKLE_AMDGPU_KERNEL", "fast"), ("SPARKLE_AMDGPU_FENCE_TIMEOUT_MS", "0")]],
        ("bad backend variable on conv2d", conv, "the cpu backend refuses its configuration: "
         "SPARKLE_CPU_KERNEL=fast is unknown", {"SPARKLE_CPU_KERNEL": "fast"}),
        ("threads 0", conv + ["--threads", "0"], "threads=0 must be 1 to 65536"),
        ("problem and shape", ["conv2d", "--problem", "mb1ic3ih8oc4kh3", "--shape", "1,3,8,8"],
         "give --problem or --shape, not both"),
        ("problem and pad", ["conv2d", "--problem", "mb1ic3ih8oc4kh3", "--pad", "1"],
         "--problem sets the pad"),
        ("bad benchdnn problem", ["conv2d", "--problem", "mb1ic3ih8oc4kh3zz2"], "unknown key 'zz'"),
        ("missing batch file", ["bench", "--batch-file", p("nope.batch")], "cannot open batch file"),
    ]
    failed = 0
    for name, args, message, *extra in cases:
        env = dict(os.environ)
        env.update(extra[0] if extra else {})
        proc = subprocess.run([exe] + args, capture_output=True, text=True, timeout=120, env=env,
                              errors="replace")
        errors = [l for l in proc.stderr.splitlines() if l.startswith("sparkle-run: error:")]
        # Log lines ("sparkle[t0] warning: ...") may precede it; nothing else,
        # so a message split by a newline from a file shows up here.
        others = [l for l in proc.stderr.splitlines()
                  if not l.startswith("sparkle-run: error:") and not l.startswith("sparkle[")]
        problems = []
        if others:
            problems.append("other lines on stderr: %r" % others[:3])
        if proc.returncode != 2:
            problems.append("exit status %d, expected 2" % proc.returncode)
        if len(errors) != 1:
            problems.append("%d error lines, expected 1" % len(errors))
        elif message not in errors[0]:
            problems.append("message %r lacks %r" % (errors[0], message))
        if "Sanitizer" in proc.stderr or "runtime error" in proc.stderr:
            problems.append("sanitizer report")
        status = "ok  " if not problems else "FAIL"
        print("%s %-28s %s" % (status, name, errors[0] if errors else proc.stderr.strip()[:200]))
        for pr in problems:
            print("       " + pr)
        failed += bool(problems)
    print("%d bad-input cases, %d failed" % (len(cases), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
