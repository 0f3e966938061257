#!/usr/bin/env python3
"""The documentation tables are complete: every option each sparkle-run
command's --help lists is in docs/CLI.md's table for that command, and every
SPARKLE_* variable the sources read is in docs/ENVIRONMENT.md's table.

usage: cli_docs_test.py SPARKLE_RUN SOURCE_ROOT
"""
import os
import re
import subprocess
import sys

exe, root = sys.argv[1], sys.argv[2]


def table_rows(path):
    rows = []
    for line in open(path, encoding="utf-8"):
        if line.startswith("|"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def command_rows(path):
    """(command, flag, default, meaning) rows: those of the main table, and
    those of a 3-column table introduced by a line naming `sparkle-run CMD`."""
    rows, command = [], None
    for line in open(path, encoding="utf-8"):
        m = re.search(r"`sparkle-run (\w+)`", line)
        if not line.startswith("|"):
            if line.strip():
                command = m.group(1) if m else None
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) == 4:
            rows.append(cells)
        elif len(cells) == 3 and command:
            rows.append([command] + cells)
    return rows


failures = []
cli_rows = command_rows(os.path.join(root, "docs", "CLI.md"))
for command in ["devices", "conv2d", "bench", "cache", "stream"]:
    out = subprocess.run([exe, command, "--help"], capture_output=True, text=True).stdout
    helped = set(re.findall(r"^\s+(?:-\w \[ )?(--[a-z][a-z0-9-]*)", out, re.M))
    documented = set()
    for cmd, flag, _, _ in cli_rows:
        if cmd == "all" or command in [c.strip() for c in cmd.split(",")]:
            documented.update(re.findall(r"`(--[a-z][a-z0-9-]*)", flag))
    for flag in sorted(helped - documented):
        failures.append("%s %s is in --help but not in docs/CLI.md" % (command, flag))
    for flag in sorted(documented - helped):
        failures.append("%s %s is in docs/CLI.md but not in --help" % (command, flag))

env_doc = {re.sub(r"`", "", r[0]) for r in table_rows(os.path.join(root, "docs", "ENVIRONMENT.md"))}
read = set()
for folder in ["core", "plugins", "tools", "tests", "bench", "include"]:
    for dirpath, _, files in os.walk(os.path.join(root, folder)):
        for name in files:
            if name.endswith((".cpp", ".hpp", ".h", ".py", ".sh")):
                text = open(os.path.join(dirpath, name), encoding="utf-8", errors="replace").read()
                read.update(re.findall(r"(?:getenv|environ\.get|environ\[)\(?\s*\"(SPARKLE_[A-Z0-9_]+)\"", text))
                read.update(re.findall(r"\$\{?(SPARKLE_[A-Z0-9_]+)", text))
for name in sorted(read - env_doc):
    failures.append("%s is read by the sources but not in docs/ENVIRONMENT.md" % name)

for f in failures:
    print("FAIL " + f)
print("%d documented flags, %d variables read; %d problems" % (len(cli_rows), len(read), len(failures)))
sys.exit(1 if failures else 0)
