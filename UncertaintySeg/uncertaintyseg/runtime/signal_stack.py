"""Keep the calling thread's alternate signal stack as it was around a native call.

OpenVINO's CPU plugin sets an alternate signal stack (sigaltstack) on the thread that
first compiles a model (create_plugin_engine), and the memory behind it goes away when
the plugin is released. CPython installs its signal handlers with SA_ONSTACK, so the
next SIGINT or SIGTERM handled on that thread - a Slicer cancel, Slurm, Ctrl-C while the
outputs are renamed into place - ran on freed memory and the process died with SIGSEGV
instead of exiting 130 with nothing written (seen: a torch run after an OpenVINO run in
one process, then SIGTERM). Restoring the thread's previous stack after the call keeps
Python's handlers on the normal stack. Linux with glibc only; elsewhere a no-op.
"""

from __future__ import annotations

import ctypes
from contextlib import contextmanager

from .allocator import glibc_function


class _Stack(ctypes.Structure):
    # stack_t of <signal.h> on Linux: ss_sp, ss_flags, ss_size.
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int),
                ("ss_size", ctypes.c_size_t)]


def _sigaltstack():
    function = glibc_function("sigaltstack")
    if function is None:
        return None
    function.argtypes = [ctypes.POINTER(_Stack), ctypes.POINTER(_Stack)]
    function.restype = ctypes.c_int
    return function


def current() -> tuple[int, int, int] | None:
    """(address, flags, size) of this thread's alternate signal stack; None where the
    platform has no sigaltstack to ask."""
    function = _sigaltstack()
    if function is None:
        return None
    stack = _Stack()
    function(None, ctypes.byref(stack))
    return (stack.ss_sp or 0, stack.ss_flags, stack.ss_size)


@contextmanager
def kept():
    """Run the block, then give this thread back the alternate signal stack it had."""
    function = _sigaltstack()
    before = _Stack()
    if function is not None:
        function(None, ctypes.byref(before))
    try:
        yield
    finally:
        if function is not None:
            function(ctypes.byref(before), None)
