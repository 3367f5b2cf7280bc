"""The README's command-line section runs as written: every line parses with the real
parser, and each subcommand answers --help through tools/run.sh, the way the README
tells a newcomer to run it."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from uncertaintyseg.commands import cli

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Command line", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [line.split(" #", 1)[0].strip() for line in block.splitlines()]
    return [shlex.split(line) for line in lines if line.startswith("uncertaintyseg")]


def test_the_readme_says_how_to_get_the_command():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Command line", 1)[1].split("```", 1)[0]
    assert "bash tools/run.sh predict" in section and "source .venv/bin/activate" in section


@pytest.mark.parametrize("argv", readme_commands(), ids=" ".join)
def test_each_readme_line_parses_with_the_real_parser(argv):
    if argv[1:] == ["--help"]:
        return  # runs below, through tools/run.sh
    args = cli.build_parser().parse_args(argv[1:])
    assert args.command == argv[1] and callable(args.handler)


def test_each_subcommand_answers_help_through_run_sh(tmp_path):
    # A ready .venv stand-in: run.sh's own check finds it installed and execs its
    # `uncertaintyseg`, here this interpreter with the checkout's package on the path.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    shim = venv / "bin" / "uncertaintyseg"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m uncertaintyseg \"$@\"\n")
    shim.chmod(0o755)
    (venv / ".installed").touch()
    path = f"{ROOT / 'UncertaintySeg'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env = {**os.environ, "UNCERTAINTYSEG_VENV": str(venv), "PYTHONPATH": path}
    subcommands = {argv[1] for argv in readme_commands() if not argv[1].startswith("-")}
    assert {"predict", "metrics", "phantom", "demo", "scene", "convert", "train"} <= subcommands
    for sub in sorted(subcommands):
        done = subprocess.run(["bash", str(ROOT / "tools" / "run.sh"), sub, "--help"],
                              capture_output=True, text=True, env=env, timeout=300,
                              # help texts hold "±" and "x"; the child writes UTF-8
                              # whatever the locale (PEP 538), so read it as such
                              encoding="utf-8")
        assert done.returncode == 0, done.stderr
        assert f"usage: uncertaintyseg {sub}" in done.stdout
        assert "setting up" not in done.stderr   # nothing was installed
