"""allocator.tune_allocator: large freed buffers stay in the process (no page faults anew)."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "UncertaintySeg"
# 20 buffers of 64 MB allocated, written and freed in turn, as the network's activations
# are: glibc's default mmaps each one and faults every page in again.
CHILD = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from uncertaintyseg.runtime.allocator import tune_allocator
    assert tune_allocator()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    buffer = np.ones(8 << 20)
    del buffer
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True,
                          text=True, check=True, env={"PYTHONPATH": str(PACKAGE_ROOT)})
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_tuned_allocator_keeps_freed_buffers():
    default, tuned = _faults("default"), _faults("tuned")
    # Fault counts depend on the kernel's page sizes (transparent huge pages); the
    # ratio does not: every buffer faulted in against the first one only.
    assert tuned * 5 < default, (tuned, default)


def test_cli_and_cohort_workers_tune_the_allocator(monkeypatch, tmp_path):
    from uncertaintyseg.runtime import allocator
    from uncertaintyseg.commands import cli
    from uncertaintyseg.cohorts import cohort

    calls = []
    monkeypatch.setattr(allocator, "tune_allocator", lambda: calls.append(1) or True)
    assert cli.main(["--list-models"]) == 0
    assert calls == [1]
    row = cohort.process_case(str(tmp_path / "no-case"), str(tmp_path / "out"),
                              {"model": "analytic"})
    assert calls == [1, 1] and row["status"] == "input error"
