"""Throughput of the spherical projection warps (DESIGN 4.1), CPU.

Projected slices per second (slice x origin pairs) at 240 x 240: ``project`` on a
4-channel slice (the network input) and ``back_project`` of 3-channel maps (the
network output), batches of 16 and 64 origins, each including the computation of its
sampling grids. The grid share is reported separately.

Run:  PYTHONPATH=UncertaintySeg python benchmarks/bench_projection.py [--threads N]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from uncertaintyseg.stages.projection import (back_project, default_radius, origin_grid, project,
                                              sampling_grid)
from timing import best_time

SHAPE = (240, 240)


def measure(batch: int, repeats: int) -> list[tuple[str, float, float]]:
    """(operation, seconds per batch, origins per second) for one batch size."""
    radius = default_radius(SHAPE)
    origins = torch.from_numpy(origin_grid(np.ones(SHAPE, bool))[:batch])
    image = torch.randn((4,) + SHAPE)
    maps = torch.rand((batch, 3) + SHAPE)
    cases = {
        "project (4 ch)": lambda: project(image, origins, radius),
        "back_project (3 ch)": lambda: back_project(maps, origins, radius),
        "  sampling_grid only": lambda: sampling_grid(origins, SHAPE, radius, inverse=True),
    }
    rows = []
    with torch.inference_mode():
        for name, function in cases.items():
            seconds = best_time(function, repeats)
            rows.append((name, seconds, batch / seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"spherical projection, {SHAPE[0]} x {SHAPE[1]}, torch {torch.__version__}, "
          f"{args.threads} threads, best of {args.repeats}")
    print(f"| {'operation':<22} | origins/batch | ms/batch | projected slices/s |")
    print(f"|{'-' * 24}|---------------|----------|--------------------|")
    for batch in (16, 64):
        for name, seconds, rate in measure(batch, args.repeats):
            print(f"| {name:<22} | {batch:>13} | {seconds * 1e3:>8.1f} | {rate:>18.0f} |")


if __name__ == "__main__":
    main()
