"""From case-quality signals to report.json's `quality` block: an estimated WT Dice with
an interval, a flag (review / routine) and the reasons in words (issue 17).

Two transparent parts, both stored in the model's model.json `quality` section by
tools/fit_case_quality.py:
- a linear model of WT Dice on a few signals (`intercept`, `coefficients`), its interval
  the largest leave-one-case-out residual of the fit (`interval`);
- limits per signal (`limits`): a signal past its limit flags the case whatever the
  estimate, with its sentence. A finding of the input checks that a --force run went past
  always flags (the checks stop such input unless forced).
A case is also flagged when the estimate is below `review_below`.
"""
from __future__ import annotations

from uncertaintyseg_shared.quality import (  # noqa: F401 (QUALITY_KEY re-exported)
    QUALITY_KEY,
    ESTIMATED_DICE, FLAG, FLAG_REVIEW, FLAG_ROUTINE, INTERVAL, REASONS, SIGNALS)

# Limits when a model.json has no `quality` section (a phantom or an older model):
# hand-set, generous values that only a clearly failed result passes (issue 17's
# broken-input trial: a rim put most of the WT at the mask border, a swap scattered it).
# feature_distance: half again a typical training case's distance; brats-mini's training
# cases reach 1.29 left out, its clean validation cases 1.47 (docs/DECISIONS.md).
DEFAULT_LIMITS = {"fragment_share": 0.5, "outside_brain": 0.1, "at_border": 0.3,
                  "nesting_violation": 0.3, "volume_deviation": 0.7,
                  "feature_distance": 1.5}
DEFAULT_REVIEW_BELOW = 0.8


def _percent(value: float) -> str:
    return f"{100 * value:.0f} %"


def _sentence(name: str, signals: dict, ranges: dict) -> str:
    """The reason in words for `name` past its limit."""
    value = signals[name]
    if name == "disagreement_2d3d":
        return f"the 2D and 3D predictions disagree on {_percent(value)} of the tumour"
    if name == "brain_uncertainty":
        return f"the model is unsure over the whole brain (mean uncertainty {value:.2f})"
    if name == "uncertain_ratio":
        times = "many" if value >= 1 else f"{value / (1 - value):.1f}"  # U / T back
        return (f"the model is unsure over {times} times as much brain as the tumour it "
                "draws (a missed tumour or an unfamiliar input?)")
    if name == "volume_deviation":
        region = signals.get("volume_deviation_region") or "WT"
        low, high = ranges.get(region, (0, 0))
        volume = (signals.get("volume_ml") or {}).get(region, 0.0)
        return (f"the {region} volume ({volume:.1f} ml) is outside the training labels' "
                f"range ({low:.1f}-{high:.1f} ml)")
    if name == "nesting_violation":
        return (f"{_percent(value)} of the enhancing tumour and core lie outside the "
                "region that should contain them")
    if name == "fragment_share":
        return (f"the tumour is {signals.get('wt_components', 0)} fragments, "
                f"{_percent(value)} of it outside the largest")
    if name == "outside_brain":
        return f"{_percent(value)} of the tumour lies outside the brain mask"
    if name == "feature_distance":
        return ("the case is far from the training data in the network's features: "
                f"{value:.1f} times as far from the training cases' mean as a typical "
                "training case (an unfamiliar scanner, protocol or broken input?)")
    if name == "at_border":
        return (f"{_percent(value)} of the tumour lies on the brain mask's border "
                "(a skull-strip rim?)")
    return f"{name} is {value}"


def estimate_dice(signals: dict, params: dict) -> tuple[float | None, list | None]:
    """(estimated WT Dice in [0, 1], [low, high]) from the fitted linear model; (None,
    None) without one. A signal that is None (no refined cube) counts as 0."""
    coefficients = params.get("coefficients")
    if not coefficients:
        return None, None
    value = float(params.get("intercept", 0.0))
    for name, weight in coefficients.items():
        value += float(weight) * float(signals.get(name) or 0.0)
    value = min(max(value, 0.0), 1.0)
    half = float(params.get("interval", 0.0))
    return round(value, 3), [round(max(value - half, 0.0), 3), round(min(value + half, 1.0), 3)]


def _limit_reasons(signals: dict, limits: dict, ranges: dict) -> list[str]:
    """Sentences of the signals past their limits, the furthest past first."""
    past = []
    for name, limit in limits.items():
        value = signals.get(name)
        if value is not None and limit > 0 and value > limit:
            past.append((value / limit, _sentence(name, signals, ranges)))
    return [text for _, text in sorted(past, key=lambda item: -item[0])]


def assess_quality(signals: dict, params: dict | None = None, findings=()) -> dict:
    """report.json's `quality` block from `signals` (case_quality.compute_signals),
    the model's `params` (model.json `quality`; defaults without) and the input checks'
    `findings` the run went past: errors that --force overrode, and warnings (a T1ce
    without enhancement), which run without --force."""
    params = params or {}
    limits = params.get("limits", DEFAULT_LIMITS)
    ranges = params.get("volume_ranges_ml", {})
    estimate, interval = estimate_dice(signals, params)
    reasons = [f"input check: {finding}" for finding in findings]
    reasons += _limit_reasons(signals, limits, ranges)
    review_below = float(params.get("review_below", DEFAULT_REVIEW_BELOW))
    if estimate is not None and estimate < review_below:
        reasons.append(f"the estimated WT Dice ({estimate:.2f}) is below {review_below:.2f}")
    flag = FLAG_REVIEW if reasons else FLAG_ROUTINE
    if not reasons:
        reasons = ["no sign of a failed result: the tumour is plausible in volume, "
                   "nesting, fragments and place, and no input check found a problem"]
    return {ESTIMATED_DICE: estimate, INTERVAL: interval, FLAG: flag, REASONS: reasons,
            SIGNALS: signals}


def quality_block(case, result, params: dict | None, findings=()) -> dict:
    """`assess_quality` of one run: `case` (io.Case) and `result` (contract.CaseResult,
    on the input grid, before its maps are written and freed)."""
    from .case_quality import compute_signals

    from ..networks.feature_distance import FIT_KEY

    params = params or {}
    # The pipeline measured it on the working grid; it belongs in the quality block.
    distance = result.report.pop(FIT_KEY, None)
    signals = compute_signals(case.image, case.spacing, result.probabilities,
                              result.uncertainty, p2d=result.probabilities_2d,
                              p3d=result.probabilities_3d, findings=findings,
                              ranges=params.get("volume_ranges_ml"),
                              feature_distance=distance)
    return assess_quality(signals, params, findings)
