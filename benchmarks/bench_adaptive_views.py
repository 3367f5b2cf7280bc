"""Adaptive views (issue 19 item 1): how many slices could skip the full projection count?

The idea: every slice gets a few views first (`--first`, a spread subset of the full
count's origins), and only slices where those views leave some brain pixel uncertain
get the rest. For each slice with brain this script runs the first views and the full
count (`predict_slice`, the 2D network in torch fp32) and records how many brain pixels
the first views leave with a mean-entropy H(P2D) above each threshold, and how far the
full count's H(P2D) map then lies from the first views' (largest absolute difference
over the slice's brain pixels). A slice counts as quiet at threshold t when no pixel of
it is above t; the 2D work saved is (full - first) / full of the quiet slices' views.

    PYTHONPATH=UncertaintySeg python benchmarks/bench_adaptive_views.py \
        ../shared/data/brats2018/Brats18_CBICA_AQR_1 --threads 1

About 2-3 CPU minutes per case (the first and the full views of every slice).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from uncertaintyseg.networks.models import load_model
from uncertaintyseg.networks.working_grid import from_nnunet
from uncertaintyseg.run.predict import load_case_from
from uncertaintyseg.stages.projection import default_radius, select_origins, thin_origins
from uncertaintyseg.stages.uncertainty import mean_entropy, predict_slice

THRESHOLDS = (0.05, 0.1, 0.2)  # H(P2D) in bits: 0.05 is p = 0.006, 0.2 is p = 0.03


def slice_row(model, image, mask_hw, radius, first: int, full: int) -> dict:
    """The first views' and the full count's statistics of one slice."""
    origins = select_origins(mask_hw, full)
    subset = thin_origins(origins, first)
    means = [predict_slice(model.network_2d, image, o, radius, divisor=model.divisor_2d)[0]
             for o in (subset, origins)]
    h_first, h_full = (mean_entropy(torch.from_numpy(m)).numpy()[:, mask_hw] for m in means)
    row = {f"pixels_above_{t}": int((h_first.max(axis=0) > t).sum()) for t in THRESHOLDS}
    row["largest_change"] = float(np.abs(h_full - h_first).max())
    row["views"] = (len(subset), len(origins))
    return row


def case_rows(case_dir: Path, first: int, full: int) -> list[dict]:
    model = load_model("brats-mini")
    case = load_case_from(case_dir)
    grid = from_nnunet(model, case.image, case.spacing)
    radius = model.radius or default_radius(grid.mask.shape[1:])
    return [slice_row(model, grid.image[:, z], grid.mask[z], radius, first, full)
            for z in range(grid.mask.shape[0]) if grid.mask[z].any()]


def summary(rows: list[dict], first: int, full: int) -> dict:
    views = sum(r["views"][1] for r in rows)
    result = {"slices": len(rows)}
    for t in THRESHOLDS:
        quiet = [r for r in rows if r[f"pixels_above_{t}"] == 0]
        saved = sum(r["views"][1] - r["views"][0] for r in quiet)
        result[str(t)] = {"quiet_slices": len(quiet), "views_saved": round(saved / views, 3),
                          "largest_change_in_quiet": round(max(
                              (r["largest_change"] for r in quiet), default=0.0), 3)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="+", type=Path, help="BraTS case folders")
    parser.add_argument("--first", type=int, default=4, help="views every slice gets")
    parser.add_argument("--full", type=int, default=16, help="views of an uncertain slice")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for case_dir in args.cases:
        start = time.process_time()
        rows = case_rows(case_dir, args.first, args.full)
        print(json.dumps({"case": case_dir.name, **summary(rows, args.first, args.full),
                          "cpu_s": round(time.process_time() - start, 1)}))


if __name__ == "__main__":
    main()
