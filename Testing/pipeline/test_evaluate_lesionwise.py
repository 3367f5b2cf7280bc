"""Lesion-wise metrics on hand-built masks whose answers are worked out by hand."""

import numpy as np
import pytest
from scipy import ndimage

from uncertaintyseg.evaluation.lesionwise import brats2023, brats2024
from uncertaintyseg.evaluation.metrics import DEFAULT_EMPTY_HD95

SPACING = (1.0, 1.0, 1.0)


def _volume():
    return np.zeros((30, 30, 30), bool)


def test_brats2023_penalises_misses_and_false_positives_and_drops_small_lesions():
    ref, pred = _volume(), _volume()
    ref[2:7, 2:7, 2:7] = True          # lesion A, 125 voxels: found exactly (Dice 1, HD95 0)
    pred[2:7, 2:7, 2:7] = True
    ref[15:19, 2:6, 2:6] = True        # lesion B, 64 voxels: missed (Dice 0, HD95 373.13)
    ref[2:5, 20:23, 20:23] = True      # lesion C, 27 voxels <= 50: dropped ...
    pred[3, 21, 21] = True             # ... and a prediction on it is no false positive
    pred[20:22, 20:22, 20:22] = True   # far from every lesion: one false positive
    result = brats2023(ref, pred, SPACING)
    assert (result["lesions"], result["dropped"], result["false_positives"]) == (2, 1, 1)
    assert result["dice"] == pytest.approx((1 + 0 + 0) / 3)
    assert result["hd95"] == pytest.approx((0 + 2 * DEFAULT_EMPTY_HD95) / 3)


def test_brats2023_merges_lesions_joined_by_the_dilation():
    ref, pred = _volume(), _volume()
    ref[5:9, 5:9, 5:9] = True    # two 64-voxel cubes 2 voxels apart: one lesion after the
    ref[5:9, 5:9, 11:15] = True  # reference is dilated by 3
    pred[5:9, 5:9, 5:9] = True   # the prediction finds one of them
    result = brats2023(ref, pred, SPACING)
    assert result["lesions"] == 1 and result["false_positives"] == 0
    assert result["dice"] == pytest.approx(2 * 64 / (128 + 64))


def test_brats2023_empty_masks():
    assert brats2023(_volume(), _volume(), SPACING)["dice"] == 1.0
    pred = _volume()
    pred[1:3, 1:3, 1:3] = True
    result = brats2023(_volume(), pred, SPACING)
    assert result["dice"] == 0.0 and result["hd95"] == DEFAULT_EMPTY_HD95


def _border(mask):
    return mask & ~ndimage.binary_erosion(mask, ndimage.generate_binary_structure(3, 1))


def _direct_nsd(ref, pred, tolerance=1.0):
    """Mean of the shares of each border within `tolerance` of the other border."""
    to_ref = ndimage.distance_transform_edt(~_border(ref))
    to_pred = ndimage.distance_transform_edt(~_border(pred))
    return (np.mean(to_ref[_border(pred)] <= tolerance)
            + np.mean(to_pred[_border(ref)] <= tolerance)) / 2


def test_brats2024_matches_at_iou_half_and_scores_matched_lesions():
    pytest.importorskip("panoptica")
    ref, pred = _volume(), _volume()
    ref[2:7, 2:7, 2:7] = True      # A: 125 voxels
    pred[2:7, 2:7, 2:9] = True     # A grown by 2 in x: IoU 125/175 > 0.5, Dice 250/300
    ref[15:19, 15:19, 15:19] = True  # B: missed
    pred[22:25, 2:5, 2:5] = True   # a false positive
    ref[15:17, 2:4, 22:24] = True  # C: 8 voxels, predicted shifted: IoU 4/12 < 0.5
    pred[15:17, 3:5, 22:24] = True
    result = brats2024(ref, pred, SPACING)
    assert (result["tp"], result["fp"], result["fn"]) == (1, 2, 2)
    assert result["f1"] == pytest.approx(2 * 1 / (2 * 1 + 2 + 2))
    assert result["dice"] == pytest.approx(250 / 300)
    a_ref, a_pred = ref.copy(), pred.copy()
    a_ref[10:] = False
    a_ref[:, 10:] = False
    a_pred[10:] = False
    a_pred[:, :, 12:] = False
    a_pred[:, 10:] = False
    assert result["nsd"] == pytest.approx(_direct_nsd(a_ref, a_pred))
    assert 0 < result["nsd"] < 1


def test_brats2024_empty_and_unmatched():
    pytest.importorskip("panoptica")
    assert brats2024(_volume(), _volume(), SPACING)["f1"] == 1.0
    ref, pred = _volume(), _volume()
    ref[2:5, 2:5, 2:5] = True
    pred[20:23, 20:23, 20:23] = True
    result = brats2024(ref, pred, SPACING)
    assert result["dice"] == 0.0 and result["f1"] == 0.0
