#!/usr/bin/env python3
"""Runs a test program only if /proc/cpuinfo lists every flag given.

usage: run_if_cpu_has.py FLAG[,FLAG...] PROGRAM [ARGS...]  (FLAGS may be '')
Exits 77 (meson's "skipped") when a flag is missing, so that a test of an
ISA this machine lacks is reported as skipped, never as passed.
"""
import os
import sys


def cpu_flags():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    want = [f for f in sys.argv[1].split(',') if f]
    missing = [f for f in want if f not in cpu_flags()]
    if missing:
        print('skipped: this CPU lacks ' + ', '.join(missing))
        return 77
    os.execv(sys.argv[2], sys.argv[2:])
    return 1


if __name__ == '__main__':
    sys.exit(main())
