"""Fit the case-level quality estimate (report.json `quality`, issue 17) on predict runs
and store it in a model folder's model.json `quality` section.

    python tools/fit_case_quality.py RUNS_DIR [--data DIR] [--model DIR] [--write]
                                     [--candidates SIGNAL ...] [--notes TEXT]

RUNS_DIR holds one predict output folder per run, named CASE__KIND (KIND `clean`, or a
kind of `python -m uncertaintyseg.inputs.broken`, run with --force); CASE's reference labels are
read from --data/CASE/CASE_seg.nii.gz (a broken variant keeps its case's grid). Signals
are computed from each folder's maps (so runs made before the block existed count) and
cached in RUNS_DIR/quality_signals.json. The fit: every linear model of WT Dice on one or
two of the --candidates (default CANDIDATES) whose weights are all <= 0 (each is a failure signal), the one with the
smallest leave-one-case-out error kept; its interval the largest leave-one-case-out
residual; the limits are quality_model.DEFAULT_LIMITS; `review_below` just above the
highest LOCO estimate of a failed run (WT Dice < 0.7) no limit flags, at most 0.8. Each
run's feature distance (uncertaintyseg.networks.feature_distance) is computed from its inputs with
--model's fit. Prints the per-run table and the issue's measures, also for the whole fit
(signal choice, weights, review_below) redone without each run and without each case;
--write stores them in model.json `quality` and re-renders MODEL_CARD.md.
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "UncertaintySeg"))

from uncertaintyseg import REGIONS  # noqa: E402
from uncertaintyseg.stages.projection_curve import FITTED_AT, folders_count  # noqa: E402
from uncertaintyseg.run.case_quality import compute_signals  # noqa: E402
from uncertaintyseg.run.quality_model import (  # noqa: E402
    DEFAULT_LIMITS, DEFAULT_REVIEW_BELOW, QUALITY_KEY, assess_quality)

CANDIDATES = ("disagreement_2d3d", "brain_uncertainty", "uncertain_ratio",
              "fragment_share", "at_border", "volume_deviation", "nesting_violation",
              "input_findings", "feature_distance")
DATA = Path("/work/shared/data/brats2018")
FAILED = 0.7  # issue 17: every run with WT Dice below this must be flagged
GOOD = 0.85   # issue 17: at most a quarter of the runs with WT Dice from this up flagged
MODEL = ROOT / "UncertaintySeg" / "Resources" / "Models" / "brats-mini"


def _labels(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def volume_ranges(data: Path) -> dict:
    """{region: [min, max] ml} over the reference labels of every case in `data`."""
    import SimpleITK as sitk

    from uncertaintyseg.run.case_quality import volumes_ml
    from uncertaintyseg.files.label_maps import labels_to_regions

    volumes = []
    for seg in sorted(data.glob("*/*_seg.nii.gz")):
        image = sitk.ReadImage(str(seg))
        spacing = image.GetSpacing()[::-1]
        volumes.append(volumes_ml(labels_to_regions(sitk.GetArrayFromImage(image)), spacing))
    return {r: [min(v[r] for v in volumes), max(v[r] for v in volumes)] for r in REGIONS}


def run_record(folder: Path, data: Path, ranges: dict, distance) -> dict:
    """{case, kind, dice, signals, findings} of one predict output folder; `distance`
    maps a loaded case to its feature distance (None without a fit)."""
    from uncertaintyseg.files.contract import read_outputs
    from uncertaintyseg.files.label_maps import labels_to_regions
    from uncertaintyseg.evaluation.metrics import dice

    case_id, kind = folder.name.split("__")
    out = read_outputs(folder)
    report = out["report"]
    case = _run_case(report)
    findings = report["input"].get("warnings") or []
    signals = compute_signals(case.image, case.spacing, out["probabilities"],
                              out["uncertainty"], p2d=out.get("probabilities_2d"),
                              p3d=out.get("probabilities_3d"), findings=findings,
                              ranges=ranges, feature_distance=distance(case))
    reference = labels_to_regions(_labels(data / case_id / f"{case_id}_seg.nii.gz"))
    predicted = labels_to_regions(out["labels"], report["input"]["label_convention"])
    wt = REGIONS.index("WT")
    return {"case": case_id, "kind": kind, "run": folder.name, "findings": findings,
            "dice": round(float(dice(reference[wt], predicted[wt])), 4),
            "signals": signals}


def _run_case(report: dict):
    """The input case of a run, from its report's paths."""
    from uncertaintyseg.files.io import load_case

    return load_case(paths={k: Path(v) for k, v in report["input"]["paths"].items()})


def distance_function(model_dir: Path):
    """case -> its feature distance with `model_dir`'s fit (None without one)."""
    from uncertaintyseg.networks import feature_distance as fd
    from uncertaintyseg.networks.models import load_model

    model = load_model(str(model_dir))
    fit = fd.load_fit(model.folder, model.feature_distance)
    if fit is None:
        return lambda case: None
    return lambda case: round(fit.score(fd.case_features(model, case)), 4)


def records(runs: Path, data: Path, ranges: dict, distance) -> list[dict]:
    """Every run's record, from the cache where it has one (a record cached before the
    feature distance existed gets it added)."""
    cache_path = runs / "quality_signals.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    for folder in sorted(p for p in runs.iterdir() if (p / "report.json").is_file()):
        record = cache.get(folder.name)
        if record is None:
            print(f"signals of {folder.name}", file=sys.stderr)
            cache[folder.name] = run_record(folder, data, ranges, distance)
        elif "feature_distance" not in record["signals"]:
            report = json.loads((folder / "report.json").read_text())
            record["signals"]["feature_distance"] = distance(_run_case(report))
        else:
            continue
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


