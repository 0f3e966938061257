#!/usr/bin/env python3
"""Runs one libFuzzer target for a bounded time over its seed corpus.

usage: run_fuzzer.py FUZZER SEED_DIR WORK_DIR [DICT]
New inputs go to WORK_DIR/corpus (never into the source tree), crashes to
WORK_DIR/crash-*. The time is SPARKLE_FUZZ_SECONDS (default 20).
"""
import os
import subprocess
import sys

fuzzer, seeds, work = sys.argv[1:4]
seconds = os.environ.get("SPARKLE_FUZZ_SECONDS", "20")
if not seconds.isdigit() or int(seconds) <= 0:
    sys.exit("SPARKLE_FUZZ_SECONDS='%s' must be a positive integer" % seconds)
corpus = os.path.join(work, "corpus")
os.makedirs(corpus, exist_ok=True)
args = [fuzzer, "-max_total_time=" + seconds, "-timeout=10", "-rss_limit_mb=2048",
        "-malloc_limit_mb=1024", "-print_final_stats=1",
        "-artifact_prefix=" + os.path.join(work, "")]
if len(sys.argv) > 4:
    args.append("-dict=" + sys.argv[4])
sys.exit(subprocess.call(args + [corpus, seeds]))
