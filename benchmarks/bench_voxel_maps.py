"""Candidate voxel uncertainty maps, scored beyond the predicted border.

From `predict --outputs all` folders (one per validation case, default method), each
candidate map is computed offline from the written maps and scored as `evaluate` scores
`uncertainty.nii.gz`: error AUROC over the brain mask, the same beyond FAR_MM of the
predicted border, beside the border baseline's. Writes a JSON record; with
--model-card it goes into the model's model.json and card (docs/EVALUATION.md).

    PYTHONPATH=UncertaintySeg python benchmarks/bench_voxel_maps.py \
        --cases ../shared/data/brats2018 --results PRED_DIR --out maps.json

The maps are read as stored: P2D and the fused probabilities quantised (steps of
3e-5, docs/OUTPUT-CONTRACT.md), so probabilities under 1.5e-5 read as 0 and their
entropies tie at 0; inside `predict` the same maps are made from float32 values.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import numpy as np
import torch

from uncertaintyseg import REGIONS
from uncertaintyseg.evaluation import uncertainty_quality as uq
from uncertaintyseg.evaluation.model_card import store_voxel_maps
from uncertaintyseg.evaluation.pairing import Method, load_output, load_reference, read_maps
from uncertaintyseg.stages.uncertainty import UNCERTAINTY_MAPS, mean_entropy

# Temperature scaling is left out: sigmoid(logit(p) / T) is monotone in p for any
# T > 0, so H of the scaled probability ranks the voxels exactly as H(p) does and a
# single map's AUROC cannot change (it can only move a combination such as max).


def entropy(p: np.ndarray) -> np.ndarray:
    return mean_entropy(torch.from_numpy(np.ascontiguousarray(p, np.float32))).numpy()


def candidates(binned, p2d, fused) -> dict[str, np.ndarray]:
    """Every candidate map of one region, 1-D over the brain, each in [0, 1]."""
    maps = {f"{name} (--uncertainty-map)": make(torch.from_numpy(p2d),
                                               torch.from_numpy(binned)).numpy()
            for name, make in UNCERTAINTY_MAPS.items()}
    h2d, hfused = entropy(p2d), entropy(fused)
    maps.update({"H(fused)": hfused,
                 "mean(binned, H(P2D))": (binned + h2d) / 2,
                 "binned + 0.01 H(P2D)": 0.99 * binned + 0.01 * h2d,
                 "sqrt(binned H(P2D))": np.sqrt(binned * h2d),
                 "max(binned, H(fused))": np.maximum(binned, hfused)})
    return maps


def load(cases_dir: Path, results: Path, case_id: str):
    reference = load_reference(cases_dir / case_id)
    output = load_output(Method("fused", results), results / case_id, reference)
    p2d = read_maps(results / case_id / "probabilities_2d.nii.gz", reference.grid)
    return reference, output, p2d


def score_case(reference, output, p2d) -> dict:
    """{region: {map: {"auroc", "auroc_far"}, "border": {...}}} of one case."""
    brain, result = reference.brain, {}
    for i, region in enumerate(REGIONS):
        error = reference.regions[i][brain] != output.regions[i][brain]
        distance = uq.border_distance(output.regions[i], reference.spacing, brain)
        maps = candidates(output.uncertainty[i][brain], p2d[i][brain],
                          output.probabilities[i][brain])
        rows = {name: {"auroc": uq.auroc(u, error),
                       "auroc_far": uq.far_scores(u, error, distance)["auroc_far"]}
                for name, u in maps.items()}
        far = uq.far_scores(np.zeros(error.shape), error, distance)  # the map's part unused
        rows["border"] = {"auroc": (float("nan") if distance is None
                                    else uq.auroc(1.0 / (1.0 + distance), error)),
                          "auroc_far": far["auroc_border_far"],
                          "error_share_far": far["error_share_far"]}
        result[region] = rows
    return result


def study(cases_dir: Path, results: Path, cache: Path) -> dict:
    """Scores per case; each case's are kept in CACHE/<case>.json and reused (a case
    can be scored as soon as its prediction is written)."""
    case_ids = sorted(p.name for p in results.iterdir() if (p / "report.json").is_file())
    cache.mkdir(parents=True, exist_ok=True)
    scores = {}
    for case_id in case_ids:
        path = cache / f"{case_id}.json"
        if not path.is_file():
            scores_case = score_case(*load(cases_dir, results, case_id))
            path.write_text(json.dumps(scores_case))
        scores[case_id] = json.loads(path.read_text())
        print(case_id, "scored", flush=True)
    return {"cases": case_ids, "scores": scores}


def summarise(raw: dict) -> dict:
    """Means over the cases (NaN skipped) per map, measure and region."""
    first = raw["scores"][raw["cases"][0]]["ET"]
    out = {}
    for name, measures in first.items():
        out[name] = {m: {r: float(np.nanmean([raw["scores"][c][r][name][m]
                                              for c in raw["cases"]])) for r in REGIONS}
                     for m in measures}
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="per-case scores folder")
    parser.add_argument("--model-card", type=Path, help="a model folder to store it in")
    parser.add_argument("--commit", default="", help="the commit that made the results")
    parser.add_argument("--machine", default=platform.machine(),
                        help="where the results were made, in words")
    args = parser.parse_args(argv)
    raw = study(args.cases, args.results, args.cache)
    means = summarise(raw)
    border = means.pop("border")
    record = {"measured": datetime.date.today().isoformat(), "cases": raw["cases"],
              "far_mm": uq.FAR_MM, "maps": means, "border": border,
              "command": "benchmarks/bench_voxel_maps.py",
              "machine": f"{args.machine}; results of {args.commit or 'an unknown commit'}"}
    args.out.write_text(json.dumps({**record, "per_case": raw["scores"]}, indent=1))
    for name, row in {**means, "border": border}.items():
        print(f"{name:50s}", " ".join(f"{row['auroc'][r]:.3f}/{row['auroc_far'][r]:.3f}"
                                      for r in REGIONS))
    if args.model_card:
        store_voxel_maps(args.model_card, record)


if __name__ == "__main__":
    main()
