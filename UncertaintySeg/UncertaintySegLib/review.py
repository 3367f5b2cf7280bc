"""Reviewing a run: the table of refinement boxes, the reviewed ticks, the triage hint.

The table model is pure Python (the Widget shows it in a QTableWidget); `centre_views_on`
and the reviewed flag act on MRML nodes passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from uncertaintyseg_shared.quality import FLAG, FLAG_REVIEW, QUALITY_KEY, REASONS, quality_line
from uncertaintyseg_shared.triage import DEFAULT_TRIAGE_THRESHOLD

from .context import nodes_by_class

ATTR_REVIEWED = "UncertaintySeg.Reviewed"
COLUMNS = ("Reviewed", "Region", "Rank", "Score", "Centre (RAS, mm)")


@dataclass
class BoxRow:
    """One row of the box table."""

    region: str
    rank: int
    score: float
    score_fraction: float
    center_ras: tuple[float, float, float]
    size_mm: tuple[float, float, float]
    roi: object = None  # the markups ROI node of the box, when loaded

    @property
    def reviewed(self) -> bool:
        return self.roi is not None and self.roi.GetAttribute(ATTR_REVIEWED) == "1"

    def cells(self) -> tuple[str, ...]:
        """Display text of the columns after "Reviewed" (a check box in the Widget)."""
        centre = ", ".join(f"{v:.1f}" for v in self.center_ras)
        return (self.region, str(self.rank), f"{self.score:.1f}", centre)


def box_rows(boxes: list[dict], rois: list | None = None) -> list[BoxRow]:
    """Rows sorted by score, highest first (ties: region order ET, TC, WT, then rank).

    `rois` (same order as `boxes`, as ResultLoader makes them) are attached to the rows.
    """
    rois = list(rois) if rois is not None else [None] * len(boxes)
    if len(rois) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(rois)} ROI nodes")
    order = {"ET": 0, "TC": 1, "WT": 2}
    rows = [BoxRow(b["region"], int(b["rank"]), float(b["score"]),
                   float(b.get("score_fraction", 0.0)), tuple(map(float, b["center_ras"])),
                   tuple(map(float, b["size_mm"])), roi) for b, roi in zip(boxes, rois)]
    return sorted(rows, key=lambda r: (-r.score, order.get(r.region, 9), r.rank))


def set_reviewed(row: BoxRow, reviewed: bool) -> None:
    """Tick (or untick) a box; stored on its ROI node so it is saved with the scene."""
    if row.roi is None:
        raise ValueError("this box has no ROI node in the scene; load the run first")
    row.roi.SetAttribute(ATTR_REVIEWED, "1" if reviewed else "0")


def review_progress(rows: list[BoxRow]) -> str:
    """E.g. "2 of 5 boxes reviewed"."""
    done = sum(r.reviewed for r in rows)
    return f"{done} of {len(rows)} box{'es' if len(rows) != 1 else ''} reviewed"


def centre_views_on(scene, center_ras) -> int:
    """Centre every slice view on a RAS point (mm), moving each slice through it.

    Returns the number of slice views moved.
    """
    nodes = nodes_by_class(scene, "vtkMRMLSliceNode")
    for node in nodes:
        node.JumpSliceByCentering(*map(float, center_ras))
    return len(nodes)


def triage_summary(report: dict) -> tuple[str, str]:
    """(headline, plain-language hint) for the panel's triage text: the case-quality
    estimate (report.json `quality`: flag, estimated Dice, reasons) when the run has one,
    the older triage score after it; a report without the block gets the triage alone."""
    headline, hint = _triage_text(report)
    quality = report.get(QUALITY_KEY)
    if not quality:
        return headline, hint
    reasons = "; ".join(quality.get(REASONS) or [])
    text = quality_line({**quality, REASONS: []}).replace("quality:", "Quality:", 1)
    if quality.get(FLAG) == FLAG_REVIEW:
        text = text.replace(FLAG_REVIEW, "REVIEW CAREFULLY", 1)
    return text, f"{reasons[:1].upper()}{reasons[1:]}. {headline}."


def _triage_text(report: dict) -> tuple[str, str]:
    """(headline, plain-language hint) for the case-level triage score of a report.

    The score is the mean normalised entropy (0 = the model always agrees with itself,
    1 = it never does) around the predicted tumour.
    """
    triage = report.get("triage") or {}
    if "score" not in triage:
        return ("Triage: not available", "This output has no triage score; review all boxes.")
    score = float(triage["score"])
    # The run records the model's threshold; older outputs without one get the default.
    threshold = float(triage.get("threshold", DEFAULT_TRIAGE_THRESHOLD))
    flag = triage.get("flag") or ("review" if score >= threshold else "routine")
    if flag == "review":
        headline = f"Triage: REVIEW CAREFULLY (uncertainty {score:.2f}, threshold {threshold:.2f})"
        default = ("The model is unsure over much of the tumour: go through the boxes "
                   "first, then the rest of the tumour slice by slice.")
    else:
        headline = f"Triage: routine (uncertainty {score:.2f}, threshold {threshold:.2f})"
        default = ("The model is mostly consistent: checking the highlighted boxes is "
                   "usually enough.")
    return headline, str(triage.get("hint") or default)
