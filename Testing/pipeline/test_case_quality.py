"""Case-quality signals on arrays with a known answer, and how they combine into the
report's `quality` block (estimate, interval, flag, reasons)."""

import math

import numpy as np
import pytest

from uncertaintyseg.run import case_quality as cq
from uncertaintyseg.run.quality_model import DEFAULT_LIMITS, assess_quality, estimate_dice
from uncertaintyseg_shared.quality import FLAG_REVIEW, FLAG_ROUTINE, quality_line

SHAPE = (10, 20, 20)


def _regions(wt=None, tc=None, et=None) -> np.ndarray:
    out = np.zeros((3, *SHAPE), dtype=bool)
    for index, box in ((cq.ET, et), (cq.TC, tc), (cq.WT, wt)):
        if box is not None:
            out[(index, *box)] = True
    return out


def test_disagreement_counts_only_inside_the_cubes():
    p2d = np.zeros((3, *SHAPE), np.float32)
    p3d = np.full((3, *SHAPE), -1.0, np.float32)
    assert cq.disagreement_2d3d(p2d, p3d) is None  # no cube
    p3d[:, 2:6, 5:15, 5:15] = 0.0
    assert cq.disagreement_2d3d(p2d, p3d) is None  # a cube, no tumour in it
    p2d[cq.WT, 2:6, 5:15, 5:10] = 0.9    # 2D: 200 voxels
    p3d[cq.WT, 2:6, 5:15, 5:15] = 0.9    # 3D: 400 voxels, 200 shared
    p2d[cq.WT, 8, :, :] = 0.9            # outside the cubes: not compared
    assert cq.disagreement_2d3d(p2d, p3d) == pytest.approx(0.5)
    assert cq.disagreement_2d3d(None, p3d) is None


def test_uncertainty_over_the_brain_and_its_ratio_to_the_tumour():
    brain = np.zeros(SHAPE, bool)
    brain[:, 5:15, 5:15] = True                          # 1000 voxels
    uncertainty = np.zeros((3, *SHAPE), np.float32)
    uncertainty[2, :5, 5:15, 5:15] = 0.8                 # 500 uncertain brain voxels
    uncertainty[0, :, :5, :] = 1.0                       # outside the brain: ignored
    assert cq.brain_uncertainty(uncertainty, brain) == pytest.approx(0.4)
    wt = np.zeros(SHAPE, bool)
    wt[0, 5:15, 5:10] = True                             # 50 voxels
    assert cq.uncertain_ratio(uncertainty, brain, wt) == pytest.approx(500 / 550)
    assert cq.uncertain_ratio(uncertainty, brain, np.zeros(SHAPE, bool)) == 1.0
    assert cq.uncertain_ratio(np.zeros_like(uncertainty), brain, np.zeros(SHAPE, bool)) == 0


def test_volumes_and_their_deviation_from_the_training_range():
    regions = _regions(wt=np.s_[0:2, 0:10, 0:10])        # 200 voxels of 2 mm^3
    volumes = cq.volumes_ml(regions, (2.0, 1.0, 1.0))
    assert volumes == {"ET": 0.0, "TC": 0.0, "WT": 0.4}
    ranges = {"WT": [0.2, 0.8], "TC": [0.0, 1.0]}
    assert cq.volume_deviation(volumes, ranges) == (0.0, None)
    deviation, region = cq.volume_deviation({"WT": 1.6, "TC": 0.5}, ranges)
    assert region == "WT" and deviation == pytest.approx(math.log(2), abs=1e-4)
    deviation, region = cq.volume_deviation({"WT": 0.0, "TC": 0.5}, ranges)
    assert region == "WT" and deviation == pytest.approx(math.log(2), abs=1e-4)  # 0.1 ml


def test_nesting_violation_before_enforcement():
    nested = _regions(wt=np.s_[:, :10, :10], tc=np.s_[:, :5, :5], et=np.s_[:, :2, :2])
    assert cq.nesting_violation(nested) == 0.0
    # ET half outside TC: 20 of the 40 ET voxels; TC inside WT; total ET + TC = 40 + 250.
    loose = _regions(wt=np.s_[:, :10, :10], tc=np.s_[:, :5, :5], et=np.s_[:, 4:6, 0:2])
    assert cq.nesting_violation(loose) == pytest.approx(20 / 290)
    assert cq.nesting_violation(_regions()) == 0.0


