"""`bash tools/run.sh test` runs what it is given: the paths named, else the whole suite.

A stand-in venv whose `python` prints its arguments shows what run.sh hands pytest,
without running a second suite inside this one."""

import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fake_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    (venv / "bin").mkdir()
    for name in ("python", "uncertaintyseg"):  # run.sh's installed-check needs both
        shim = venv / "bin" / name
        shim.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
        shim.chmod(0o755)
    (venv / ".installed").touch()
    return venv


def pytest_args(venv: Path, *args: str) -> list[str]:
    done = subprocess.run(["bash", str(ROOT / "tools" / "run.sh"), "test", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "UNCERTAINTYSEG_VENV": str(venv)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["-m", "pytest"], lines
    return lines[2:]


def test_a_file_runs_alone(fake_venv):
    target = "Testing/pipeline/test_options.py"
    assert pytest_args(fake_venv, target) == [target]
    assert pytest_args(fake_venv, "-q", target + "::test_x") == ["-q", target + "::test_x"]


def test_options_alone_run_the_whole_suite(fake_venv):
    assert pytest_args(fake_venv) == ["Testing"]
    assert pytest_args(fake_venv, "-q") == ["Testing", "-q"]
    # the fast lane: "not slow" is an option's value, not a path
    assert pytest_args(fake_venv, "-m", "not slow") == ["Testing", "-m", "not slow"]


def test_the_ci_script_runs_the_whole_suite():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in ci.splitlines() if "tools/run.sh test" in line)
    assert not any(Path(ROOT, a).exists() for a in shlex.split(command)[3:])
