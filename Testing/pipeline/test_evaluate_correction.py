"""Correction efficiency (evaluation/correction.py) against direct computations."""

import numpy as np
import pytest

from uncertaintyseg.evaluation import correction
from uncertaintyseg.evaluation.metrics import dice


def _direct(ref, pred, boxes):
    corrected, result = pred.copy(), []
    for start, size in boxes:
        window = tuple(slice(s, s + n) for s, n in zip(start, size))
        corrected[window] = ref[window]
        result.append(dice(ref, corrected))
    return result


def test_dice_after_overlapping_boxes_matches_pasting_the_reference():
    rng = np.random.default_rng(0)
    ref = rng.random((20, 24, 24)) < 0.3
    pred = np.where(rng.random(ref.shape) < 0.7, ref, ~ref)
    boxes = [((2, 3, 4), (8, 8, 8)), ((5, 6, 7), (8, 8, 8)), ((12, 16, 16), (8, 8, 8))]
    np.testing.assert_allclose(correction.dice_after_boxes(ref, pred, boxes),
                               _direct(ref, pred, boxes))


def test_a_box_over_the_missed_part_recovers_the_whole_gap():
    ref = np.zeros((20, 20, 20), bool)
    ref[4:12, 4:12, 4:12] = True
    pred = ref.copy()
    pred[4:8, 4:8, 4:8] = False  # one corner missed
    before = dice(ref, pred)
    after = correction.dice_after_boxes(ref, pred, [((4, 4, 4), (4, 4, 4))])
    assert after == [1.0]
    assert correction.share_recovered(before, after)[0] == pytest.approx(1.0)


def test_boxes_from_json_are_zyx_and_ranked():
    records = [{"region": "WT", "rank": 2, "start_ijk": [1, 2, 3], "size_ijk": [4, 5, 6]},
               {"region": "ET", "rank": 1, "start_ijk": [0, 0, 0], "size_ijk": [2, 2, 2]},
               {"region": "WT", "rank": 1, "start_ijk": [7, 8, 9], "size_ijk": [4, 5, 6]}]
    assert correction.boxes_zyx(records, "WT") == [((9, 8, 7), (6, 5, 4)),
                                                   ((3, 2, 1), (6, 5, 4))]


def test_random_boxes_are_centred_on_candidates_and_inside_the_volume():
    rng = np.random.default_rng(1)
    shape = (10, 12, 14)
    candidates = np.ravel_multi_index(([0, 9], [0, 11], [0, 13]), shape)
    for start, size in correction.random_boxes(candidates, shape, [(4, 4, 4)] * 20, rng):
        assert all(0 <= s <= d - n for s, n, d in zip(start, size, shape))
        assert start in ((0, 0, 0), (6, 8, 10))  # the two corners, pushed inside


def _corner_case():
    """A 20^3 case whose WT reference is the cube [4:12]^3; the prediction misses the
    corner [4:8]^3 (64 of 512 voxels): Dice before = 2*448 / (448 + 512) = 14/15."""
    from uncertaintyseg.evaluation.pairing import Output

    ref = np.zeros((3, 20, 20, 20), bool)
    ref[:, 4:12, 4:12, 4:12] = True
    pred = ref.copy()
    pred[:, 4:8, 4:8, 4:8] = False
    reference = type("Reference", (), {"regions": ref, "case_id": "c"})()
    # The evaluated method's own box (4^3, rank 1 of each region) lies away from the
    # error, in the reference's interior: correcting it gains nothing.
    own = [{"region": r, "rank": 1, "start_ijk": [8, 8, 8], "size_ijk": [4, 4, 4]}
           for r in ("ET", "TC", "WT")]
    target = Output(pred, boxes=own, report={"settings": {"max_overlap": 0.4,
                                                          "min_score_fraction": 0.1}})
    return reference, target, Output


def test_boxes_ranked_by_another_methods_uncertainty_find_its_errors():
    reference, target, Output = _corner_case()
    uncertainty = np.zeros((3, 20, 20, 20), np.float32)
    uncertainty[:, 4:8, 4:8, 4:8] = 1.0  # the other method is unsure exactly at the error
    other = Output(target.regions, uncertainty=uncertainty)  # no boxes: kernel search
    result = correction.ranked_correction(reference, target, other)
    assert result["WT"]["dice_before"] == pytest.approx(14 / 15)
    assert result["WT"]["boxes"] == 1
    assert result["WT"]["ranked"] == [pytest.approx(1.0)]  # the corner box: gap closed
    own = correction.dice_after_boxes(reference.regions[2], target.regions[2],
                                      correction.boxes_zyx(target.boxes, "WT"))
    assert own == [pytest.approx(14 / 15)]  # the run's own box: nothing gained


def test_another_methods_boxes_are_used_when_they_have_the_same_size():
    reference, target, Output = _corner_case()
    half = [{"region": r, "rank": 1, "start_ijk": [4, 4, 6], "size_ijk": [4, 4, 4]}
            for r in ("ET", "TC", "WT")]  # covers the corner's z 6-7 only: 32 voxels
    wrong_size = [{**b, "size_ijk": [2, 2, 2]} for b in half]
    uncertainty = np.zeros((3, 20, 20, 20), np.float32)
    uncertainty[:, 4:8, 4:8, 4:8] = 1.0
    listed = correction.ranked_correction(reference, target,
                                          Output(target.regions, uncertainty=uncertainty,
                                                 boxes=half))
    # z 6-7 of the corner recovered: 480 of 512 predicted right, Dice 2*480 / 992.
    assert listed["WT"]["ranked"] == [pytest.approx(960 / 992)]
    # Boxes of another size are not comparable: the kernel search on its map decides.
    searched = correction.ranked_correction(reference, target,
                                            Output(target.regions, uncertainty=uncertainty,
                                                   boxes=wrong_size))
    assert searched["WT"]["ranked"] == [pytest.approx(1.0)]
    # Neither boxes nor uncertainty (a foreign label map): nothing to rank by.
    assert correction.ranked_correction(reference, target, Output(target.regions)) is None


def test_rows_per_ranking_source():
    case = {r: {"boxes": 1, "dice_before": 0.5, "top": [0.6], "random_tumour": [0.55],
                "random_brain": [0.5]} for r in ("ET", "TC", "WT")}
    ranked = {r: {"boxes": 1, "dice_before": 0.5, "ranked": [0.9]} for r in ("ET", "TC", "WT")}
    rows = correction.correction_rows({"c": {"correction": case}},
                                      {"tta": {"c": {"correction": ranked}},
                                       "none": {"c": {"correction": None}}})
    wt = {r["strategy"]: r for r in rows if r["region"] == "WT"}
    assert set(wt) == {"top-k refinement boxes", "random on predicted region",
                       "random in brain", "boxes ranked by tta"}
    assert wt["boxes ranked by tta"]["share_recovered"] == pytest.approx(0.8)
    assert wt["top-k refinement boxes"]["dice_gain"] == pytest.approx(0.1)