def test_fragments_and_location():
    wt = np.zeros(SHAPE, bool)
    wt[2:6, 2:12, 2:12] = True                           # 400 voxels
    wt[8, 18, 18] = True                                  # a separate voxel
    wt[8, 16, 16] = True                                  # another one
    count, share = cq.fragments(wt)
    assert count == 3 and share == pytest.approx(2 / 402)
    assert cq.fragments(np.zeros(SHAPE, bool)) == (0, 0.0)
    brain = np.zeros(SHAPE, bool)
    brain[:, 2:20, 2:20] = True
    wt = np.zeros(SHAPE, bool)
    wt[4:6, 0:4, 10:12] = True                # rows 0-1 outside, 2-3 on the border
    outside, border = cq.location(wt, brain)
    assert outside == pytest.approx(0.5) and border == pytest.approx(0.5)
    wt = np.zeros(SHAPE, bool)
    wt[4:6, 8:12, 8:12] = True                # deep inside
    assert cq.location(wt, brain) == (0.0, 0.0)


def test_compute_signals_on_one_case():
    image = np.zeros((4, *SHAPE), np.float32)
    image[:, :, 2:18, 2:18] = 1.0
    probabilities = np.zeros((3, *SHAPE), np.float32)
    probabilities[:, 3:7, 6:12, 6:12] = 0.9
    uncertainty = np.zeros((3, *SHAPE), np.float32)
    signals = cq.compute_signals(image, (1.0, 1.0, 1.0), probabilities, uncertainty,
                                 findings=["the volume given as T1ce shows no enhancement"],
                                 ranges={"WT": [1.0, 100.0]})
    assert signals["volume_ml"]["WT"] == pytest.approx(0.144)
    assert signals["volume_deviation_region"] == "WT" and signals["input_findings"] == 1
    assert signals["wt_components"] == 1 and signals["at_border"] == 0.0
    assert signals["disagreement_2d3d"] is None
    assert set(cq.SIGNAL_UNITS) <= set(signals)


def _clean(**changes) -> dict:
    signals = {"disagreement_2d3d": 0.1, "brain_uncertainty": 0.05, "uncertain_ratio": 0.6,
               "volume_ml": {"ET": 10.0, "TC": 20.0, "WT": 60.0}, "volume_deviation": 0.0,
               "volume_deviation_region": None, "nesting_violation": 0.0,
               "wt_components": 1, "fragment_share": 0.0, "outside_brain": 0.0,
               "at_border": 0.0, "input_findings": 0, "feature_distance": 1.0}
    return {**signals, **changes}


PARAMS = {"intercept": 0.95, "coefficients": {"disagreement_2d3d": -1.0},
          "interval": 0.1, "review_below": 0.8, "limits": DEFAULT_LIMITS,
          "volume_ranges_ml": {"WT": [15.0, 230.0]}}


def test_estimate_is_linear_clipped_and_carries_its_interval():
    assert estimate_dice(_clean(), PARAMS) == (0.85, [0.75, 0.95])
    assert estimate_dice(_clean(disagreement_2d3d=None), PARAMS) == (0.95, [0.85, 1.0])
    assert estimate_dice(_clean(disagreement_2d3d=2.0), PARAMS)[0] == 0.0
    assert estimate_dice(_clean(), {}) == (None, None)


def test_a_clean_case_is_routine_and_each_failure_names_its_reason():
    block = assess_quality(_clean(), PARAMS)
    assert block["flag"] == FLAG_ROUTINE and block["estimated_dice"] == 0.85
    low = assess_quality(_clean(disagreement_2d3d=0.4), PARAMS)
    assert low["flag"] == FLAG_REVIEW and "0.55" in low["reasons"][0]
    rim = assess_quality(_clean(at_border=0.6), PARAMS)
    assert rim["flag"] == FLAG_REVIEW and "60 % of the tumour" in rim["reasons"][0]
    scattered = assess_quality(_clean(fragment_share=0.7, wt_components=3), PARAMS)
    assert "3 fragments" in scattered["reasons"][0]
    big = assess_quality(_clean(volume_deviation=1.0, volume_deviation_region="WT",
                                volume_ml={"WT": 630.0}), PARAMS)
    assert "WT volume (630.0 ml)" in big["reasons"][0] and "15.0-230.0" in big["reasons"][0]
    forced = assess_quality(_clean(), PARAMS, ["the volume given as T1ce shows no enhancement"])
    assert forced["flag"] == FLAG_REVIEW
    assert forced["reasons"][0] == ("input check: the volume given as T1ce shows no "
                                    "enhancement")


