"""The case-level quality estimate's shared names (report.json `quality`, issue 17).

The pipeline writes the block (uncertaintyseg.run.case_quality, quality_model); the Slicer
module, the cohort table and the snapshot read it with these names. Standard library only.
"""

from __future__ import annotations

QUALITY_KEY = "quality"          # report.json and model.json section
FLAG_REVIEW = "review"           # a reviewer must check this case slice by slice
FLAG_ROUTINE = "routine"         # nothing seen that predicts a failed result
FLAGS = (FLAG_ROUTINE, FLAG_REVIEW)
# Keys of report.json `quality`: estimated WT Dice (None without a fitted model), its
# interval [low, high], the flag, the reasons in words (the first drove the flag), and the
# signals by name (case_quality.SIGNAL_UNITS gives their units).
ESTIMATED_DICE = "estimated_dice"
INTERVAL = "interval"
FLAG = "flag"
REASONS = "reasons"
SIGNALS = "signals"


def quality_line(quality: dict | None) -> str:
    """One line for a summary or a panel: flag, estimated Dice and interval, first
    reason; an empty string for a report without the block (older runs)."""
    if not quality:
        return ""
    text = f"quality: {quality.get(FLAG, '?')}"
    estimate, interval = quality.get(ESTIMATED_DICE), quality.get(INTERVAL)
    if estimate is not None:
        text += f" (estimated WT Dice {estimate:.2f}"
        if interval:
            text += f", {interval[0]:.2f}-{interval[1]:.2f}"
        text += ")"
    reasons = quality.get(REASONS) or []
    if reasons:
        text += f" - {reasons[0]}"
    return text


def worst_first(flag, estimate, triage_score) -> tuple:
    """Sort key of a case in the cohort table and the worklist, worst first: flagged
    before routine, then the lowest estimated Dice (none after any), then the highest
    triage score (none last). Accepts the CSV's strings: empty cells count as missing."""
    estimate = 2.0 if estimate in (None, "") else float(estimate)
    score = 1.0 if triage_score in (None, "") else -float(triage_score)
    return (flag != FLAG_REVIEW, estimate, score)
