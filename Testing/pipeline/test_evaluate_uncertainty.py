"""Uncertainty-quality measures against direct computations (evaluation/uncertainty_quality)."""

import itertools

import numpy as np
import pytest
from scipy import stats

from uncertaintyseg.evaluation import uncertainty_quality as uq
from uncertaintyseg.files.label_maps import labels_to_regions


def _direct_qubrats(ref, pred, u100):
    """One threshold at a time, as the QU-BraTS paper states it."""
    dice, ftp, ftn = [], [], []
    tp_all = np.sum(ref & pred)
    tn_all = np.sum(~ref & ~pred)
    for tau in [100 - 2.5 * k for k in range(41)]:
        keep = u100 <= tau
        r, p = ref[keep], pred[keep]
        tp, fp, fn, tn = (np.sum(r & p), np.sum(~r & p), np.sum(r & ~p), np.sum(~r & ~p))
        dice.append(1.0 if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
        ftp.append((tp_all - tp) / tp_all)
        ftn.append((tn_all - tn) / tn_all)
    return np.array(dice), np.array(ftp), np.array(ftn)


def _trapezoid_over_100(values):  # values at 100, 97.5, ..., 0
    x = np.linspace(1.0, 0.0, 41)
    return float(-np.trapezoid(values, x))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_qubrats_curves_and_aucs_match_direct_computation(seed):
    rng = np.random.default_rng(seed)
    ref = rng.random(4000) < 0.3
    pred = np.where(rng.random(4000) < 0.8, ref, ~ref)
    # errors more uncertain than the rest; values on and between the thresholds
    u100 = np.clip(rng.normal(np.where(ref != pred, 70, 30), 25), 0, 100)
    u100[:50] = 97.5
    u100[50:60] = 100.0
    curves = uq.qubrats_curves(ref, pred, u100)
    dice, ftp, ftn = _direct_qubrats(ref, pred, u100)
    assert curves["thresholds"][0] == 100.0 and curves["thresholds"][-1] == 0.0
    assert len(curves["thresholds"]) == 41
    np.testing.assert_allclose(curves["dice"], dice)
    np.testing.assert_allclose(curves["ftp"], ftp)
    np.testing.assert_allclose(curves["ftn"], ftn)
    scores = uq.qubrats_scores(curves)
    assert scores["qubrats_auc_dice"] == pytest.approx(_trapezoid_over_100(dice))
    assert scores["qubrats_auc_ftp"] == pytest.approx(_trapezoid_over_100(ftp))
    expected = (_trapezoid_over_100(dice) + 2 - _trapezoid_over_100(ftp)
                - _trapezoid_over_100(ftn)) / 3
    assert scores["qubrats_score"] == pytest.approx(expected)


def test_qubrats_threshold_100_keeps_every_voxel():
    ref = np.array([1, 1, 0, 0, 1], bool)
    pred = np.array([1, 0, 0, 1, 1], bool)
    curves = uq.qubrats_curves(ref, pred, np.full(5, 100.0))
    # at 100 nothing is filtered: the plain Dice 2*2 / (2*2 + 1 + 1); below it all is
    assert curves["dice"][0] == pytest.approx(4 / 6)
    assert curves["ftp"][0] == 0.0 and curves["ftn"][0] == 0.0
    assert np.all(curves["dice"][1:] == 1.0) and np.all(curves["ftp"][1:] == 1.0)


def test_qubrats_is_the_same_in_both_label_conventions():
    rng = np.random.default_rng(3)
    labels_2018 = rng.choice([0, 1, 2, 4], size=(6, 8, 8))
    labels_2023 = np.where(labels_2018 == 4, 3, labels_2018)
    pred = labels_to_regions(rng.choice([0, 1, 2, 4], size=(6, 8, 8)))
    u = rng.random((6, 8, 8)) * 100
    for region in range(3):
        a = uq.qubrats_curves(labels_to_regions(labels_2018)[region], pred[region], u)
        b = uq.qubrats_curves(labels_to_regions(labels_2023)[region], pred[region], u)
        np.testing.assert_array_equal(a["dice"], b["dice"])


def _pairwise_auroc(scores, positives):
    pos, neg = scores[positives], scores[~positives]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", [0, 1])
def test_auroc_matches_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    positives = rng.random(120) < 0.25
    scores = np.round(rng.random(120) + positives * 0.4, 1)  # rounding makes ties
    expected = _pairwise_auroc(scores, positives)
    assert uq.auroc(scores, positives) == pytest.approx(expected)


def test_auroc_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    positives = rng.random(20000) < 0.05
    scores = rng.random(20000).astype(np.float32) + positives * 0.3
    assert uq.auroc(scores, positives) == pytest.approx(
        metrics.roc_auc_score(positives, scores))


def test_auroc_is_nan_without_errors():
    assert np.isnan(uq.auroc(np.ones(5), np.zeros(5, bool)))


def test_ece_matches_a_loop_over_bins():
    rng = np.random.default_rng(4)
    p = rng.random(3000)
    y = rng.random(3000) < p ** 2  # over-confident: frequency below probability
    p[:7] = 1.0  # the last bin includes 1
    expected = 0.0
    for k in range(15):
        upper = p <= (k + 1) / 15 if k == 14 else p < (k + 1) / 15
        inside = (p >= k / 15) & upper
        if inside.any():
            expected += inside.mean() * abs(p[inside].mean() - y[inside].mean())
    assert uq.ece(uq.calibration_bins(p, y)) == pytest.approx(expected)
    assert expected > 0.05


def test_ece_extremes():
    assert uq.ece(uq.calibration_bins(np.full(10, 0.999), np.zeros(10, bool))) == pytest.approx(0.999)
    y = np.array([1] * 7 + [0] * 3, bool)
    assert uq.ece(uq.calibration_bins(np.full(10, 0.7), y)) == pytest.approx(0.0, abs=1e-12)


def test_pearson_and_rmsd_against_scipy_and_formula():
    rng = np.random.default_rng(5)
    error = rng.random(500) < 0.2
    u = np.clip(error * 0.6 + rng.random(500) * 0.4, 0, 1)
    result = uq.alignment(u, error)
    assert result["pearson"] == pytest.approx(stats.pearsonr(u, error.astype(float)).statistic)
    assert result["rmsd"] == pytest.approx(np.sqrt(np.mean((u - error) ** 2)))
    assert np.isnan(uq.alignment(u, np.zeros(500, bool))["pearson"])


def test_region_quality_counts_errors_of_the_mask():
    ref = np.array([1, 1, 0, 0], bool)
    pred = np.array([1, 0, 1, 0], bool)
    u = np.array([0.1, 0.9, 0.8, 0.2])  # the two wrong voxels are the most uncertain
    result = uq.region_quality(ref, pred, u, probability=np.array([0.9, 0.4, 0.6, 0.1]))
    assert result["auroc"] == 1.0
    assert result["error_fraction"] == 0.5
    assert 0 <= result["ece"] <= 1


def _direct_border_distance(region, spacing):
    """Brute force: per voxel, the smallest distance in mm to a voxel of the other side."""
    points = np.argwhere(np.ones_like(region)) * np.asarray(spacing, float)
    inside = region.ravel()
    out = np.empty(region.size)
    for i, (point, side) in enumerate(zip(points, inside)):
        other = points[inside != side]
        out[i] = np.sqrt(((other - point) ** 2).sum(axis=1)).min()
    return out.reshape(region.shape)


def test_border_score_against_brute_force_distance():
    rng = np.random.default_rng(3)
    region = np.zeros((7, 8, 9), bool)
    region[2:5, 3:7, 1:6] = True
    region[rng.random(region.shape) < 0.05] = True
    within = np.zeros_like(region)
    within[1:6, 1:8, :] = True  # the voxel set; the distances still see the whole region
    spacing = (2.0, 1.0, 0.5)
    expected = 1.0 / (1.0 + _direct_border_distance(region, spacing))
    np.testing.assert_allclose(uq.border_score(region, spacing, within), expected[within])
    assert uq.border_score(np.zeros_like(region), spacing, within) is None
    assert uq.border_score(np.ones_like(region), spacing, within) is None


def test_region_quality_reports_the_border_baseline():
    ref = np.array([1, 1, 1, 0, 0], bool)
    pred = np.array([1, 1, 0, 0, 0], bool)  # the miss sits on the predicted border
    u = np.array([0.0, 0.0, 0.0, 0.0, 0.0])  # an uncertainty that says nothing
    distance = np.array([2.0, 1.0, 1.0, 2.0, 3.0])  # mm to the predicted border
    border = 1.0 / (1.0 + distance)
    result = uq.region_quality(ref, pred, u, distance=distance)
    assert result["auroc"] == 0.5
    assert result["auroc_border"] == pytest.approx(uq.auroc(border, ref != pred))
    assert result["auroc_border"] > 0.8
    assert np.isnan(uq.region_quality(ref, pred, u)["auroc_border"])


def test_border_distance_is_the_score_s_distance():
    region = np.zeros((6, 7, 8), bool)
    region[1:4, 2:6, 3:7] = True
    within = np.ones_like(region)
    spacing = (2.0, 1.0, 0.5)
    np.testing.assert_allclose(uq.border_distance(region, spacing, within),
                               _direct_border_distance(region, spacing)[within])
    assert uq.border_distance(np.zeros_like(region), spacing, within) is None


def _hand_built_case():
    """A 12^3 grid at 1 mm, a predicted 6^3 cube; the reference adds a one-voxel slab on
    one face (errors next to the border), one voxel in a corner 5.2 mm away and a hole
    in the cube's middle 3 mm inside (errors beyond 2 mm)."""
    pred = np.zeros((12, 12, 12), bool)
    pred[3:9, 3:9, 3:9] = True
    ref = pred.copy()
    ref[3:9, 3:9, 9] = True  # 36 near errors, 1 mm from the border
    ref[0, 0, 0] = True  # far: sqrt(27) mm
    ref[5, 5, 5] = False  # far: 3 mm inside
    distance = _direct_border_distance(pred, (1.0, 1.0, 1.0))
    return ref, pred, distance


def test_far_auroc_is_1_for_uncertainty_on_the_far_errors_alone():
    ref, pred, distance = _hand_built_case()
    error = ref != pred
    far_errors = error & (distance > uq.FAR_MM)
    assert far_errors.sum() == 2
    u = far_errors.astype(float)  # high exactly on the errors beyond 2 mm
    result = uq.region_quality(ref.ravel(), pred.ravel(), u.ravel(),
                               distance=distance.ravel())
    assert result["auroc_far"] == 1.0
    assert result["auroc"] < 0.6  # overall it misses the 36 errors at the border
    assert result["error_share_far"] == pytest.approx(2 / 38)


def test_far_auroc_is_chance_for_an_outline():
    ref, pred, distance = _hand_built_case()
    u = (distance <= 1.0).astype(float)  # the outline of the predicted cube
    result = uq.region_quality(ref.ravel(), pred.ravel(), u.ravel(),
                               distance=distance.ravel())
    assert result["auroc_far"] == 0.5  # constant beyond 2 mm: ties everywhere
    # and yet it ranks well over all voxels: 36 of the 38 errors are on the outline
    # (152 inner + 216 face-adjacent outer voxels, 332 of them right), 2 are not.
    assert result["auroc"] == pytest.approx(
        (36 * 1358 + 0.5 * (36 * 332 + 2 * 1358)) / (38 * 1690))
    far = distance > uq.FAR_MM
    assert result["auroc_border_far"] == pytest.approx(
        uq.auroc(1.0 / (1.0 + distance[far]), (ref != pred)[far]))
    assert result["auroc_border"] > result["auroc_border_far"]


def test_far_scores_without_a_border():
    ref = np.array([1, 0, 0, 1], bool)
    pred = np.zeros(4, bool)  # nothing predicted: no border, every voxel is far
    result = uq.far_scores(np.array([0.9, 0.1, 0.2, 0.8]), ref != pred, None)
    assert result["auroc_far"] == 1.0 and result["error_share_far"] == 1.0
    assert np.isnan(result["auroc_border_far"])
    assert np.isnan(uq.far_scores(np.zeros(3), np.zeros(3, bool), None)["error_share_far"])