def test_a_case_far_from_the_training_data_is_flagged_in_words():
    far = assess_quality(_clean(feature_distance=2.4), PARAMS)
    assert far["flag"] == FLAG_REVIEW
    assert far["reasons"][0].startswith("the case is far from the training data in the "
                                        "network's features: 2.4 times as far")
    # A model without a fit records the signal as not available (None): no flag.
    assert assess_quality(_clean(feature_distance=None), PARAMS)["flag"] == FLAG_ROUTINE


def test_reasons_come_furthest_past_first_and_the_line_shows_the_first():
    block = assess_quality(_clean(at_border=0.35, outside_brain=0.5), PARAMS)
    assert "outside the brain mask" in block["reasons"][0]   # 5x its limit, before 1.2x
    line = quality_line(block)
    assert line.startswith("quality: review (estimated WT Dice 0.85, 0.75-0.95) - 50 %")
    assert quality_line(None) == ""


def test_cohort_table_carries_the_block_and_ranks_worst_first(tmp_path):
    from uncertaintyseg.cohorts.cohort_table import ranked, read_table, row_from_report, to_csv

    def report(flag, estimate, score):
        return {"triage": {"score": score, "flag": "routine"},
                "quality": assess_quality(_clean(), PARAMS) | {
                    "flag": flag, "estimated_dice": estimate, "reasons": [f"{flag} why"]}}

    rows = [row_from_report(report("routine", 0.9, 0.9), "A", "done", "a"),
            row_from_report(report("review", 0.8, 0.1), "B", "done", "b"),
            row_from_report(report("review", 0.4, 0.2), "C", "done", "c"),
            row_from_report({"triage": {"score": 0.5}}, "D", "done", "d")]  # older report
    table = ranked(rows)
    assert [r["case"] for r in table] == ["C", "B", "A", "D"]
    assert table[0]["quality_reason"] == "review why" and table[0]["estimated_dice"] == 0.4
    (tmp_path / "cohort.csv").write_text(to_csv(table), encoding="utf-8")
    back = read_table(tmp_path / "cohort.csv")
    assert [r["case"] for r in ranked(back)] == ["C", "B", "A", "D"]  # strings read back


def test_the_card_section_is_rendered_from_model_json():
    from uncertaintyseg.evaluation.model_card import quality_section

    scores = {"spearman": 0.5, "failed_flagged": 2, "good_flagged": 0}
    record = {**PARAMS, "measured": "2026-12-07", "command": "tools/fit_case_quality.py R",
              "notes": "Few runs.",
              "fit": {"runs": 2, "cases": 1, "failed_below_0.7": 2, "good_0.85_or_more": 1,
                      "as_fitted": scores, "refit_without_run": {**scores, "spearman": 0.1},
                      "refit_without_case": scores},
              "runs": [{"run": "Brats18_X__clean", "dice": 0.9, "feature_distance": 1.04,
                        "estimate": 0.85, "flag": "routine", "reason": "-"},
                       {"run": "Brats18_X__rim", "dice": 0.2, "feature_distance": None,
                        "estimate": 0.3, "flag": "review", "reason": "input check: rim"}]}
    entry = {"file": "feature_distance.npz", "size_bytes": 53939, "layer": "encoder.stages[-1]",
             "slices": 8, "cases": 23, "covariance": "sklearn LedoitWolf", "shrinkage": 0.02,
             "training_scores_loco": {"min": 0.7, "median": 1.0, "max": 1.29}}
    text = "\n".join(quality_section(record, entry))
    assert "estimated WT Dice = 0.950 - 1.000 x disagreement_2d3d" in text
    assert "| X clean | 0.900 | 1.04 | 0.850 | routine | - |" in text
    assert "| X rim | 0.200 | n/a | 0.300 | review | input check: rim |" in text
    assert "| Spearman of estimate and WT Dice (>= 0.7) | 0.5 | 0.1 | 0.5 |" in text
    assert "54 kB" in text and "0.7-1.29" in text and text.endswith("Few runs.\n")
    assert "not available" in "\n".join(quality_section(record, None))
    assert quality_section(PARAMS) == []  # a fit stored before the card rendered it
