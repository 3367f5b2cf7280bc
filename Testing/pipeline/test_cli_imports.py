"""`--help` and argument errors come at once: building the parser imports none of the
heavy libraries (each is imported where a command needs it). Checked in a fresh
interpreter's sys.modules, not timed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "nnunetv2", "SimpleITK", "scipy", "matplotlib", "numpy", "nibabel")
# Runs `python -m uncertaintyseg ARGS` in this interpreter, then prints what it imported.
PROBE = ("import json, runpy, sys\n"
         "sys.argv = ['uncertaintyseg', *sys.argv[1:]]\n"
         "try:\n    runpy.run_module('uncertaintyseg', run_name='__main__')\n"
         "except SystemExit as done:\n    code = done.code\n"
         "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}), file=sys.stderr)\n")


def imported(*argv: str) -> tuple[int, set[str]]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'UncertaintySeg'}{os.pathsep}"
                                      f"{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True,
                          text=True, env=env, timeout=120)
    probe = json.loads(done.stderr.strip().splitlines()[-1])
    return probe["code"], {name.split(".")[0] for name in probe["modules"]}


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"], ["evaluate", "--help"],
                                  ["explain", "--help"], ["metrics", "--help"],
                                  ["train", "--help"], ["scene", "--help"]], ids=" ".join)
def test_help_imports_no_heavy_library(argv):
    code, modules = imported(*argv)
    assert code == 0
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def test_an_argument_error_imports_no_heavy_library():
    code, modules = imported("predict", "--case", "C")  # --out missing: argparse says so
    assert code == 2
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
