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
import os
import signal
import threading

TERMINATION_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                            if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """A termination signal arrived; a KeyboardInterrupt so Ctrl-C's clean-up runs."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


_installed_by: int | None = None  # the process id that installed the handler


def _raise_terminated(signum, frame) -> None:
    if os.getpid() != _installed_by:  # a forked child the at-fork reset did not reach
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Terminated(signum)


def _default_in_child() -> None:
    """Forked workers (nnU-Net's multiprocessing pools) start with the default SIGTERM.

    Their pool ends them with SIGTERM. A Python-level handler only runs when the
    interpreter gets control back, and a worker blocked in the pool's queue lock when the
    signal came never did: brats-mini v4's preprocessing hung for minutes on one such
    worker although the handler ended any worker it did run in. The kernel's default
    action cannot be missed."""
    for signum in TERMINATION_SIGNALS:
        if signal.getsignal(signum) is _raise_terminated:
            with contextlib.suppress(ValueError):  # not the main thread: nothing to reset
                signal.signal(signum, signal.SIG_DFL)


_at_fork_registered = False


def install() -> dict:
    """Raise `Terminated` in this process's main thread on SIGTERM/SIGHUP (no-op off the
    main thread: Python only lets the main thread set handlers). Returns the previous
    handlers, for `restore` (a caller in a longer-lived process, e.g. a test, or a
    notebook calling `cli.main`)."""
    global _installed_by
    if threading.current_thread() is not threading.main_thread():
        return {}
    global _at_fork_registered
    _installed_by = os.getpid()
    if not _at_fork_registered and hasattr(os, "register_at_fork"):  # not on Windows
        os.register_at_fork(after_in_child=_default_in_child)
        _at_fork_registered = True
    previous = {}
    for signum in TERMINATION_SIGNALS:
        # A signal the caller chose to ignore (nohup sets SIGHUP to SIG_IGN) stays ignored.
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, _raise_terminated)
    return previous


def restore(previous: dict) -> None:
    """Put back the handlers `install` replaced."""
    for signum, handler in previous.items():
        signal.signal(signum, handler)


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
