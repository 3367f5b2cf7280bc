"""Termination signals: held back over the final renames, and never inherited by the
worker processes nnU-Net forks (issue 9 item 5; the SIGTERM run itself is in
test_output_safety.py)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uncertaintyseg.commands import cli
from uncertaintyseg.runtime import signals


def test_signals_held_back_over_the_final_renames_then_delivered():
    previous = signal.getsignal(signal.SIGTERM)
    signals.install()
    try:
        reached_end = False
        with pytest.raises(signals.Terminated):
            with signals.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                reached_end = True
        assert reached_end
    finally:
        signal.signal(signal.SIGTERM, previous)


_POOL_AFTER_INSTALL = """
import multiprocessing, sys
sys.path.insert(0, sys.argv[1])
from uncertaintyseg import signals
signals.install()
# nnU-Net's preprocessing ends its pools with SIGTERM (Pool.__exit__ -> terminate).
with multiprocessing.get_context("fork").Pool(2) as pool:
    assert pool.map(abs, [-1, -2, -3]) == [1, 2, 3]
print("pool ended")
"""


def test_forked_workers_still_end_on_sigterm():
    # Regression: workers inheriting the Ctrl-C-style handler hung in the pool's lock,
    # so `train` (nnU-Net preprocessing under cli.main) never returned.
    package = Path(signals.__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", _POOL_AFTER_INSTALL, str(package)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pool ended" in done.stdout


def test_main_gives_the_callers_handlers_back():
    before = {s: signal.getsignal(s) for s in signals.TERMINATION_SIGNALS}
    cli.main(["--list-models"])
    assert {s: signal.getsignal(s) for s in signals.TERMINATION_SIGNALS} == before


_CHILD_DISPOSITION = """
import multiprocessing, signal, sys
sys.path.insert(0, sys.argv[1])
from uncertaintyseg import signals
signals.install()

def disposition(_):
    return signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

with multiprocessing.get_context("fork").Pool(1) as pool:
    print("child default:", pool.map(disposition, [0])[0])
print("parent handled:", signal.getsignal(signal.SIGTERM) is signals._raise_terminated)
"""


def test_forked_children_start_with_the_default_sigterm():
    # A handler is only run when the interpreter regains control; a worker blocked in a
    # lock when the pool's SIGTERM came hung (brats-mini v4's preprocessing). The kernel's
    # default action in every forked child cannot be missed.
    package = Path(signals.__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", _CHILD_DISPOSITION, str(package)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "child default: True" in done.stdout
    assert "parent handled: True" in done.stdout
