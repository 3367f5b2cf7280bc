"""Does the case-level triage score mean something? And choosing its threshold.

The score is the one `predict` wrote (report.json `triage.score`, see pipeline.triage).
We report the WT Dice of the flagged and unflagged cases (two-sided Mann-Whitney U) and
the Spearman correlation of the score with WT Dice. `calibrate` chooses the threshold
above which the worst quarter of the cases lies (the 75th percentile of their scores)
and stores it in the model folder's model.json as `triage.threshold`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import stats

from ..files.io import InputError
from ..stages.projection_curve import FITTED_AT, fitted_count, run_count
from .store import finite, write_text_atomic

TRIAGE_DILATION_VOXELS = 3  # as pipeline.triage
UNCERTAIN = 0.5  # normalised entropy above which a voxel counts as uncertain
FLAGGED_QUANTILE = 0.75  # the worst quarter of the cases is flagged "review"
MODEL_KEY = "triage"  # model.json: {"triage": {"threshold": float, ...}}


def case_table(records: dict[str, dict]) -> list[dict]:
    """[{case, score, flag, threshold, wt_dice}] of the cases whose report has a triage."""
    rows = []
    for case_id, record in records.items():
        triage = (record.get("report") or {}).get("triage")
        if not triage:
            continue
        rows.append({"case": case_id, "score": float(triage["score"]),
                     "flag": triage.get("flag"), "threshold": triage.get("threshold"),
                     "wt_dice": float(record["voxel"]["WT"]["dice"]),
                     "projections": run_count(record.get("report") or {})})
    return rows


def candidate_scores(reference, output) -> dict[str, float]:
    """Case scores a run could compute without the reference (the brain mask and the
    method's own maps only), to see which ranks cases by Dice:

    - dilated_wt_max: the pipeline's score (mean over the predicted WT dilated by 3
      voxels of the max over regions of the normalised entropy), recomputed;
    - wt_mean: mean WT entropy over the predicted WT;
    - brain_mean: mean WT entropy over the brain (the MC-dropout study's split);
    - uncertain_ratio: brain voxels with WT entropy > 0.5 per predicted WT voxel.
    """
    from scipy.ndimage import binary_dilation

    if output.uncertainty is None:
        return {}
    wt, u_wt = output.regions[2], output.uncertainty[2]
    size = int(wt.sum())
    if size == 0:
        return {"dilated_wt_max": 0.0, "wt_mean": 0.0,
                "brain_mean": float(u_wt[reference.brain].mean()),
                "uncertain_ratio": float("inf")}
    zone = binary_dilation(wt, iterations=TRIAGE_DILATION_VOXELS)
    return {"dilated_wt_max": float(output.uncertainty.max(axis=0)[zone].mean()),
            "wt_mean": float(u_wt[wt].mean()),
            "brain_mean": float(u_wt[reference.brain].mean()),
            "uncertain_ratio": float(np.count_nonzero((u_wt > UNCERTAIN) & reference.brain)
                                     / size)}


def score_ranking(records: dict[str, dict]) -> list[dict]:
    """Spearman rho (and p) of each candidate score with WT Dice over the cases."""
    cases = [r for r in records.values() if r.get("case_scores")]
    if len(cases) < 3:
        return []
    dice = [r["voxel"]["WT"]["dice"] for r in cases]
    rows = []
    for name in cases[0]["case_scores"]:
        values = [float(r["case_scores"][name]) for r in cases]
        if np.ptp(values) == 0 or not np.all(np.isfinite(values)):
            continue
        rho, p = spearman(values, dice)
        rows.append({"score": name, "cases": len(cases), "spearman_rho": rho, "spearman_p": p})
    return rows


def triage_summary(rows: list[dict], threshold: float | None = None) -> dict:
    """Group Dice and tests. `threshold` re-flags the cases (score >= threshold, the
    pipeline's rule); None keeps the flags the runs wrote."""
    if not rows:
        return {"cases": 0}
    scores = np.array([r["score"] for r in rows])
    dice = np.array([r["wt_dice"] for r in rows])
    flagged = (scores >= threshold if threshold is not None
               else np.array([r["flag"] == "review" for r in rows]))
    summary = {"cases": len(rows), "flagged": int(flagged.sum()),
               "threshold": threshold if threshold is not None else rows[0]["threshold"],
               "wt_dice_flagged": _median(dice[flagged]),
               "wt_dice_unflagged": _median(dice[~flagged]),
               "mann_whitney_p": float("nan"), "spearman_rho": float("nan"),
               "spearman_p": float("nan")}
    if flagged.any() and (~flagged).any():
        summary["mann_whitney_p"] = float(stats.mannwhitneyu(
            dice[flagged], dice[~flagged], alternative="two-sided").pvalue)
    if len(rows) >= 3 and np.ptp(scores) > 0 and np.ptp(dice) > 0:
        summary["spearman_rho"], summary["spearman_p"] = spearman(scores, dice)
    return summary


EXACT_SPEARMAN_MAX_N = 8  # 8! = 40320 permutations


def spearman(x, y) -> tuple[float, float]:
    """Spearman rho and its two-sided p. For n <= 8 the p is exact (every permutation
    of y): scipy's t approximation gives p = 0 for a perfect rank order of 3 cases,
    where the exact p is 1/3."""
    import itertools

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    rho = float(stats.spearmanr(x, y).statistic)
    if len(x) > EXACT_SPEARMAN_MAX_N:
        return rho, float(stats.spearmanr(x, y).pvalue)
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    extreme = [abs(stats.pearsonr(rx, ry[list(order)]).statistic) >= abs(rho) - 1e-12
               for order in itertools.permutations(range(len(y)))]
    return rho, float(np.mean(extreme))


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else float("nan")


def choose_threshold(scores) -> float:
    """The score above which the worst quarter of the cases lies (75th percentile)."""
    scores = np.asarray(scores, np.float64)
    if scores.size == 0:
        raise ValueError("no case has a triage score: evaluate predict's output folders")
    return float(np.quantile(scores, FLAGGED_QUANTILE))


def calibrate(model_dir, rows: list[dict]) -> dict:
    """Choose the threshold on `rows` and store it in MODEL_DIR/model.json under
    "triage" (atomically); returns what was stored."""
    path = Path(model_dir) / "model.json"
    if not path.is_file():
        raise InputError(f"{path}: not found; --calibrate-triage takes a model folder made "
                         "by `uncertaintyseg train`")
    model = json.loads(path.read_text(encoding="utf-8"))
    threshold = choose_threshold([r["score"] for r in rows])
    summary = triage_summary(rows, threshold)
    model[MODEL_KEY] = {
        "threshold": round(threshold, 4),
        "rule": f"{FLAGGED_QUANTILE:.0%} quantile of the case scores of the calibration "
                "cases (uncertaintyseg evaluate --calibrate-triage)",
        "cases": [r["case"] for r in rows],
        "spearman_rho_wt_dice": summary["spearman_rho"],
        # the count the scores were made at: the threshold holds there (fits_note)
        FITTED_AT: fitted_count(r.get("projections") for r in rows),
    }
    write_text_atomic(path, json.dumps(finite(model), indent=2) + "\n")
    return model[MODEL_KEY]
