"""`--projections auto` from a model's measured projection curve (DECISIONS #25).

`evaluate --projection-study` stores, per device type, the validation means per
projection count in model.json under STUDY_KEY: {"cpu": {"curve": {"2": {"dice":
{region: mean}, "auroc": {...}, ...}, ...}, ...}, "cuda": ...}. `auto` takes the smallest
count whose CHOSEN_BY measures (Dice, error AUROC, error AUROC beyond 2 mm of the
predicted border) are within TOLERANCE of the best count's on every region (`pick`). Where no count is within it (the best Dice and the best AUROC at counts
apart), and where the model has no curve for the run's device, `auto` keeps the fixed
rule (devices.auto_projections): the count the model's fits (the triage threshold, the
case-quality estimate, the error map) were made at, as their calibration holds there;
the report says why.
"""

from __future__ import annotations

import json

from .. import REGIONS

STUDY_KEY = "projection_study"  # model.json's block (evaluation.projection_study)
TOLERANCE = 0.005  # below the best that still counts as the best (CHOSEN_BY)
# The measures `auto` compares on every region. The AUROC beyond 2 mm of the predicted
# border too: where nearness to the border cannot explain the ranking (issue 17), a
# count must not lose what the views add there.
CHOSEN_BY = ("dice", "auroc", "auroc_far")
CHOSEN_BY_TEXT = "Dice, error AUROC and error AUROC beyond 2 mm of the border"
# The fewest views `auto` takes, whatever the curve: the method's uncertainty is the
# spread between views, and with 2 a voxel's views either agree or not (the paper's
# binned entropy, which the triage score averages, is then 0 or 1 per voxel); what that
# loses on failed cases the clean validation cases of the curve cannot show (DECISIONS #27).
MIN_AUTO = 4
# The model.json blocks fitted on runs at one projection count, and the key in each
# that records it (the fit tools write it from the runs' report.json): their numbers
# hold at that count, and a run at another says so (`fits_note`).
FITTED_BLOCKS = ("error_map", "quality", "triage")
FITTED_AT = "projections"


def model_meta(model) -> dict:
    """The model folder's model.json ({} without one: the analytic model)."""
    folder = getattr(model, "folder", None)
    if folder is None or not (folder / "model.json").is_file():
        return {}
    return json.loads((folder / "model.json").read_text(encoding="utf-8"))


def model_curves(model) -> dict:
    """{device type: study block} from the model folder's model.json ({} without one)."""
    return dict(model_meta(model).get(STUDY_KEY) or {})


def _best(curve: dict, measure: str, region: str) -> float | None:
    values = [row.get(measure, {}).get(region) for row in curve.values()]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def shortfall(row: dict, best: dict) -> float:
    """The largest amount by which a CHOSEN_BY measure of `row` falls below the best
    count's, over the regions; infinite where a value is missing (it cannot be shown
    to be near the best)."""
    worst = 0.0
    for (measure, region), top in best.items():
        value = row.get(measure, {}).get(region)
        if top is not None:
            worst = max(worst, float("inf") if value is None else top - value)
    return worst


def pick(curve: dict, tolerance: float = TOLERANCE) -> tuple[int | None, float]:
    """(count, its shortfall) of `curve` ({count (str or int): row}): the smallest count
    whose CHOSEN_BY measures are all within `tolerance` of the best on every region.
    The best Dice and the best AUROC may lie at counts that are not within each other's
    tolerance (a case whose WT Dice drops as its AUROC rises); then no count is within,
    and the count that falls least below the best on its worst measure is taken (ties:
    the smaller). Counts below MIN_AUTO are measured, never taken (unless the curve has
    no other). (None, inf) for no curve."""
    if not curve:
        return None, float("inf")
    best = {(m, r): _best(curve, m, r) for m in CHOSEN_BY for r in REGIONS}
    counts = sorted((c for c in curve if int(c) >= MIN_AUTO), key=int) or sorted(curve, key=int)
    gaps = {c: shortfall(curve[c], best) for c in counts}
    # 1e-9 of slack: in floats 0.900 - 0.895 is 0.0050000000000000044, above 0.005.
    within = [c for c in counts if gaps[c] <= tolerance + 1e-9]
    count = within[0] if within else min(counts, key=lambda c: (gaps[c], int(c)))
    return int(count), gaps[count]


