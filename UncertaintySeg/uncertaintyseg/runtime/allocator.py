"""glibc malloc settings for a process that runs the networks (issue 19, item 4).

With glibc's defaults every activation buffer over the dynamic mmap threshold (tens of
MB for the 2D network's batch of 16 views) is mmap'ed, and unmapped again when torch
frees it; the next call faults every page in anew. That was 21 of 150 CPU-seconds of a
BraTS case, all system time (review cpu-profile-3, section 3.4): keeping the memory
(no mmap for large blocks, no trimming of the heap top) made the eager 2D network
1.36-1.41x faster and the whole `predict` 1.14x, with bit-identical output.

The review set them as environment variables (MALLOC_MMAP_THRESHOLD_,
MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_), which glibc reads only when a process starts;
`mallopt` sets the same three from inside the process, for the allocations that come
after, so every entry point (the CLI, which the Slicer module's runner launches, and the
cohort workers) calls `tune_allocator` first. Elsewhere (macOS, Windows, musl) it does
nothing. A process's freed memory then stays with it until it exits: its peak RSS is
unchanged, but the memory is not handed back in between.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt parameters (glibc malloc.h). The review's environment gave both thresholds
# 16 GiB; mallopt takes a C int, so they are INT_MAX (2 GiB) here: no activation buffer
# of these networks comes near it.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
INT_MAX = 2**31 - 1
SETTINGS = ((M_MMAP_THRESHOLD, INT_MAX), (M_TRIM_THRESHOLD, INT_MAX), (M_TOP_PAD, 1 << 30))


def glibc_function(name: str):
    """glibc's function `name` through ctypes; None off Linux/glibc or where it lacks it."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def tune_allocator() -> bool:
    """Set SETTINGS with glibc's mallopt; True when every one was taken."""
    mallopt = glibc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS)
