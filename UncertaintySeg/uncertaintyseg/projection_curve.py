"""`--projections auto` from a model's measured projection curve (DECISIONS #22).

`evaluate --projection-study` stores, per device type, the validation means per
projection count in model.json under STUDY_KEY: {"cpu": {"curve": {"2": {"dice":
{region: mean}, "auroc": {...}, ...}, ...}, ...}, "cuda": ...}. `auto` takes the smallest
count whose Dice and error AUROC are within TOLERANCE of the best count's on every
region. A model without a curve for the run's device keeps the fixed rule
(devices.auto_projections), and the report says why.
"""

from __future__ import annotations

import json

from . import REGIONS

STUDY_KEY = "projection_study"  # model.json's block (evaluation.projection_study)
TOLERANCE = 0.005  # Dice and AUROC below the best that still count as the best
CHOSEN_BY = ("dice", "auroc")  # the measures `auto` compares on every region


def model_curves(model) -> dict:
    """{device type: study block} from the model folder's model.json ({} without one)."""
    folder = getattr(model, "folder", None)
    if folder is None or not (folder / "model.json").is_file():
        return {}
    meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    return dict(meta.get(STUDY_KEY) or {})


def _best(curve: dict, measure: str, region: str) -> float | None:
    values = [row[measure].get(region) for row in curve.values()]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def _within(row: dict, best: dict, tolerance: float) -> bool:
    """Every measure of every region within `tolerance` of the best (a missing value
    cannot be shown to be, so it is not)."""
    for (measure, region), top in best.items():
        value = row.get(measure, {}).get(region)
        # 1e-9 of slack: in floats 0.900 - 0.005 is 0.8950000000000001, above 0.895.
        if top is not None and (value is None or value + 1e-9 < top - tolerance):
            return False
    return True


def smallest_within(curve: dict, tolerance: float = TOLERANCE) -> int | None:
    """The smallest count of `curve` ({count (str or int): row}) whose CHOSEN_BY
    measures are within `tolerance` of the best on every region; None for no curve."""
    if not curve:
        return None
    best = {(m, r): _best(curve, m, r) for m in CHOSEN_BY for r in REGIONS}
    for count in sorted(curve, key=int):
        if _within(curve[count], best, tolerance):
            return int(count)
    return None  # unreachable: the best count of each measure is always within


def choose(model, device_type: str, fallback: str | int) -> tuple[int | str, dict]:
    """(count or preset, the report's record) of `--projections auto` for this model on
    this device type; `fallback` (the fixed rule) when no curve was measured there."""
    block = model_curves(model).get(device_type)
    count = smallest_within(block.get("curve", {})) if block else None
    if count is None:
        why = (f"model '{getattr(model, 'name', '?')}' has no projection curve measured on "
               f"{device_type} (evaluate --projection-study); the fixed rule's {fallback}")
        return fallback, {"chosen": fallback, "from_curve": False, "why": why}
    why = (f"the smallest count whose Dice and error AUROC are within {TOLERANCE} of the "
           f"best on every region in the curve measured on {device_type} "
           f"({block.get('measured', '?')}, counts {block.get('counts')})")
    return count, {"chosen": count, "from_curve": True, "why": why,
                   "measured": block.get("measured"), "counts": block.get("counts")}
