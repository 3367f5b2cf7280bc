"""`evaluate --model-card MODEL_DIR`: the methods' validation numbers into a model folder.

The card lists, per estimator, the mean Dice and HD95 per region and the uncertainty
AUROC for error voxels on the evaluated cases, and the first (fused) method minus every
other one (docs/TRAINING.md, "The card"). They are stored in model.json under
`ESTIMATORS_KEY` and rendered by `training.bundle.write_card`, which builds the whole
card in one place.
"""

from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path

from .. import REGIONS
from ..errors import InputError
from ..files.image_writer import write_text_atomic
from .store import finite

ESTIMATORS_KEY = "estimators_validation"
METRICS = ("dice", "hd95")
# The uncertainty measures on the card: AUROC, the border baseline's, both beyond the
# border, and the share of the errors there (evaluation.uncertainty_quality).
QUALITY_KEYS = ("auroc", "auroc_border", "auroc_far", "auroc_border_far", "error_share_far")


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _number(text: str) -> float | None:
    return float(text) if text not in ("", "nan", "None") else None


def estimator_rows(out_dir: Path, methods: list[str]) -> dict:
    """{method: {"dice"|"hd95"|QUALITY_KEYS...: {region: mean}}} from evaluate's
    table1.csv and uncertainty.csv in `out_dir`; a method without uncertainty rows has
    none of QUALITY_KEYS."""
    table = _read_csv(Path(out_dir) / "table1.csv")
    rows = {m: {metric: {} for metric in METRICS} for m in methods}
    for row in table:
        if row["metric"] in METRICS:
            for m in methods:
                rows[m][row["metric"]][row["region"]] = _number(row.get(f"{m} mean", ""))
    quality = Path(out_dir) / "uncertainty.csv"
    for row in _read_csv(quality) if quality.is_file() else []:
        if row["method"] in rows:
            for key in QUALITY_KEYS:
                rows[row["method"]].setdefault(key, {})[row["region"]] = _number(
                    row.get(key, ""))
    return rows


def differences(rows: dict, fused: str) -> dict:
    """{other method: {"dice"|"hd95": {region: fused minus other}}} (None when missing)."""
    out = {}
    for other in rows:
        if other == fused:
            continue
        out[other] = {metric: {r: (None if rows[fused][metric].get(r) is None
                                   or rows[other][metric].get(r) is None
                                   else rows[fused][metric][r] - rows[other][metric][r])
                               for r in REGIONS} for metric in METRICS}
    return out


def store_in_model(model_dir, out_dir, methods: list[str], cases: list[str]) -> dict:
    """Write the methods' numbers into MODEL_DIR/model.json and re-render its card."""
    from ..training.bundle import write_card

    path = Path(model_dir) / "model.json"
    if not path.is_file():
        raise InputError(f"{path}: not found; --model-card takes a model folder made by "
                         "`uncertaintyseg train`")
    model = json.loads(path.read_text(encoding="utf-8"))
    rows = estimator_rows(out_dir, methods)
    model[ESTIMATORS_KEY] = {
        "cases": sorted(cases), "fused": methods[0], "methods": rows,
        "fused_minus": differences(rows, methods[0]),
        "measured": datetime.date.today().isoformat(),
        "command": "uncertaintyseg evaluate (see docs/TRAINING.md, The card)"}
    write_text_atomic(path, json.dumps(finite(model), indent=2) + "\n")
    write_card(model_dir)
    return model[ESTIMATORS_KEY]


VOXEL_MAPS_KEY = "voxel_maps_validation"


def _cells(values: dict) -> str:
    return " / ".join("n/a" if values.get(r) is None else f"{values[r]:.3f}" for r in REGIONS)


def voxel_maps_section(record: dict | None) -> list[str]:
    """The card's table of candidate voxel uncertainty maps (benchmarks/
    bench_voxel_maps.py): per map, the error AUROC overall and beyond the border, beside
    the border baseline's, and the share of the errors beyond the border."""
    if not record:
        return []
    far = f"{record['far_mm']:g} mm"
    lines = [f"## Voxel uncertainty maps beyond the border (measured {record['measured']})",
             "", f"{len(record['cases'])} validation cases ({', '.join(record['cases'])}), "
             f"`{record['command']}`; {record['machine']}. Brain mask; an error is a voxel "
             "where the fused segmentation differs from the reference. Beyond "
             f"{far}: the voxels more than {far} from the predicted border of the region. "
             "Means over the cases.", "",
             f"| map | AUROC ET / TC / WT | AUROC beyond {far} ET / TC / WT |",
             "|---|---|---|"]
    for name, row in record["maps"].items():
        lines.append(f"| {name} | {_cells(row['auroc'])} | {_cells(row['auroc_far'])} |")
    border = record["border"]
    lines += [f"| border baseline 1 / (1 + mm) | {_cells(border['auroc'])} | "
              f"{_cells(border['auroc_far'])} |", "",
              f"Share of the error voxels beyond {far} (ET / TC / WT): "
              f"{_cells(border['error_share_far'])}.", ""]
    return lines + ([record["notes"], ""] if record.get("notes") else [])


