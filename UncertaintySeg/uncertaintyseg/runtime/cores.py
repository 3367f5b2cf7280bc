"""How many CPU threads a run gets: `--threads auto` resolved from the free cores.

Standard library only (the CLI, the cohort planner and `pipeline.Settings` use it before
torch is imported). A core is free when this process may run on it (its affinity mask:
taskset, cgroups, Slurm's cpuset) and the machine's 1-minute load does not already keep
it busy. More torch threads than free cores makes every OpenMP thread wait for a
descheduled partner: on the shared 2-core box 2 threads beside one busy core made the
projection warps 3-6x slower (benchmarks/README.md).
"""

from __future__ import annotations

import os

from ..options import AUTO


def free_cores() -> int:
    """CPUs this process may use that the 1-minute load leaves idle; at least one.

    The load is the whole machine's, the affinity mask this process's: the free count is
    the smaller of the allowed CPUs and the machine's CPUs less its load.
    """
    if hasattr(os, "sched_getaffinity"):
        allowed = len(os.sched_getaffinity(0))
    else:  # macOS, Windows: no affinity mask to read
        allowed = os.cpu_count() or 1
    total = os.cpu_count() or allowed
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average kept (Windows) or readable
        load = 0.0
    return max(1, min(allowed, total - int(round(load))))


def is_auto(threads) -> bool:
    """True when no thread count was asked for (None or `auto`)."""
    return threads is None or threads == AUTO


def resolve_threads(threads: int | str | None) -> int:
    """The torch thread count of a run: a number as it is, `auto` or None the free cores."""
    return free_cores() if is_auto(threads) else int(threads)
