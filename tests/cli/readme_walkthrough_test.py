#!/usr/bin/python3
"""Runs a README walkthrough exactly as written and checks its outputs.

A walkthrough is the text between `<!-- walkthrough: NAME -->` and
`<!-- /walkthrough -->`; its ```sh blocks run, in order, in one bash shell
(so `cd`, `export`, functions, aliases and `$!` carry over) in a fresh
directory holding `build` of this checkout and copies of its `schemas` and
`examples`. `<!-- run: COMMANDS -->` is a step the reader does not see
(what they do in another terminal, such as starting the server); it must
exit 0. Background jobs are killed at the end. A
block is cut into steps: each run of command lines followed by the `# `
lines right after it, which are the output the step must print (each an
entire line of its stdout+stderr, in order; `...` stands for any text; a
bare `#` is an empty line). Each command runs as its own shell command
(a heredoc or a `\` continuation stays with its command). A command whose
step shows a `rawfeat: CODE: ...` error must exit non-zero, one whose
comment says `# exits N` must exit N, and every other command must exit 0.

Usage: readme_walkthrough_test.py README NAME BUILD_DIR SOURCE_DIR
"""

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile


def section(readme, name):
    text = open(readme, encoding="utf-8").read()
    begin = f"<!-- walkthrough: {name} -->"
    if begin not in text:
        sys.exit(f"FAIL: no '{begin}' in {readme}")
    return text.split(begin, 1)[1].split("<!-- /walkthrough -->", 1)[0]


def check_ports_free(body):
    """The README's fixed ports must be free: a server the developer left
    running (scripts/serve.sh) would otherwise make this test hang, or
    receive its data."""
    for port in sorted(set(re.findall(r"127\.0\.0\.1:(\d{2,5})", body))):
        with socket.socket() as s:
            # As the servers do: connections of a previous run waiting in
            # TIME_WAIT do not make the port busy, a listener does.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", int(port)))
                s.listen(1)
            except OSError:
                sys.exit(f"FAIL: port {port} is in use (a rawfeatd from "
                         f"scripts/serve.sh?); this walkthrough starts its own "
                         f"servers there: stop it and run the test again")


def walkthrough(body):
    blocks = []
    for m in re.finditer(r"```sh\n(.*?)```|<!-- run: (.*?) -->", body,
                         flags=re.S):
        blocks.append(m.group(1) if m.group(1) is not None
                      else m.group(2).strip() + "\n")
    return blocks


def commands_of(lines):
    """Shell commands of a step: lines, with heredocs and continuations."""
    out, current, heredoc_end = [], [], None
    for line in lines:
        current.append(line)
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
                out.append("\n".join(current))
                current = []
            continue
        m = re.search(r"<<-?\s*'?\"?(\w+)", line)
        if m:
            heredoc_end = m.group(1)
            continue
        if line.endswith("\\"):
            continue
        if current and any(c.strip() for c in current):
            out.append("\n".join(current))
        current = []
    if current and any(c.strip() for c in current):
        out.append("\n".join(current))
    return out


def steps(block):
    """[(commands, expected lines)] of one block."""
    out = []
    lines, expected = [], []
    for line in block.splitlines():
        if (line.startswith("# ") or line == "#") and lines:
            expected.append(line[2:])
            continue
        if expected:
            out.append((commands_of(lines), expected))
            lines, expected = [], []
        lines.append(line)
    if lines:
        out.append((commands_of(lines), expected))
    return [s for s in out if s[0]]


def line_matches(pattern, line):
    parts = [re.escape(p) for p in pattern.split("...")]
    return re.fullmatch(".*".join(parts), line) is not None


def main():
    readme, name, build, source = sys.argv[1:5]
    body = section(readme, name)
    check_ports_free(body)
    all_steps = [s for block in walkthrough(body) for s in steps(block)]
    if not all_steps:
        sys.exit("FAIL: the walkthrough has no commands")
    with tempfile.TemporaryDirectory(prefix="rawfeat-walkthrough-") as work:
        os.symlink(os.path.abspath(build), os.path.join(work, "build"))
        for d in ("schemas", "examples"):
            shutil.copytree(os.path.join(source, d), os.path.join(work, d))
        out_dir = os.path.join(work, ".out")
        os.mkdir(out_dir)
        script = ["shopt -s expand_aliases",
                  "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT"]
        for i, (commands, _) in enumerate(all_steps):
            for k, command in enumerate(commands):
                out = shlex.quote(os.path.join(out_dir, f"{i}.{k}"))
                script.append("{\n" + command + "\n} > " + out +
                              " 2>&1 < /dev/null")
                script.append(f"echo $? > {out}.rc")
        try:
            subprocess.run(["bash", "-c", "\n".join(script)], cwd=work,
                           timeout=300, check=False)
        except subprocess.TimeoutExpired:
            sys.exit("FAIL: the walkthrough did not finish in 300 s")
        failures = 0
        for i, (commands, expected) in enumerate(all_steps):
            shown = " / ".join(commands)
            output, bad = "", None
            for k, command in enumerate(commands):
                path = os.path.join(out_dir, f"{i}.{k}")
                if not os.path.exists(path + ".rc"):
                    bad = f"did not run: {command}"
                    break
                rc = int(open(path + ".rc").read())
                out = open(path, encoding="utf-8", errors="replace").read()
                output += out
                last = k == len(commands) - 1
                m = re.search(r"#.*\bexits (\d+)", command)
                if m:
                    want = f"exit {m.group(1)}"
                    ok = rc == int(m.group(1))
                elif last and expected and re.match(r"rawfeat: [A-Z_]+: ",
                                                    expected[0]):
                    want, ok = "an error", rc != 0
                else:
                    want, ok = "exit 0", rc == 0
                if not ok:
                    bad = f"exit {rc}, expected {want}: {command}\n{out}"
                    break
            if bad is not None:
                print(f"FAIL: {bad}")
                failures += 1
                continue
            lines = output.splitlines()
            at = 0
            for want in expected:
                while at < len(lines) and not line_matches(want, lines[at]):
                    at += 1
                if at == len(lines):
                    print(f"FAIL: {shown}\n  expected line: {want}\n"
                          f"  output:\n{output}")
                    failures += 1
                    break
                at += 1
        if failures:
            sys.exit(f"FAIL: {failures} of {len(all_steps)} steps")
        print(f"ok: {len(all_steps)} steps of walkthrough '{name}'")


if __name__ == "__main__":
    main()