def fit(rows: list[dict], candidates=CANDIDATES) -> tuple[dict, np.ndarray]:
    """(model.json `quality` parameters without the ranges, its LOCO estimates)."""
    y = np.array([r["dice"] for r in rows])
    subsets = [s for k in (1, 2) for s in itertools.combinations(candidates, k)
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


def flags_of(rows: list[dict], estimates, params: dict) -> np.ndarray:
    """Whether each run is flagged: a limit or finding, or its estimate below
    review_below."""
    flags = []
    for row, estimate in zip(rows, estimates):
        rules = assess_quality(row["signals"], {**params, "coefficients": {}},
                               row["findings"])
        flags.append(rules["flag"] == "review" or estimate < params["review_below"])
    return np.array(flags)


def scores(rows: list[dict], estimates, flags) -> dict:
    """The issue's measures: Spearman of the estimates with WT Dice, flagged counts."""
    from scipy.stats import spearmanr

    dice = np.array([r["dice"] for r in rows])
    return {"spearman": round(float(spearmanr(estimates, dice)[0]), 3),
            "failed_flagged": int((flags & (dice < FAILED)).sum()),
            "good_flagged": int((flags & (dice >= GOOD)).sum())}


def refit_without(rows: list[dict], key: str, candidates=CANDIDATES) -> dict:
    """The measures when the whole fit (signals, weights, review_below) is redone
    without each group of runs sharing `key` ("run" or "case") and judges that group:
    the honest version (the fit set chose review_below to flag its own failures)."""
    from uncertaintyseg.run.quality_model import estimate_dice

    estimates, flags = np.zeros(len(rows)), np.zeros(len(rows), dtype=bool)
    for group in {r[key] for r in rows}:
        held = [i for i, r in enumerate(rows) if r[key] == group]
        params, _ = fit([r for r in rows if r[key] != group], candidates)
        for i in held:
            estimates[i] = estimate_dice(rows[i]["signals"], params)[0]
            flags[i] = flags_of([rows[i]], [estimates[i]], params)[0]
    return scores(rows, estimates, flags)


def _short(reason: str, length: int = 90) -> str:
    """A reason for the card's table: file names without their folders, cut short."""
    reason = re.sub(r"(?:/[^/\s]+)+/(?=[^/\s]+)", "", reason)
    return reason if len(reason) <= length else reason[:length - 3] + "..."


def measures(rows, held_out, params, candidates=CANDIDATES) -> tuple[list[dict], dict]:
    """(per-run rows for the card, the issue's measures) with LOCO estimates and flags;
    also with the fit redone without each run and without each case."""
    flags = flags_of(rows, held_out, params)
    table = []
    for row, estimate, review in zip(rows, held_out, flags):
        block = assess_quality(row["signals"], {**params, "coefficients": {}},
                               row["findings"])
        reason = (block["reasons"][0] if block["flag"] == "review" else
                  f"estimated Dice below {params['review_below']}" if review else "-")
        table.append({"run": row["run"], "dice": row["dice"],
                      "feature_distance": row["signals"].get("feature_distance"),
                      "estimate": round(float(estimate), 3),
                      "flag": "review" if review else "routine",
                      "reason": _short(reason)})
    dice = np.array([r["dice"] for r in rows])
    summary = {"runs": len(rows), "cases": len({r["case"] for r in rows}),
               "failed_below_0.7": int((dice < FAILED).sum()),
               "good_0.85_or_more": int((dice >= GOOD).sum()),
               "as_fitted": scores(rows, held_out, flags),
               "refit_without_run": refit_without(rows, "run", candidates),
               "refit_without_case": refit_without(rows, "case", candidates)}
    return table, summary


def _store(model: Path, params: dict) -> None:
    """params into MODEL/model.json `quality` (atomically), and the card re-rendered."""
    from uncertaintyseg.training.bundle import write_card
    from uncertaintyseg_shared.atomic import write_json_atomic

    path = model / "model.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    params.setdefault("notes", (meta.get(QUALITY_KEY) or {}).get("notes", ""))
    meta[QUALITY_KEY] = params
    write_json_atomic(path, meta)
    write_card(model)
    print(f"stored in {path}, card re-rendered", file=sys.stderr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--write", action="store_true",
                        help="store the fit in MODEL/model.json `quality` (atomically) "
                             "and re-render MODEL/MODEL_CARD.md")
    parser.add_argument("--candidates", nargs="+", choices=CANDIDATES, default=CANDIDATES,
                        help="the signals the fit may use (default: all)")
    parser.add_argument("--notes", help="text for the card's quality section (kept "
                                        "from model.json when not given)")
    args = parser.parse_args(argv)
    ranges = volume_ranges(args.data)
    rows = records(args.runs, args.data, ranges, distance_function(args.model))
    params, held_out = fit(rows, tuple(args.candidates))
    params["volume_ranges_ml"] = ranges
    table, params["fit"] = measures(rows, held_out, params, tuple(args.candidates))
    params["fit"]["candidates"] = list(args.candidates)
    params.update(runs=table, measured=datetime.date.today().isoformat(),
                  command=f"tools/fit_case_quality.py {args.runs} --write")
    params[FITTED_AT] = folders_count(p for p in args.runs.iterdir()
                                      if (p / "report.json").is_file())
    if args.notes is not None:
        params["notes"] = args.notes
    print(json.dumps(params, indent=1))
    if args.write:
        _store(args.model, params)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
