"""Fit the feature-space distance of a model (uncertaintyseg.networks.feature_distance) on its
training cases and store it beside its model.json.

    python tools/fit_feature_distance.py [--data DIR] [--model DIR] [--threads N]

The training cases are model.json's split.train, read from --data/CASE. Writes
MODEL/feature_distance.npz (mean, Ledoit-Wolf precision, reference) and model.json's
`feature_distance` entry (the file, what was fitted, the training cases'
leave-one-case-out scores), both atomically. Prints the entry.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "UncertaintySeg"))

from uncertaintyseg.networks import feature_distance as fd  # noqa: E402

DATA = Path("/work/shared/data/brats2018")
MODEL = ROOT / "UncertaintySeg" / "Resources" / "Models" / "brats-mini"


def training_features(model, data: Path, cases: list[str]) -> tuple[dict, float]:
    """({case: (SLICES, C) bottleneck vectors}, CPU seconds per case)."""
    from uncertaintyseg.files.io import load_case

    missing = [c for c in cases if not (data / c).is_dir()]
    if missing:
        raise SystemExit(f"--data {data} lacks the training case(s) {missing}: give the "
                         "folder that holds the model's training cases")
    features, cpu = {}, 0.0
    for case_id in cases:
        case = load_case(case_dir=data / case_id)
        start = time.process_time()
        features[case_id] = fd.case_features(model, case)
        cpu += time.process_time() - start
    return features, cpu / len(cases)


def entry(fit, held_out: dict, size: int, cpu_per_case: float) -> dict:
    """model.json's `feature_distance` entry."""
    scores = np.array(list(held_out.values())) / fit.reference
    return {"file": fd.FIT_FILE, "layer": fd.LAYER, "pooling": "mean over H, W",
            "slices": fd.SLICES, "slice_quantiles": list(fd.SLICE_QUANTILES),
            "covariance": "sklearn LedoitWolf", "shrinkage": round(fit.shrinkage, 4),
            "channels": int(fit.location.size), "cases": len(held_out),
            "reference": round(fit.reference, 4),
            "training_scores_loco": {"min": round(float(scores.min()), 3),
                                     "median": round(float(np.median(scores)), 3),
                                     "max": round(float(scores.max()), 3)},
            "size_bytes": size, "cpu_s_per_case": round(cpu_per_case, 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    from uncertaintyseg.networks.models import MODEL_FILE, load_model
    from uncertaintyseg_shared.atomic import write_json_atomic

    torch.set_num_threads(args.threads)
    model = load_model(str(args.model))
    path = args.model / MODEL_FILE
    meta = json.loads(path.read_text(encoding="utf-8"))
    features, cpu = training_features(model, args.data, list(meta["split"]["train"]))
    fit, held_out = fd.fit_cases(features)
    size = fd.save_fit(fit, args.model / fd.FIT_FILE)
    meta[fd.FIT_KEY] = entry(fit, held_out, size, cpu)
    write_json_atomic(path, meta)
    print(json.dumps(meta[fd.FIT_KEY], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
