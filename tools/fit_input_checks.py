"""Fit the modality classifier of the input checks and measure every check's statistic
on the shared BraTS 2018 cases (docs/INPUT-CHECKS.md reports what this prints).

    python tools/fit_input_checks.py fit [--data DIR] [--cache DIR]
        features of every volume, clean and augmented (noise, bias field, gamma, thick
        slices), leave-cases-out accuracy (5 groups of cases), then the fit on all
        cases written to UncertaintySeg/uncertaintyseg/inputs/modality_model.json
    python tools/fit_input_checks.py measure [--data DIR] [--cache DIR]
        each anatomy statistic on every real case and on its broken variants

Needs scikit-learn (installed with nnU-Net v2). Each case is read once (nibabel) into
--cache as int16 .npy, and `fit` keeps the features there (modality_features.npz):
delete it after changing input_features or the augmentations. Run with `nice`: the
features take ~20 s a case, `measure` ~25 s a case on a shared core.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "UncertaintySeg"))

from uncertaintyseg import MODALITIES  # noqa: E402
from uncertaintyseg.inputs import anatomy_checks as anatomy  # noqa: E402
from uncertaintyseg.inputs.broken import make_variant  # noqa: E402
from uncertaintyseg.inputs.input_features import (FEATURE_NAMES, analysis_grid,  # noqa: E402
                                                  volume_features)
from uncertaintyseg.inputs.modality import (MIN_LOG_ODDS, MODEL_PATH,  # noqa: E402
                                            best_assignment)

AUGMENTATIONS = ("noise", "bias_field", "gamma", "thick_slices", "bias_field", "gamma")
FOLDS = 5


def load_views(data: Path, cache: Path):
    """(case name, analysis-grid view (4, Z, Y, X), its spacing) for every case."""
    cache.mkdir(parents=True, exist_ok=True)
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        stored = cache / f"{folder.name}.npy"
        if not stored.exists():
            # nibabel arrays are (X, Y, Z); the package's are (Z, Y, X).
            volumes = [np.asarray(nib.load(folder / f"{folder.name}_{m}.nii.gz").dataobj)
                       .transpose(2, 1, 0) for m in MODALITIES]
            np.save(stored, np.stack(volumes).astype(np.int16))
        view, spacing = analysis_grid(np.load(stored, mmap_mode="r"), (1.0, 1.0, 1.0))
        yield folder.name, view, spacing


def features(data: Path, cache: Path):
    rows, labels, groups, kinds = [], [], [], []
    for index, (name, view, spacing) in enumerate(load_views(data, cache)):
        for kind_index, kind in enumerate(("clean", *AUGMENTATIONS)):
            image = view if kind == "clean" else make_variant(
                view, kind, seed=100 * index + kind_index, spacing=spacing)
            for modality in range(len(MODALITIES)):
                rows.append(volume_features(image[modality], spacing))
                labels.append(modality), groups.append(index), kinds.append(kind_index)
        print(name, flush=True)
    return np.array(rows), np.array(labels), np.array(groups), np.array(kinds)


def _fit(x, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=1.0, max_iter=5000).fit(scaler.transform(x), y)
    return scaler, model


def _log_p(scaler, model, x):
    return model.predict_log_proba(scaler.transform(x))


def _transpositions(count):
    for i, j in itertools.combinations(range(count), 2):
        order = list(range(count))
        order[i], order[j] = j, i
        yield f"{MODALITIES[i]}/{MODALITIES[j]}", order


def validate(x, y, groups) -> dict:
    """Leave-cases-out (FOLDS groups of cases): per volume accuracy; per case (clean and
    augmented) whether the given assignment fits best, and for each pair of volumes
    exchanged the log-odds the check sees (it claims a swap at MIN_LOG_ODDS)."""
    folds = groups % FOLDS
    right, false_odds, swaps = [], [], {}
    for fold in range(FOLDS):
        scaler, model = _fit(x[folds != fold], y[folds != fold])
        log_p = _log_p(scaler, model, x[folds == fold])
        right.extend(np.argmax(log_p, axis=1) == y[folds == fold])
        for start in range(0, len(log_p), len(MODALITIES)):
            case = log_p[start:start + len(MODALITIES)]
            false_odds.append(best_assignment(case)[1])
            for name, order in _transpositions(len(MODALITIES)):
                swaps.setdefault(name, []).append(best_assignment(case[order])[1])
    return {"volumes": len(right), "volume_accuracy": round(float(np.mean(right)), 3),
            "cases": len(false_odds),
            "cases_refused": int(np.sum(np.array(false_odds) >= MIN_LOG_ODDS)),
            "swap_log_odds_min": {k: round(min(v), 2) for k, v in swaps.items()},
            "swaps_named": {k: round(float(np.mean(np.array(v) >= MIN_LOG_ODDS)), 3)
                            for k, v in swaps.items()}}


def fit(args) -> None:
    stored = args.cache / "modality_features.npz"
    if stored.exists():  # delete it after changing the features
        x, y, groups = (np.load(stored)[k] for k in ("x", "y", "groups"))
    else:
        x, y, groups, _ = features(args.data, args.cache)
        np.savez(stored, x=x, y=y, groups=groups)
    validation = validate(x, y, groups)
    print(json.dumps(validation, indent=1))
    scaler, model = _fit(x, y)
    result = {"features": list(FEATURE_NAMES), "classes": list(MODALITIES),
              "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
              "coef": model.coef_.tolist(), "intercept": model.intercept_.tolist(),
              "fitted_on": f"{len(set(groups))} BraTS 2018 cases x {1 + len(AUGMENTATIONS)}"
                           f" (clean, {', '.join(AUGMENTATIONS)})",
              "leave_cases_out": validation}
    temporary = MODEL_PATH.with_suffix(".tmp")
    temporary.write_text(json.dumps(result, indent=1) + "\n")
    temporary.replace(MODEL_PATH)
    print(f"wrote {MODEL_PATH}")


def _statistics(view, spacing, shifted: bool) -> dict:
    masks = view != 0
    result = {"overlap_all_slices": float(masks.all(0).sum() / masks.any(0).sum()),
              "overlap_covered": anatomy.covered_overlap(masks),
              "enhancement": anatomy.enhancement(view),
              "rim": max(anatomy.rim_fraction(v, spacing) for v in view)}
    if shifted:  # what the co-registration check does once it has refused
        result["overlap_moved"] = anatomy.best_shift(masks, anatomy.odd_one(masks),
                                                     spacing)[0]
    return result


def measure(args) -> None:
    views = list(load_views(args.data, args.cache))
    results = {}
    for index, (name, view, spacing) in enumerate(views):
        other = views[(index + 1) % len(views)][1]
        results[name] = {"clean": _statistics(view, spacing, False)}
        for kind in ("mixture", "misalignment", "partial_coverage", "rim",
                     "missing_contrast"):
            variant = make_variant(view, kind, seed=index, spacing=spacing, other=other)
            results[name][kind] = _statistics(variant, spacing,
                                              kind in ("mixture", "misalignment"))
        print(name, json.dumps(results[name]), flush=True)
    for kind in results[views[0][0]]:
        for statistic in results[views[0][0]][kind]:
            values = [r[kind][statistic] for r in results.values()]
            print(f"{kind:18s} {statistic:22s} min {min(values):.3f} max {max(values):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("fit", "measure"))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/brats2018")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/uncertaintyseg-cases"))
    args = parser.parse_args()
    fit(args) if args.command == "fit" else measure(args)


if __name__ == "__main__":
    main()
