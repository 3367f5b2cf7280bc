"""Termination signals handled like Ctrl-C.

A plain `kill`, `timeout`, Slurm's `scancel` and `docker stop` send SIGTERM (a closed
terminal SIGHUP). Python's default for them is to die on the spot: no message, and the
hidden partial output folder stays behind. `install()` turns them into
`KeyboardInterrupt`, so every clean-up path written for Ctrl-C (`finally`, `except
BaseException`) runs and the command line exits with 130 as for Ctrl-C.

`deferred()` holds termination signals back over a few renames that must not be cut in
half (an output folder half old, half new); they are delivered when it ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading

TERMINATION_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                            if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """A termination signal arrived; a KeyboardInterrupt so Ctrl-C's clean-up runs."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signum)


def install() -> None:
    """Raise `Terminated` in the main thread on SIGTERM/SIGHUP (no-op off the main thread:
    Python only lets the main thread set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in TERMINATION_SIGNALS:
        # A signal the caller chose to ignore (nohup sets SIGHUP to SIG_IGN) stays ignored.
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _raise_terminated)


@contextlib.contextmanager
def deferred():
    """Hold SIGINT and the termination signals until the block ends, then deliver the
    first one that arrived (as KeyboardInterrupt / Terminated)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    signums = (signal.SIGINT, *TERMINATION_SIGNALS)
    previous = {s: signal.getsignal(s) for s in signums}

    def remember(signum, frame):
        pending.append(signum)

    for signum in signums:
        if previous[signum] is not signal.SIG_IGN:
            signal.signal(signum, remember)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:
            _deliver(pending[0], previous[pending[0]])


def _deliver(signum: int, handler) -> None:
    if signum == signal.SIGINT and handler is signal.default_int_handler:
        raise KeyboardInterrupt
    if callable(handler):
        handler(signum, None)
    elif handler is signal.SIG_DFL:
        signal.raise_signal(signum)
