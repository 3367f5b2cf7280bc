"""Fit the `--uncertainty-map error-probability` map (uncertaintyseg.stages.error_map) on a
model's validation results and store it in the model's model.json `error_map` block.

    python tools/fit_error_map.py RESULTS [--data DIR] [--model DIR] [--write]

RESULTS holds one `predict --outputs all` folder per validation case (named by case, as
`predict --cases` writes them); references from --data/CASE. Per region: lambda is the
`error_map.LAMBDAS` value with the best mean error AUROC over the cases, a and b a
logistic regression (Platt scaling) of the errors on the score over a stratified sample
of brain voxels. Reported leave-one-case-out: lambda chosen on the other cases, the
held-out case scored (the ranking does not depend on a, b). Beside it, the mean-entropy
map and the map the runs wrote (uncertainty.nii.gz, named by their report.json
`uncertainty_map`: binned for runs before DECISIONS #22, the previous fit's
error-probability map after #24) and the border baseline 1 / (1 + mm), means over the cases.
Prints the table; --write stores the block (atomically) and re-renders the card.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "UncertaintySeg"))

from sklearn.linear_model import LogisticRegression  # noqa: E402

from uncertaintyseg import REGIONS  # noqa: E402
from uncertaintyseg.stages.projection_curve import FITTED_AT, folders_count  # noqa: E402
from uncertaintyseg.stages import error_map as em  # noqa: E402
from uncertaintyseg.evaluation import uncertainty_quality as uq  # noqa: E402
from uncertaintyseg.evaluation.model_card import store_block  # noqa: E402
from uncertaintyseg.evaluation.pairing import (  # noqa: E402
    Method, load_output, load_reference, read_maps)

DATA = Path("/work/shared/data/brats2018")
MODEL = ROOT / "UncertaintySeg" / "Resources" / "Models" / "brats-mini"
SAMPLE = 50_000  # voxels per class, case and region for the Platt fit
WRITTEN = "as written"  # uncertainty.nii.gz; the block names it with the runs' map
MAPS = ("mean-entropy", WRITTEN, "border")


def case_arrays(data: Path, results: Path, case_id: str) -> dict:
    """Per region, over the brain: nearness, mean-entropy, the written map, error, distance."""
    reference = load_reference(data / case_id)
    output = load_output(Method("fused", results), results / case_id, reference)
    p2d = read_maps(results / case_id / "probabilities_2d.nii.gz", reference.grid)
    brain, arrays = reference.brain, {}
    for i, region in enumerate(REGIONS):
        distance = uq.border_distance(output.regions[i], reference.spacing, brain)
        arrays[region] = {
            "near": (np.zeros(int(brain.sum())) if distance is None else 1 / (1 + distance)),
            "h": em.entropy(p2d[i][brain]), WRITTEN: output.uncertainty[i][brain],
            "error": reference.regions[i][brain] != output.regions[i][brain],
            "distance": distance}
    return arrays


def scores(u, a: dict) -> tuple[float, float]:
    return uq.auroc(u, a["error"]), uq.far_scores(u, a["error"], a["distance"])["auroc_far"]


def region_table(arrays: dict, region: str) -> dict:
    """{(case, name): (auroc, auroc_far)} for every lambda and every map of MAPS."""
    table = {}
    for case_id, per_region in arrays.items():
        a = per_region[region]
        for lam in em.LAMBDAS:
            table[(case_id, lam)] = scores(em.score(a["near"], a["h"], lam), a)
        table[(case_id, "mean-entropy")] = scores(a["h"], a)
        table[(case_id, WRITTEN)] = scores(a[WRITTEN], a)
        table[(case_id, "border")] = scores(a["near"], a)
    return table


def best_lambda(table: dict, cases: list[str]) -> float:
    return max(em.LAMBDAS, key=lambda lam: np.mean([table[(c, lam)][0] for c in cases]))


def platt(arrays: dict, region: str, lam: float, rng) -> tuple[float, float]:
    """a, b of sigmoid(a * score + b) fitted on every case's errors and correct voxels,
    each class sampled and weighted back to its count (so the probability is the
    brain's error rate, not the sample's)."""
    xs, ys, ws = [], [], []
    for per_region in arrays.values():
        a = per_region[region]
        s = em.score(a["near"], a["h"], lam)
        for label in (True, False):
            index = np.flatnonzero(a["error"] == label)
            pick = rng.choice(index, min(SAMPLE, index.size), replace=False)
            xs.append(s[pick])
            ys.append(np.full(pick.size, label))
            ws.append(np.full(pick.size, index.size / max(pick.size, 1)))
    model = LogisticRegression(C=1e6).fit(np.concatenate(xs)[:, None], np.concatenate(ys),
                                          sample_weight=np.concatenate(ws))
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def fit(arrays: dict) -> dict:
    """The model.json block: per-region lambda, a, b and the scores."""
    cases, rng = sorted(arrays), np.random.default_rng(0)
    block = {"features": list(em.FEATURES), "cases": cases, "far_mm": uq.FAR_MM,
             "regions": {}, "leave_one_case_out": {}, "in_sample": {}, "maps": {},
             "error_share_far": {}}
    for region in REGIONS:
        table = region_table(arrays, region)
        lam = best_lambda(table, cases)
        a, b = platt(arrays, region, lam, rng)
        block["regions"][region] = {"lambda": lam, "a": a, "b": b}
        held = [table[(c, best_lambda(table, [o for o in cases if o != c]))] for c in cases]
        block["leave_one_case_out"][region] = _means(held)
        block["in_sample"][region] = _means([table[(c, lam)] for c in cases])
        for name in MAPS:
            block["maps"].setdefault(name, {})[region] = _means(
                [table[(c, name)] for c in cases])
        block["error_share_far"][region] = float(np.nanmean([
            _share_far(arrays[c][region]) for c in cases]))
    return block


def _share_far(a: dict) -> float:
    """The share of the case's error voxels beyond the border (no map needed)."""
    return uq.far_scores(np.zeros(a["error"].size), a["error"], a["distance"])["error_share_far"]


def _means(rows) -> dict:
    return {"auroc": float(np.nanmean([r[0] for r in rows])),
            "auroc_far": float(np.nanmean([r[1] for r in rows]))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="predict --outputs all folders, per case")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--write", action="store_true", help="store the block in model.json")
    parser.add_argument("--no-card", action="store_true",
                        help="leave MODEL_CARD.md as it is: the generator rewrites the whole "
                             "card, dropping sections added by hand (brats-mini's case "
                             "quality), and cannot render the phantom's older model.json")
    args = parser.parse_args(argv)
    case_ids = sorted(p.name for p in args.results.iterdir() if (p / "report.json").is_file())
    if not case_ids:
        parser.error(f"{args.results}: no predict output folders (with report.json); pass "
                     "the folder `predict --cases ... --outputs all` wrote")
    arrays = {c: case_arrays(args.data, args.results, c) for c in case_ids}
    block = {"measured": datetime.date.today().isoformat(), **fit(arrays),
             "command": "tools/fit_error_map.py",
             FITTED_AT: folders_count(args.results / c for c in case_ids)}
    report = json.loads((args.results / case_ids[0] / "report.json").read_text())
    written = report.get("settings", {}).get("uncertainty_map", "?")
    block["maps"][f"{WRITTEN} ({written})"] = block["maps"].pop(WRITTEN)
    em.check_fit(block, "the new fit")
    print(json.dumps(block, indent=1))
    if args.write:
        store_block(args.model, em.ERROR_MAP_KEY, block, card=not args.no_card)


if __name__ == "__main__":
    main()
