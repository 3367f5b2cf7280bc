"""Correction efficiency (evaluation/correction.py) against direct computations."""

import numpy as np
import pytest

from uncertaintyseg.evaluation import correction
from uncertaintyseg.metrics import dice


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