def error_map_section(block: dict | None) -> list[str]:
    """The card's table of the error-probability map (tools/fit_error_map.py): its
    leave-one-case-out error AUROC overall and beyond the border beside the other maps'
    and the border baseline's on the same cases, and its fitted coefficients."""
    if not block:
        return []
    far = f"{block['far_mm']:g} mm"
    maps = block["maps"]
    lines = [f"## Error-probability map (`--uncertainty-map error-probability`, fitted "
             f"{block['measured']})", "",
             f"Fitted on {len(block['cases'])} validation cases "
             f"({', '.join(block['cases'])}) by `{block['command']}`"
             + (f" on runs at {block['projections']} projections per slice"
                if block.get("projections") else "") + "; per region "
             "sigmoid(a (1 / (1 + mm to the predicted border) + lambda H(P2D)) + b). "
             "Means over the cases of the per-case error AUROC over the brain mask, and "
             f"over the voxels more than {far} from the predicted border.", "",
             f"| map | AUROC ET / TC / WT | AUROC beyond {far} ET / TC / WT |", "|---|---|---|"]

    def row(name: str, values: dict) -> str:
        return (f"| {name} | {_cells({r: values[r]['auroc'] for r in REGIONS})} | "
                f"{_cells({r: values[r]['auroc_far'] for r in REGIONS})} |")

    lines += [row("error-probability, leave-one-case-out", block["leave_one_case_out"]),
              row("error-probability, in-sample", block["in_sample"]),
              *(row(name if name != "border" else "border baseline 1 / (1 + mm)", values)
                for name, values in maps.items()), "",
              f"Share of the error voxels beyond {far} (ET / TC / WT): "
              f"{_cells(block['error_share_far'])}. Fitted lambda / a / b: "
              + "; ".join(f"{r} {v['lambda']:g} / {v['a']:.3f} / {v['b']:.3f}"
                          for r, v in block["regions"].items()) + ".", ""]
    return lines


def store_voxel_maps(model_dir, record: dict) -> None:
    """Write the voxel-map study into MODEL_DIR/model.json and re-render its card."""
    store_block(model_dir, VOXEL_MAPS_KEY, record)


def store_block(model_dir, key: str, block: dict, card: bool = True) -> None:
    """MODEL_DIR/model.json's `key` set to `block` (atomically); the card re-rendered
    unless `card` is False (the card generator rewrites the whole card)."""
    from ..training.bundle import write_card

    path = Path(model_dir) / "model.json"
    model = json.loads(path.read_text(encoding="utf-8"))
    model[key] = block
    write_text_atomic(path, json.dumps(finite(model), indent=2) + "\n")
    if card:
        write_card(model_dir)


def _fit_formula(record: dict) -> str:
    terms = " ".join(f"{'-' if w < 0 else '+'} {abs(w):.3f} x {name}"
                     for name, w in record.get("coefficients", {}).items())
    return f"{record.get('intercept', 0.0):.3f} {terms}".strip()


def _limits_text(record: dict) -> str:
    return ", ".join(f"{name} {limit}" for name, limit in record.get("limits", {}).items())


def _candidates_text(fit: dict) -> str:
    names = fit.get("candidates")
    return f" (one or two of {', '.join(names)}; LOCO error)" if names else ""


def _distance_text(entry: dict | None) -> str:
    """One sentence on the model's feature-distance fit (model.json feature_distance)."""
    if not entry:
        return "The model has no feature-distance fit: that signal is not available."
    scores = entry["training_scores_loco"]
    return (f"Feature distance (`{entry['file']}`, {entry['size_bytes'] / 1000:.0f} kB): "
            f"the 2D network's `{entry['layer']}` averaged over H, W on {entry['slices']} "
            f"slices per case, Mahalanobis distance to its {entry['cases']} training "
            f"cases ({entry['covariance']}, shrinkage {entry['shrinkage']}), median over "
            f"the slices, 1 = a typical training case; the training cases left out "
            f"score {scores['min']}-{scores['max']}.")


def _measure_rows(fit: dict) -> list[str]:
    lines = ["| measure (target) | as fitted (LOCO estimate) | fit redone without the run "
             "| fit redone without the case |", "|---|---|---|---|"]
    columns = [fit[k] for k in ("as_fitted", "refit_without_run", "refit_without_case")]
    for label, key in ((f"WT Dice < 0.7 flagged (all {fit['failed_below_0.7']})",
                        "failed_flagged"),
                       (f"WT Dice >= 0.85 flagged (at most a quarter of "
                        f"{fit['good_0.85_or_more']})", "good_flagged"),
                       ("Spearman of estimate and WT Dice (>= 0.7)", "spearman")):
        lines.append(f"| {label} | " + " | ".join(str(c[key]) for c in columns) + " |")
    return lines


def quality_section(record: dict | None, distance: dict | None = None) -> list[str]:
    """The card's case-quality section from model.json `quality` (written by
    tools/fit_case_quality.py --write) and `feature_distance`."""
    if not record or "runs" not in record:
        return []
    fit = record["fit"]
    lines = [f"## Case quality (issue 17; `model.json` `quality`, measured "
             f"{record['measured']})", "",
             f"`{record['command']}` on {fit['runs']} `predict` runs of {fit['cases']} "
             f"validation cases. Fit{_candidates_text(fit)}: estimated WT Dice = "
             f"{_fit_formula(record)}, interval "
             f"+/- {record['interval']} (the largest leave-one-case-out residual), "
             f"`review_below` {record['review_below']}; limits: {_limits_text(record)}; any "
             "input finding a `--force` run went past flags.", "", _distance_text(distance),
             "", "| run | WT Dice | feature distance | estimated (LOCO) | flag | first "
             "reason |", "|---|---|---|---|---|---|"]
    for row in record["runs"]:
        distance_cell = ("n/a" if row.get("feature_distance") is None
                         else f"{row['feature_distance']:.2f}")
        lines.append(f"| {row['run'].replace('Brats18_', '').replace('__', ' ')} | "
                     f"{row['dice']:.3f} | {distance_cell} | {row['estimate']:.3f} | "
                     f"{row['flag']} | {row['reason']} |")
    lines += ["", *_measure_rows(fit), ""]
    return lines + ([record["notes"], ""] if record.get("notes") else [])
