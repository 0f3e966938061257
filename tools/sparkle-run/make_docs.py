#!/usr/bin/env python3
"""Generates sparkle-run's man page or its bash completion from the flag
table of docs/CLI.md and the variable table of docs/ENVIRONMENT.md, so that
neither can drift from the documentation.

usage: make_docs.py man|bash CLI.md ENVIRONMENT.md VERSION OUT
"""
import re
import sys

COMMANDS = ["devices", "conv2d", "bench", "cache", "stream"]
CACHE_ACTIONS = ["stats", "list", "clear", "warm"]


def table(path):
    """The rows of the first Markdown table in path, as lists of cells."""
    rows, seen = [], False
    for line in open(path, encoding="utf-8"):
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if set("".join(cells)) <= set("- "):
                continue  # the --- separator
            rows.append([c.replace("\\|", "|") for c in cells])
            seen = True
        elif seen:
            break
    return rows[1:]  # without the header row


def command_rows(path):
    """(command, flag, default, meaning): the main 4-column table, plus the
    3-column tables introduced by a line naming `sparkle-run CMD`."""
    rows, command = [], None
    for line in open(path, encoding="utf-8"):
        m = re.search(r"`sparkle-run (\w+)`", line)
        if not line.startswith("|"):
            if line.strip():
                command = m.group(1) if m else None
            continue
        cells = [c.strip().replace("\\|", "|")
                 for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if set("".join(cells)) <= set("- ") or cells[0] in ("command", "flag"):
            continue
        if len(cells) == 4:
            rows.append(cells)
        elif len(cells) == 3 and command:
            rows.append([command] + cells)
    return rows


def flags_of(cell):
    """'`--pad P|PH,PW`, `-h`' -> ['--pad', '-h']"""
    return re.findall(r"`(-{1,2}[a-z][a-z0-9-]*)", cell)


def roff(text):
    text = text.replace("\\", "\\e")
    text = re.sub(r"`([^`]*)`", r"\\fB\1\\fR", text)
    return "\n".join(("\\&" + l if l.startswith((".", "'")) else l) for l in text.split("\n"))


def man(cli, env, version):
    out = [".TH SPARKLE-RUN 1 \"\" \"sparkle %s\" \"User Commands\"" % version,
           ".SH NAME", "sparkle-run \\- list devices, run and benchmark 2-D convolutions",
           ".SH SYNOPSIS",
           ".B sparkle-run devices\n[\\fB--json\\fR] [\\fB--verbose\\fR]", ".br",
           ".B sparkle-run conv2d\n[\\fIoptions\\fR]", ".br",
           ".B sparkle-run bench\n[\\fIoptions\\fR]", ".br",
           ".B sparkle-run cache\nstats|list|clear|warm [\\fIoptions\\fR]", ".br",
           ".B sparkle-run stream\n[\\fIoptions\\fR]", ".br",
           ".B sparkle-run --version",
           ".SH DESCRIPTION",
           "sparkle runs fp32 NCHW convolutions on the CPU (oneTBB), on any GPU with an "
           "OpenGL 4.5 driver and on other devices through backend plugins, picking the "
           "device expected to be fastest for each call.",
           ".SH OPTIONS"]
    for command, flag, default, meaning in cli:
        out += [".TP", "\\fB%s\\fR: %s" % (roff(command), roff(flag)),
                roff(meaning) + (" (default: %s)" % roff(default) if default else "")]
    out += [".SH ENVIRONMENT"]
    for name, default, effect in env:
        out += [".TP", roff(name), roff(effect) + (" (default: %s)" % roff(default)
                                                   if default else "")]
    out += [".SH EXIT STATUS", "0 on success; 2 for bad input, with one line on stderr naming "
            "the field or file; 1 for an internal failure or a failed \\fB--check\\fR.",
            ".SH SEE ALSO",
            "The installed documentation in \\fIshare/doc/sparkle\\fR: CLI.md, ENVIRONMENT.md, "
            "PLUGINS.md, CACHE.md, SELECTOR.md, RELIABILITY.md."]
    return "\n".join(out) + "\n"


def bash(cli):
    per = {c: set() for c in COMMANDS}
    for command, flag, _, _ in cli:
        targets = COMMANDS if command == "all" else [c.strip() for c in command.split(",")]
        for t in targets:
            if t in per:
                per[t].update(f for f in flags_of(flag) if f.startswith("--"))
    cases = "\n".join("    %s) opts=\"%s\" ;;" % (c, " ".join(sorted(per[c])))
                      for c in COMMANDS)
    return """# bash completion for sparkle-run (generated from docs/CLI.md)
_sparkle_run() {
  local cur=${COMP_WORDS[COMP_CWORD]} command=${COMP_WORDS[1]} opts
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "%s --help --version" -- "$cur"))
    return
  fi
  case "$command" in
%s
    *) return ;;
  esac
  if [ "$command" = cache ] && [ "$COMP_CWORD" -eq 2 ]; then
    COMPREPLY=($(compgen -W "%s" -- "$cur"))
  elif [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F _sparkle_run sparkle-run
""" % (" ".join(COMMANDS), cases, " ".join(CACHE_ACTIONS))


def main():
    mode, cli_md, env_md, version, out = sys.argv[1:6]
    cli = command_rows(cli_md)
    env = [r for r in table(env_md) if len(r) == 3]
    if not cli or not env:
        sys.exit("no tables found in %s / %s" % (cli_md, env_md))
    text = man(cli, env, version) if mode == "man" else bash(cli)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
