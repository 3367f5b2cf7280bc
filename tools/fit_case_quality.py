"""Fit the case-level quality estimate (report.json `quality`, issue 17) on predict runs
and store it in a model folder's model.json `quality` section.

    python tools/fit_case_quality.py RUNS_DIR [--data DIR] [--model DIR] [--write]

RUNS_DIR holds one predict output folder per run, named CASE__KIND (KIND `clean`, or a
kind of `python -m uncertaintyseg.broken`, run with --force); CASE's reference labels are
read from --data/CASE/CASE_seg.nii.gz (a broken variant keeps its case's grid). Signals
are computed from each folder's maps (so runs made before the block existed count) and
cached in RUNS_DIR/quality_signals.json. The fit: every linear model of WT Dice on one or
two CANDIDATES whose weights are all <= 0 (each is a failure signal), the one with the
smallest leave-one-case-out error kept; its interval the largest leave-one-case-out
residual; the limits are quality_model.DEFAULT_LIMITS; `review_below` just above the
highest LOCO estimate of a failed run (WT Dice < 0.7) no limit flags, at most 0.8. Prints
the per-run table (Markdown, for the model card) and the issue's measures.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "UncertaintySeg"))

from uncertaintyseg import REGIONS  # noqa: E402
from uncertaintyseg.case_quality import compute_signals  # noqa: E402
from uncertaintyseg.quality_model import (  # noqa: E402
    DEFAULT_LIMITS, DEFAULT_REVIEW_BELOW, QUALITY_KEY, assess_quality)

CANDIDATES = ("disagreement_2d3d", "brain_uncertainty", "uncertain_ratio",
              "fragment_share", "at_border", "volume_deviation", "nesting_violation",
              "input_findings")
DATA = Path("/work/shared/data/brats2018")
FAILED = 0.7  # issue 17: every run with WT Dice below this must be flagged
MODEL = ROOT / "UncertaintySeg" / "Resources" / "Models" / "brats-mini"


def _labels(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def volume_ranges(data: Path) -> dict:
    """{region: [min, max] ml} over the reference labels of every case in `data`."""
    import SimpleITK as sitk

    from uncertaintyseg.case_quality import volumes_ml
    from uncertaintyseg.label_maps import labels_to_regions

    volumes = []
    for seg in sorted(data.glob("*/*_seg.nii.gz")):
        image = sitk.ReadImage(str(seg))
        spacing = image.GetSpacing()[::-1]
        volumes.append(volumes_ml(labels_to_regions(sitk.GetArrayFromImage(image)), spacing))
    return {r: [min(v[r] for v in volumes), max(v[r] for v in volumes)] for r in REGIONS}


def run_record(folder: Path, data: Path, ranges: dict) -> dict:
    """{case, kind, dice, signals, findings} of one predict output folder."""
    from uncertaintyseg.contract import read_outputs
    from uncertaintyseg.io import load_case
    from uncertaintyseg.label_maps import labels_to_regions
    from uncertaintyseg.metrics import dice

    case_id, kind = folder.name.split("__")
    out = read_outputs(folder)
    report = out["report"]
    case = load_case(paths={k: Path(v) for k, v in report["input"]["paths"].items()})
    findings = report["input"].get("warnings") or []
    signals = compute_signals(case.image, case.spacing, out["probabilities"],
                              out["uncertainty"], p2d=out.get("probabilities_2d"),
                              p3d=out.get("probabilities_3d"), findings=findings,
                              ranges=ranges)
    reference = labels_to_regions(_labels(data / case_id / f"{case_id}_seg.nii.gz"))
    predicted = labels_to_regions(out["labels"], report["input"]["label_convention"])
    wt = REGIONS.index("WT")
    return {"case": case_id, "kind": kind, "run": folder.name, "findings": findings,
            "dice": round(float(dice(reference[wt], predicted[wt])), 4),
            "signals": signals}


def records(runs: Path, data: Path, ranges: dict) -> list[dict]:
    """Every run's record, from the cache where it has one."""
    cache_path = runs / "quality_signals.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    for folder in sorted(p for p in runs.iterdir() if (p / "report.json").is_file()):
        if folder.name not in cache:
            print(f"signals of {folder.name}", file=sys.stderr)
            cache[folder.name] = run_record(folder, data, ranges)
            cache_path.write_text(json.dumps(cache, indent=1))
    return list(cache.values())


def _design(rows: list[dict], names) -> np.ndarray:
    return np.array([[1.0] + [float(r["signals"].get(n) or 0.0) for n in names]
                     for r in rows])


