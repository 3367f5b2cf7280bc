"""ruff, with the rules pyproject.toml's [tool.ruff] chooses (and says why), over the
package, the tests, the benchmarks: part of the suite, so the README's test command and
CI run it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache",
                           "UncertaintySeg", "Testing", "benchmarks"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    # ruff missing exits 1 with "No module named ruff": it is in the test extra
    assert done.returncode == 0, done.stdout + done.stderr
