"""Shared timing helper for the benchmark scripts (run from the repository root as
`PYTHONPATH=UncertaintySeg python benchmarks/<script>.py`; this folder is then on sys.path)."""

import time


def best_time(function, repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls after one warm-up call (s)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)