def loco(rows: list[dict], names) -> np.ndarray:
    """Leave-one-case-out estimates of WT Dice (a case's runs predicted by a fit on the
    other cases' runs), clipped to [0, 1]."""
    y = np.array([r["dice"] for r in rows])
    x = _design(rows, names)
    cases = np.array([r["case"] for r in rows])
    out = np.zeros(len(rows))
    for case in set(cases):
        held = cases == case
        beta = np.linalg.lstsq(x[~held], y[~held], rcond=None)[0]
        out[held] = x[held] @ beta
    return np.clip(out, 0.0, 1.0)


def _signs_hold(rows: list[dict], names) -> bool:
    """Every candidate is a failure signal (higher = worse): a fit that gives one a
    positive weight learnt the few runs' noise, not a failure, and is not considered."""
    y = np.array([r["dice"] for r in rows])
    beta = np.linalg.lstsq(_design(rows, names), y, rcond=None)[0]
    return bool(np.all(beta[1:] <= 0))


def review_threshold(rows: list[dict], held_out: np.ndarray, params: dict) -> float:
    """The estimate below which a case is flagged: just above the highest LOCO estimate
    of a run with WT Dice < FAILED that no limit or finding flags (so that every failed
    run of the fit set is flagged), never above DEFAULT_REVIEW_BELOW."""
    highest = 0.0
    for row, estimate in zip(rows, held_out):
        rules = assess_quality(row["signals"], {**params, "coefficients": {}},
                               row["findings"])
        if row["dice"] < FAILED and rules["flag"] != "review":
            highest = max(highest, float(estimate))
    return round(min(highest + 0.01, DEFAULT_REVIEW_BELOW), 3)


def fit(rows: list[dict]) -> tuple[dict, np.ndarray]:
    """(model.json `quality` parameters without the ranges, its LOCO estimates)."""
    y = np.array([r["dice"] for r in rows])
    subsets = [s for k in (1, 2) for s in itertools.combinations(CANDIDATES, k)
               if _signs_hold(rows, s)]
    best = min(subsets, key=lambda s: float(np.mean(np.abs(loco(rows, s) - y))))
    held_out = loco(rows, best)
    beta = np.linalg.lstsq(_design(rows, best), y, rcond=None)[0]
    params = {"intercept": round(float(beta[0]), 5),
              "coefficients": {n: round(float(b), 5) for n, b in zip(best, beta[1:])},
              "interval": round(float(np.max(np.abs(held_out - y))), 3),
              "limits": dict(DEFAULT_LIMITS)}
    params["review_below"] = review_threshold(rows, held_out, params)
    return params, held_out


def measures(rows, held_out, params) -> tuple[str, dict]:
    """(Markdown table per run, the issue's measures) with LOCO estimates and flags."""
    from scipy.stats import spearmanr

    lines = ["| run | WT Dice | estimated (LOCO) | flag | first reason |",
             "|---|---|---|---|---|"]
    flags = []
    for row, estimate in zip(rows, held_out):
        block = assess_quality(row["signals"], {**params, "intercept": 0.0,
                                                "coefficients": {}}, row["findings"])
        review = block["flag"] == "review" or estimate < params["review_below"]
        flags.append(review)
        reason = (block["reasons"][0] if block["flag"] == "review" else
                  f"estimated Dice below {params['review_below']}" if review else "-")
        lines.append(f"| {row['run']} | {row['dice']:.3f} | {estimate:.3f} | "
                     f"{'review' if review else 'routine'} | {reason} |")
    dice = np.array([r["dice"] for r in rows])
    flags = np.array(flags)
    summary = {"runs": len(rows), "cases": len({r["case"] for r in rows}),
               "spearman_loco": round(float(spearmanr(held_out, dice)[0]), 3),
               "failed_below_0.7": int((dice < 0.7).sum()),
               "failed_flagged": int((flags & (dice < 0.7)).sum()),
               "good_0.85_or_more": int((dice >= 0.85).sum()),
               "good_flagged": int((flags & (dice >= 0.85)).sum())}
    return "\n".join(lines), summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--write", action="store_true",
                        help="store the fit in MODEL/model.json `quality` (atomically)")
    args = parser.parse_args(argv)
    ranges = volume_ranges(args.data)
    rows = records(args.runs, args.data, ranges)
    params, held_out = fit(rows)
    params["volume_ranges_ml"] = ranges
    table, summary = measures(rows, held_out, params)
    params["fit"] = summary
    print(table)
    print(json.dumps(params, indent=1))
    if args.write:
        from uncertaintyseg_shared.atomic import write_json_atomic

        path = args.model / "model.json"
        meta = json.loads(path.read_text(encoding="utf-8"))
        meta[QUALITY_KEY] = params
        write_json_atomic(path, meta)
        print(f"stored in {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
