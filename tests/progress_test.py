#!/usr/bin/env python3
"""bench's progress: on a terminal one line rewritten in place with the time
left; into a pipe one plain line per layer.

usage: progress_test.py SPARKLE_RUN SHAPES_FILE
"""
import os
import pty
import subprocess
import sys

exe, shapes = sys.argv[1], sys.argv[2]
args = [exe, "bench", "--shapes", shapes, "--repeat", "1", "--warmup", "0", "--spinup", "0",
        "--device", "cpu"]
layers = sum(1 for l in open(shapes) if l.split("#")[0].strip())

# A terminal on stderr.
master, slave = pty.openpty()
proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=slave)
os.close(slave)
chunks = []
while True:
    try:
        data = os.read(master, 4096)
    except OSError:
        break
    if not data:
        break
    chunks.append(data)
proc.wait()
tty = b"".join(chunks).decode("utf-8", "replace")
problems = []
if proc.returncode != 0:
    problems.append("exit %d on a terminal" % proc.returncode)
if tty.count("\r\x1b[K") != layers:
    problems.append("%d in-place rewrites for %d layers: %r" % (tty.count("\r\x1b[K"), layers,
                                                              tty[:200]))
if "s left)" not in tty:
    problems.append("no estimate of the time left")
if tty.rstrip("\r\n").count("\n") > 0:
    problems.append("more than one line on the terminal")

# A pipe: plain lines, one per layer, no control characters.
piped = subprocess.run(args, capture_output=True, text=True)
lines = [l for l in piped.stderr.splitlines() if l.startswith("[")]
if len(lines) != layers or "\x1b" in piped.stderr or "\r" in piped.stderr:
    problems.append("piped: %d lines for %d layers, control characters %s" %
                    (len(lines), layers, "\x1b" in piped.stderr))
for p in problems:
    print("FAIL " + p)
print("progress: %d layers, %s" % (layers, "ok" if not problems else "failed"))
sys.exit(1 if problems else 0)
