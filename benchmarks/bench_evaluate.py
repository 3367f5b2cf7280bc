"""`evaluate` per case: seconds of each part for the fused and the 2D-only method.

    PYTHONPATH=UncertaintySeg python benchmarks/bench_evaluate.py --cases CASES_DIR \
        --results PREDICT_OUT_DIR [--lesionwise] [--repeat 2]

For every case that has a result: reading the reference (four modalities and the label
map), reading each method's maps, the voxel metrics, the uncertainty measures and, with
--lesionwise, both lesion-wise definitions. Wall and CPU seconds (process time, which
the other users of a shared machine do not inflate); the better of --repeat runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _timed(function, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    value = function(*args)
    return value, time.perf_counter() - wall, time.process_time() - cpu


def time_case(case_dir, methods, lesionwise: bool) -> dict:
    """{part: (wall s, cpu s)} for one case (sums over the methods)."""
    from uncertaintyseg.evaluation.lesionwise import lesionwise_scores
    from uncertaintyseg.evaluation.pairing import load_output, load_reference, result_path
    from uncertaintyseg.evaluation.table import voxel_scores
    from uncertaintyseg.evaluation.uncertainty_quality import uncertainty_scores

    times: dict[str, list[float]] = {}

    def add(part, wall, cpu):
        previous = times.get(part, [0.0, 0.0])
        times[part] = [previous[0] + wall, previous[1] + cpu]

    reference, wall, cpu = _timed(load_reference, case_dir)
    add("read reference", wall, cpu)
    for method in methods:
        output, wall, cpu = _timed(load_output, method, result_path(method, case_dir.name),
                                   reference)
        add("read outputs", wall, cpu)
        add("voxel metrics", *_timed(voxel_scores, reference, output)[1:])
        add("uncertainty", *_timed(uncertainty_scores, reference, output)[1:])
        if lesionwise:
            add("lesion-wise", *_timed(lesionwise_scores, reference, output)[1:])
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--lesionwise", action="store_true")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    from pathlib import Path

    import torch

    from uncertaintyseg.evaluation.pairing import find_cases, parse_results, result_path

    torch.set_num_threads(1)
    methods = parse_results([args.results])
    cases = [c for c in find_cases(Path(args.cases)) if result_path(methods[0], c.name)]
    best: dict[str, list[float]] = {}
    for case_dir in cases:
        runs = [time_case(case_dir, methods, args.lesionwise) for _ in range(args.repeat)]
        for part in runs[0]:
            wall = min(r[part][0] for r in runs)
            cpu = min(r[part][1] for r in runs)
            best.setdefault(part, []).append((wall, cpu))
            print(f"{case_dir.name}  {part:15s} wall {wall:6.2f} s  cpu {cpu:6.2f} s")
    print(f"\nmean over {len(cases)} cases, methods {[m.name for m in methods]}:")
    total = [0.0, 0.0]
    for part, values in best.items():
        wall, cpu = np.mean(values, axis=0)
        if part != "lesion-wise":
            total = [total[0] + wall, total[1] + cpu]
        print(f"  {part:15s} wall {wall:6.2f} s  cpu {cpu:6.2f} s")
    print(f"  voxel + uncertainty with reading: wall {total[0]:.2f} s, cpu {total[1]:.2f} s")


if __name__ == "__main__":
    main()
