"""ruff, with the rules pyproject.toml's [tool.ruff] chooses (and says why), over the
package, the tests, the benchmarks: part of the suite, so the README's test command and
CI run it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache",
                           "UncertaintySeg", "Testing", "benchmarks", "tools"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    # ruff missing exits 1 with "No module named ruff": it is in the test extra
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_refuses_a_seventh_positional_parameter():
    # PLR0917 (max-positional-args = 6): a 7th parameter goes after `*,` or into a
    # parameter object (issue 21, item 2); a config that lost the rule would pass here.
    wide = "def wide(a, b, c, d, e, f, g):\n    return a\n"
    narrow = "def narrow(a, b, c, d, e, f, *, g):\n    return a\n"
    found = {}
    for name, source in (("wide", wide), ("narrow", narrow)):
        found[name] = subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--no-cache", "--stdin-filename",
             f"UncertaintySeg/uncertaintyseg/{name}.py", "-"],
            input=source, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert found["wide"].returncode == 1 and "PLR0917" in found["wide"].stdout
    assert found["narrow"].returncode == 0, found["narrow"].stdout
