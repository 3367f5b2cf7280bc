"""The old default `predict` path against the new one, side by side on one BraTS case.

    git archive OLD_COMMIT UncertaintySeg | tar -x -C /tmp/old
    taskset -c 1 env PYTHONPATH=UncertaintySeg python benchmarks/bench_speed.py CASE_DIR \
        --old /tmp/old [--model brats-mini] [--variants old new old-fp32] [--keep DIR]

Runs `uncertaintyseg predict --projections preview` in a child process per variant, one
after the other, with one torch thread:

- `old`: the tree at OLD_COMMIT (PYTHONPATH=OLD/UncertaintySeg) with its defaults and
  `--threads 1` (its precision default, `auto`, is bf16 on CPUs with native bf16);
- `new`: this tree with its defaults (`--threads auto`, which is 1 under `taskset -c 1`;
  report.json records it);
- `old-fp32`: the old tree with `--precision fp32 --threads 1`, the default before
  `auto` chose bf16 (the 45 s of issue 12 were measured with it).

For each: wall seconds, CPU seconds of the child (user + system, from getrusage: on a
shared core the wall time counts other people's jobs, the CPU time only this run's), the
stages of report.json. Then the ratios to `new`, and how far the new maps are from each
old one (largest absolute difference of the fused probabilities and of the normalised
entropy, and the share of voxels whose label differs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent.parent / "UncertaintySeg"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_variant(name: str, case_dir: Path, out: Path, old: Path | None, model: str) -> dict:
    """One `predict` in a child process; wall and CPU seconds, report.json's stages."""
    tree = HERE if name == "new" else old / "UncertaintySeg"
    extra = {"new": [], "old": ["--threads", "1"],
             "old-fp32": ["--threads", "1", "--precision", "fp32"]}[name]
    command = [sys.executable, "-m", "uncertaintyseg", "predict", "--case", str(case_dir),
               "--out", str(out), "--model", model, "--projections", "preview",
               "--progress", "none", *extra]
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {"variant": name, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "threads": report["device"]["threads"],
            "precision": report["device"]["precision"],
            "stages_s": report["timings_s"]}


def differences(new_dir: Path, old_dir: Path) -> dict:
    """How far the new outputs are from an old run's."""
    from uncertaintyseg.files.contract import read_outputs

    a, b = read_outputs(new_dir), read_outputs(old_dir)
    return {"probabilities_max_abs": round(float(np.abs(a["probabilities"]
                                                        - b["probabilities"]).max()), 5),
            "uncertainty_max_abs": round(float(np.abs(a["uncertainty"]
                                                      - b["uncertainty"]).max()), 5),
            "labels_differ_fraction": float((a["labels"] != b["labels"]).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case_dir", type=Path)
    parser.add_argument("--old", type=Path, required=True,
                        help="a folder holding the old tree's UncertaintySeg/")
    parser.add_argument("--model", default="brats-mini")
    parser.add_argument("--variants", nargs="+", default=["old", "new", "old-fp32"],
                        choices=["old", "new", "old-fp32"])
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the output folders here (default: discarded)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        rows = []
        for name in args.variants:
            rows.append(run_variant(name, args.case_dir, root / name, args.old, args.model))
            print(json.dumps(rows[-1]), flush=True)
        by_name = {row["variant"]: row for row in rows}
        if "new" in by_name:
            for row in rows:
                if row["variant"] == "new":
                    continue
                new = by_name["new"]
                row["speed_up_of_new"] = {
                    "cpu": round(row["cpu_s"] / new["cpu_s"], 2),
                    "wall": round(row["wall_s"] / new["wall_s"], 2),
                    "stage_2d_wall": round(row["stages_s"]["uncertainty"]
                                           / new["stages_s"]["uncertainty"], 2)}
                row["new_minus_this"] = differences(root / "new", root / row["variant"])
                print(json.dumps({row["variant"]: {k: row[k] for k in (
                    "speed_up_of_new", "new_minus_this")}}), flush=True)
    print(json.dumps({"case": args.case_dir.name, "model": args.model, "rows": rows}))


if __name__ == "__main__":
    main()
