#!/usr/bin/python3
"""Runs a README walkthrough exactly as written and checks its outputs.

A walkthrough is the text between `<!-- walkthrough: NAME -->` and
`<!-- /walkthrough -->`; its ```sh blocks run, in order, in one bash shell
(so `cd`, `export`, functions, aliases and `$!` carry over) in a fresh
directory holding `build`, `schemas` and `examples` of this checkout. A
block is cut into steps: each run of command lines followed by the `# `
lines right after it, which are the output the step must print (each an
entire line of its stdout+stderr, in order; `...` stands for any text).
A step whose expected output is a `rawfeat: CODE: ...` error must exit
non-zero; every other step must exit 0.

Usage: readme_walkthrough_test.py README NAME BUILD_DIR SOURCE_DIR
"""

import os
import re
import shlex
import subprocess
import sys
import tempfile


def walkthrough(readme, name):
    text = open(readme, encoding="utf-8").read()
    begin = f"<!-- walkthrough: {name} -->"
    if begin not in text:
        sys.exit(f"FAIL: no '{begin}' in {readme}")
    body = text.split(begin, 1)[1].split("<!-- /walkthrough -->", 1)[0]
    return re.findall(r"```sh\n(.*?)```", body, flags=re.S)


def steps(block):
    """[(command lines, expected lines)] of one block."""
    out = []
    commands, expected = [], []
    for line in block.splitlines():
        if line.startswith("# ") and commands:
            expected.append(line[2:])
            continue
        if expected:
            out.append((commands, expected))
            commands, expected = [], []
        commands.append(line)
    if commands:
        out.append((commands, expected))
    return out


def line_matches(pattern, line):
    parts = [re.escape(p) for p in pattern.split("...")]
    return re.fullmatch(".*".join(parts), line) is not None


def main():
    readme, name, build, source = sys.argv[1:5]
    all_steps = [s for block in walkthrough(readme, name) for s in steps(block)]
    if not all_steps:
        sys.exit("FAIL: the walkthrough has no commands")
    with tempfile.TemporaryDirectory(prefix="rawfeat-walkthrough-") as work:
        os.symlink(os.path.abspath(build), os.path.join(work, "build"))
        for d in ("schemas", "examples"):
            os.symlink(os.path.join(os.path.abspath(source), d),
                       os.path.join(work, d))
        out_dir = os.path.join(work, ".out")
        os.mkdir(out_dir)
        script = ["shopt -s expand_aliases",
                  "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT"]
        for i, (commands, _) in enumerate(all_steps):
            out = shlex.quote(os.path.join(out_dir, str(i)))
            script.append("{\n" + "\n".join(commands) + "\n} > " + out +
                          " 2>&1 < /dev/null")
            script.append(f"echo $? > {out}.rc")
        try:
            subprocess.run(["bash", "-c", "\n".join(script)], cwd=work,
                           timeout=300, check=False)
        except subprocess.TimeoutExpired:
            sys.exit("FAIL: the walkthrough did not finish in 300 s")
        failures = 0
        for i, (commands, expected) in enumerate(all_steps):
            path = os.path.join(out_dir, str(i))
            shown = " / ".join(c for c in commands if c.strip())
            if not os.path.exists(path + ".rc"):
                print(f"FAIL: step did not run: {shown}")
                failures += 1
                continue
            rc = int(open(path + ".rc").read())
            output = open(path, encoding="utf-8", errors="replace").read()
            lines = output.splitlines()
            wants_error = bool(expected) and re.match(
                r"rawfeat: [A-Z_]+: ", expected[0]) is not None
            if (rc != 0) != wants_error:
                print(f"FAIL: exit {rc}{' (expected an error)' if wants_error else ''}: "
                      f"{shown}\n{output}")
                failures += 1
                continue
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
