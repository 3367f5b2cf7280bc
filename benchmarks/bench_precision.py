"""bf16 against fp32 on the CPU: Dice, entropy and time, from two cohort runs.

    PYTHONPATH=UncertaintySeg python -m uncertaintyseg predict --cases LIST --out OUT_FP32 \
        --precision fp32 --threads 1 --workers 1
    PYTHONPATH=UncertaintySeg python -m uncertaintyseg predict --cases LIST --out OUT_BF16 \
        --precision bf16 --threads 1 --workers 1
    PYTHONPATH=UncertaintySeg python benchmarks/bench_precision.py OUT_FP32 OUT_BF16 \
        --data ../shared/data/brats2018

For every case both runs have: Dice against the reference per region (ET, TC, WT) for
each precision and their difference, the normalised entropy's mean and largest absolute
difference over the brain, and the 2D stage's and the whole run's seconds (a ratio:
the machine is shared, so run the two one after the other, one thread each). Prints one
JSON object per case and a summary line with the largest differences.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def compare(fp32_dir: Path, bf16_dir: Path, reference_path: Path) -> dict:
    from uncertaintyseg import REGIONS
    from uncertaintyseg.files.contract import read_outputs
    from uncertaintyseg.files.label_maps import load_labels
    from uncertaintyseg.evaluation.metrics import case_metrics

    a, b = read_outputs(fp32_dir), read_outputs(bf16_dir)
    reference, _ = load_labels(reference_path, reference=a["reference"])
    spacing = tuple(reversed(a["reference"].GetSpacing()))
    dice_a = case_metrics(reference, a["labels"], spacing)
    dice_b = case_metrics(reference, b["labels"], spacing)
    # The networks' domain: outside the brain crop the export writes zeros.
    brain = (a["probabilities_2d"].max(axis=0) > 0) | (b["probabilities_2d"].max(axis=0) > 0)
    difference = np.abs(a["uncertainty"] - b["uncertainty"])[:, brain]
    times = [r["report"]["timings_s"] for r in (a, b)]
    return {
        "case": fp32_dir.name,
        "dice_fp32": {r: round(dice_a[r]["dice"], 4) for r in REGIONS},
        "dice_bf16": {r: round(dice_b[r]["dice"], 4) for r in REGIONS},
        "dice_abs_difference": {r: round(abs(dice_a[r]["dice"] - dice_b[r]["dice"]), 4)
                                for r in REGIONS},
        "entropy_mean_abs_difference": round(float(difference.mean()), 5),
        "entropy_max_abs_difference": round(float(difference.max()), 4),
        "seconds_2d": [t["uncertainty"] for t in times],
        "seconds_total": [t["total"] for t in times],
        "speed_up_2d": round(times[0]["uncertainty"] / times[1]["uncertainty"], 2),
        "precision": [r["report"]["settings"]["precision"] for r in (a, b)],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32", type=Path, help="cohort output folder of the fp32 run")
    parser.add_argument("bf16", type=Path, help="cohort output folder of the bf16 run")
    parser.add_argument("--data", type=Path, required=True,
                        help="folder of the case folders with their *_seg.nii.gz")
    args = parser.parse_args(argv)
    from uncertaintyseg.cohorts.cohort_table import is_complete
    from uncertaintyseg.files.convert import label_file

    rows = []
    for folder in sorted(p for p in args.fp32.iterdir() if is_complete(p)):
        if not is_complete(args.bf16 / folder.name) or not (args.data / folder.name).is_dir():
            continue
        rows.append(compare(folder, args.bf16 / folder.name,
                            label_file(args.data / folder.name)))
        print(json.dumps(rows[-1]))
    if not rows:
        print("no case has both outputs and a reference", file=sys.stderr)
        return 1
    worst = max(max(r["dice_abs_difference"].values()) for r in rows)
    print(json.dumps({"cases": len(rows), "largest_dice_difference": worst,
                      "largest_entropy_mean_difference":
                          max(r["entropy_mean_abs_difference"] for r in rows),
                      "speed_up_2d": [r["speed_up_2d"] for r in rows]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
