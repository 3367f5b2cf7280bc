"""The review helpers: the box table, reviewed ticks, centring the views, triage text."""

from __future__ import annotations

import numpy as np
import pytest

from mrml_helpers import SLICER_CORE
from UncertaintySegLib.review import box_rows, review_progress, set_reviewed, triage_summary


def test_rows_are_sorted_by_score_highest_first(case2018):
    rows = box_rows(case2018.boxes)
    scores = [row.score for row in rows]
    assert scores == sorted((b["score"] for b in case2018.boxes), reverse=True)
    top = max(case2018.boxes, key=lambda b: b["score"])
    assert (rows[0].region, rows[0].rank) == (top["region"], top["rank"])
    assert rows[0].cells()[2] == f"{top['score']:.1f}"
    with pytest.raises(ValueError, match="4 boxes but 1 ROI"):
        box_rows(case2018.boxes, rois=[None])


def test_triage_summary_says_what_to_do():
    headline, hint = triage_summary({"triage": {"score": 0.41, "threshold": 0.3,
                                                "flag": "review", "hint": ""}})
    assert "REVIEW" in headline and "0.41" in headline and "boxes" in hint
    headline, hint = triage_summary({"triage": {"score": 0.1, "threshold": 0.3,
                                                "flag": "routine", "hint": "Check boxes."}})
    assert headline.startswith("Triage: routine") and hint == "Check boxes."
    assert "not available" in triage_summary({})[0]


def test_the_case_quality_comes_first_with_its_reasons():
    report = {"triage": {"score": 0.1, "threshold": 0.3, "flag": "routine"},
              "quality": {"flag": "review", "estimated_dice": 0.42, "interval": [0.3, 0.55],
                          "reasons": ["input check: the volume given as T1ce shows "
                                      "no enhancement", "the tumour is 3 fragments"]}}
    headline, hint = triage_summary(report)
    assert headline == "Quality: REVIEW CAREFULLY (estimated WT Dice 0.42, 0.30-0.55)"
    assert hint.startswith("Input check: the volume given as T1ce shows no "
                           "enhancement; the tumour is 3 fragments. Triage: routine")


def test_reviewed_ticks_live_on_the_roi_nodes_and_views_centre_on_a_box(logics, case2018):
    pytest.importorskip("slicer", reason=SLICER_CORE)
    from UncertaintySegLib.render import add_slice_views
    from UncertaintySegLib.review import centre_views_on
    from UncertaintySegLib.scene import ResultLoader

    run = ResultLoader(logics).load(case2018.output_dir)
    rows = box_rows(run.boxes, run.rois)
    assert review_progress(rows) == "0 of 4 boxes reviewed"
    set_reviewed(rows[1], True)
    assert rows[1].reviewed and rows[1].roi.GetAttribute("UncertaintySeg.Reviewed") == "1"
    assert review_progress(box_rows(run.boxes, run.rois)) == "1 of 4 boxes reviewed"

    nodes = add_slice_views(logics, (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal")))
    target = rows[2].center_ras
    assert centre_views_on(logics.scene, target) == 3
    for node in nodes:
        slice_to_ras = node.GetSliceToRAS()
        centre = [slice_to_ras.GetElement(r, 3) for r in range(3)]
        np.testing.assert_allclose(centre, target, atol=1e-6)