def smallest_within(curve: dict, tolerance: float = TOLERANCE) -> int | None:
    """The count `auto` takes from `curve` (`pick`); None for no curve."""
    return pick(curve, tolerance)[0]


def choose(model, device_type: str, fallback: str | int) -> tuple[int | str, dict]:
    """(count or preset, the report's record) of `--projections auto` for this model on
    this device type: the curve's count when one is within TOLERANCE of the best on every
    region, else `fallback` (the fixed rule, the count the model's fits were made at)."""
    block = model_curves(model).get(device_type)
    count, gap = pick(block.get("curve", {})) if block else (None, float("inf"))
    if count is None:
        why = (f"model '{getattr(model, 'name', '?')}' has no projection curve measured on "
               f"{device_type} (evaluate --projection-study); the fixed rule's {fallback}")
        return fallback, {"chosen": fallback, "from_curve": False, "why": why}
    where = (f"in the curve measured on {device_type} ({block.get('measured', '?')}, "
             f"counts {block.get('counts')})")
    record = {"from_curve": True, "shortfall": round(gap, 4),
              "measured": block.get("measured"), "counts": block.get("counts")}
    if gap > TOLERANCE + 1e-9:
        # Trust over speed (DECISIONS #25): a count short of the best on some region is
        # also a count the triage, quality and error-map fits were not made at.
        why = (f"no count is within {TOLERANCE} of the best {CHOSEN_BY_TEXT} on every "
               f"region {where} (the nearest, {count}, falls {gap:.3f} short); the fixed "
               f"rule's {fallback}, the count the model's fits were made at")
        return fallback, {**record, "chosen": fallback, "why": why}
    why = (f"the smallest count whose {CHOSEN_BY_TEXT} are within {TOLERANCE} of the "
           f"best on every region {where}")
    return count, {**record, "chosen": count, "why": why}


def run_count(report: dict) -> int | None:
    """The projections per slice a run asked for, from its report.json (None: every
    grid origin, or a report without the record)."""
    return (report.get("settings") or {}).get("projections_per_slice_asked")


def fitted_count(counts) -> int | None:
    """The one count (`run_count`s) of the runs a fit was made on; None when they differ
    or do not say."""
    counts = set(counts)
    return counts.pop() if len(counts) == 1 else None


def folders_count(folders) -> int | None:
    """`fitted_count` of predict output folders (their report.json), for the fit tools."""
    from pathlib import Path

    return fitted_count(run_count(json.loads((Path(f) / "report.json").read_text(
        encoding="utf-8"))) for f in folders)


def fitted_at(meta: dict) -> dict:
    """{block: projection count} of the FITTED_BLOCKS of model.json `meta` that record one."""
    counts = {name: (meta.get(name) or {}).get(FITTED_AT) for name in FITTED_BLOCKS}
    return {name: at for name, at in counts.items() if at is not None}


def fits_note(meta: dict, count: int | None) -> str | None:
    """A sentence when the model's fits (model.json `meta`) were made at another
    projection count than the run's `count`, else None."""
    return counts_note(fitted_at(meta), count)


def counts_note(fitted: dict, count: int | None) -> str | None:
    """`fits_note` from `fitted_at`'s {block: count} (a loaded model's `fitted_at`)."""
    others = {name: at for name, at in fitted.items() if at != count}
    if not others:
        return None
    listed = ", ".join(f"{name.replace('_', ' ')} at {at}" for name, at in others.items())
    return (f"this run used {count or 'every grid origin as'} projections per slice; the "
            f"model's fits were made on runs at another count ({listed}): their numbers "
            f"(the error probabilities, the estimated Dice, the triage threshold) are "
            f"less certain here")
