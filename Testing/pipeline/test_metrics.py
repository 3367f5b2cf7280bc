"""Tests of uncertaintyseg.evaluation.metrics: HD95 against medpy (the oracle), Dice and the voxel
rates against hand-computed numbers, the empty rules, Wilcoxon + Bonferroni."""

import csv
import io as stdio
import itertools
from pathlib import Path

import numpy as np
import pytest
from medpy.metric.binary import hd95 as medpy_hd95
from scipy import ndimage

from uncertaintyseg.evaluation import metrics

BRATS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "brats2018"


def random_blob(shape, seed, level=0.15, sigma=2.5):
    """A few smooth random blobs (bool), some touching the array edge."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field > level * field.std()


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.9, 1.3)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hd95_matches_medpy_on_random_blobs(spacing, seed):
    ref = random_blob((20, 26, 30), seed)
    pred = random_blob((20, 26, 30), seed + 100)
    assert ref.any() and pred.any()
    expected = medpy_hd95(pred, ref, voxelspacing=spacing)
    assert metrics.hd95(ref, pred, spacing) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 0.7, 1.2)])
def test_hd95_matches_medpy_on_small_objects_inside_large_volume(spacing):
    # Objects far from the array edge: exercises the bounding-box crop.
    ref = np.zeros((30, 40, 50), dtype=bool)
    pred = np.zeros_like(ref)
    ref[10:14, 12:20, 30:37] = True
    ref[20, 30, 5] = True                      # a lone far voxel
    pred[11:15, 13:22, 29:35] = True
    expected = medpy_hd95(pred, ref, voxelspacing=spacing)
    assert metrics.hd95(ref, pred, spacing) == pytest.approx(expected, rel=1e-12)


def test_hd95_two_single_voxels_by_hand():
    ref = np.zeros((3, 3, 6), dtype=bool)
    pred = np.zeros_like(ref)
    ref[1, 1, 0] = True
    pred[1, 1, 3] = True
    # 3 voxels apart along x with sx = 2 mm: every surface distance is 6 mm.
    assert metrics.hd95(ref, pred, (1.0, 1.0, 2.0)) == pytest.approx(6.0)
    assert metrics.hd95(ref, pred, (5.0, 5.0, 0.5)) == pytest.approx(1.5)


def _brats_wt_crop(margin=6):
    sitk = pytest.importorskip("SimpleITK")
    if not BRATS.is_dir():
        pytest.skip(f"shared BraTS 2018 cases not found at {BRATS.resolve()}")
    seg_files = sorted(BRATS.glob("*/*_seg.nii.gz"))
    if not seg_files:
        pytest.skip(f"no *_seg.nii.gz label maps under {BRATS.resolve()}")
    image = sitk.ReadImage(str(seg_files[0]))
    wt = sitk.GetArrayFromImage(image) > 0
    # Crop around the tumour so medpy (the slow oracle) stays fast; the margin keeps the
    # shifted copy inside the box.
    box = tuple(slice(max(s.start - margin, 0), s.stop + margin)
                for s in ndimage.find_objects(wt.astype(np.uint8))[0])
    spacing_zyx = tuple(reversed(image.GetSpacing()))
    return wt[box], spacing_zyx


@pytest.mark.parametrize("spacing_kind", ["header", "anisotropic"])
def test_hd95_matches_medpy_on_brats_whole_tumour(spacing_kind):
    wt, header_spacing = _brats_wt_crop()
    spacing = header_spacing if spacing_kind == "header" else (2.0, 0.8, 1.1)
    shifted = np.roll(wt, (2, -3, 1), axis=(0, 1, 2))
    eroded = ndimage.binary_erosion(wt, iterations=2)
    for pred in (shifted, eroded):
        expected = medpy_hd95(pred, wt, voxelspacing=spacing)
        assert expected > 0
        assert metrics.hd95(wt, pred, spacing) == pytest.approx(expected, rel=1e-12)


def test_dice_and_rates_on_hand_made_arrays():
    ref = np.array([[[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]]], dtype=bool)
    pred = np.array([[[0, 1, 1, 1, 0], [0, 0, 0, 0, 0]]], dtype=bool)
    # tp = 2, fp = 1, fn = 1, tn = 6 over all 10 voxels.
    m = metrics.region_metrics(ref, pred, (1.0, 1.0, 1.0))
    assert m["dice"] == pytest.approx(2 * 2 / (3 + 3))
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(6 / 7)
    assert m["accuracy"] == pytest.approx(8 / 10)
    # Over the first row only: tp = 2, fp = 1, fn = 1, tn = 1; Dice keeps the whole mask.
    mask = np.array([[[1, 1, 1, 1, 1], [0, 0, 0, 0, 0]]], dtype=bool)
    m = metrics.region_metrics(ref, pred, (1.0, 1.0, 1.0), mask=mask)
    assert m["dice"] == pytest.approx(2 / 3)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(1 / 2)
    assert m["accuracy"] == pytest.approx(3 / 5)


def test_identical_masks_are_perfect():
    ref = random_blob((12, 14, 16), 5)
    m = metrics.region_metrics(ref, ref.copy(), (1.0, 2.0, 3.0))
    assert m == {"dice": 1.0, "hd95": 0.0, "sensitivity": 1.0, "specificity": 1.0, "accuracy": 1.0}


def test_empty_rules():
    empty = np.zeros((4, 5, 6), dtype=bool)
    full = empty.copy()
    full[1:3, 1:3, 1:3] = True
    both = metrics.region_metrics(empty, empty, (1, 1, 1))
    assert both["dice"] == 1.0 and both["hd95"] == 0.0
    assert both["sensitivity"] == 1.0 and both["specificity"] == 1.0 and both["accuracy"] == 1.0

    false_positive = metrics.region_metrics(empty, full, (1, 1, 1))
    assert false_positive["dice"] == 0.0
    assert false_positive["hd95"] == pytest.approx(373.13)
    assert false_positive["sensitivity"] == 0.0          # documented choice
    assert false_positive["specificity"] == pytest.approx(1 - 8 / 120)

    missed = metrics.region_metrics(full, empty, (1, 1, 1), empty_hd95=99.0)
    assert missed["dice"] == 0.0 and missed["hd95"] == 99.0
    assert missed["sensitivity"] == 0.0 and missed["specificity"] == 1.0
    assert missed["accuracy"] == pytest.approx(1 - 8 / 120)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        metrics.region_metrics(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)), (1, 1, 1))


def test_case_metrics_over_regions_and_label_conventions():
    ref = np.zeros((6, 8, 8), dtype=np.uint8)
    ref[1:5, 1:7, 1:7] = 2          # ED: 4*6*6 = 144 voxels
    ref[2:4, 2:6, 2:6] = 1          # NCR: 2*4*4 = 32
    ref[2:4, 3:5, 3:5] = 4          # ET (2017-2021 convention): 2*2*2 = 8
    pred = ref.copy()
    pred[pred == 4] = 3             # 2023 convention for ET: same regions
    pred[1, 1:7, 1:7] = 0           # drop one ED layer: 36 WT voxels missed
    result = metrics.case_metrics(ref, pred, (1.0, 1.0, 1.0))
    assert list(result) == ["ET", "TC", "WT"]
    assert result["ET"]["dice"] == 1.0 and result["TC"]["dice"] == 1.0
    wt_ref, wt_pred = 144, 144 - 36
    assert result["WT"]["dice"] == pytest.approx(2 * wt_pred / (wt_ref + wt_pred))
    assert result["WT"]["sensitivity"] == pytest.approx(wt_pred / wt_ref)
    assert result["WT"]["specificity"] == 1.0
    assert result["WT"]["hd95"] == pytest.approx(
        medpy_hd95(pred > 0, ref > 0, voxelspacing=(1.0, 1.0, 1.0)))


def _exact_two_sided_p(differences):
    """Exact signed-rank p-value by enumerating every sign pattern (no ties, no zeros)."""
    ranks = np.argsort(np.argsort(np.abs(differences))) + 1
    observed = ranks[np.asarray(differences) > 0].sum()
    signs = np.array(list(itertools.product([0, 1], repeat=len(ranks))))
    r_plus = signs @ ranks
    low = np.mean(r_plus <= observed)
    high = np.mean(r_plus >= observed)
    return min(1.0, 2 * min(low, high)), min(observed, ranks.sum() - observed)


def test_wilcoxon_known_example_and_bonferroni():
    # Darwin's paired plant heights (cross- minus self-fertilised), eighths of an inch.
    d = np.array([6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75], dtype=float)
    b = np.full(d.size, 100.0)
    a = b + d
    expected_p, expected_stat = _exact_two_sided_p(d)
    stat, p, p_corr = metrics.wilcoxon_bonferroni(a, b, n_comparisons=3)
    assert stat == pytest.approx(expected_stat) and expected_stat == 24   # ranks 10 + 14
    assert p == pytest.approx(expected_p, rel=1e-9)
    assert p_corr == pytest.approx(3 * expected_p, rel=1e-9)
    assert metrics.wilcoxon_bonferroni(a, b, n_comparisons=30)[2] == 1.0


def test_wilcoxon_all_equal_and_bad_input():
    assert metrics.wilcoxon_bonferroni([0.5, 0.7, 0.9], [0.5, 0.7, 0.9], 4) == (0.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        metrics.wilcoxon_bonferroni([1, 2], [1, 2, 3], 1)
    with pytest.raises(ValueError):
        metrics.wilcoxon_bonferroni([1, 2], [1, np.nan], 1)
    with pytest.raises(ValueError):
        metrics.wilcoxon_bonferroni([1, 2], [2, 3], 0)


def test_aggregate_and_format_table():
    case_a = {"WT": {"dice": 0.8, "hd95": 4.0}, "ET": {"dice": 0.5, "hd95": 10.0}}
    case_b = {"WT": {"dice": 0.6, "hd95": 6.0}, "ET": {"dice": 0.7, "hd95": 2.0}}
    summary = metrics.aggregate([case_a, case_b])
    np.testing.assert_allclose(summary["WT"]["dice"], [0.8, 0.6])
    lines = metrics.format_table(summary).splitlines()
    assert lines[0].split() == ["region", "dice", "hd95", "(mm)"]
    assert lines[2].split()[0] == "ET" and lines[3].split()[0] == "WT"   # region order
    # mean 0.7, sample std sqrt(0.02) = 0.1414 for WT Dice; HD95 5.00 +- 1.41 mm
    assert "0.7000 ± 0.1414" in lines[3] and "5.00 ± 1.41" in lines[3]
    single = metrics.format_table(case_a)
    assert "0.8000" in single and "4.00" in single and "±" not in single


def test_csv_rows_round_trip():
    per_case = {
        "case1": {"TC": {"dice": 0.9, "hd95": 3.0}, "ET": {"dice": 0.25, "hd95": 373.13}},
        "case2": {"ET": {"dice": 1.0, "hd95": 0.0}},
    }
    rows = metrics.to_csv_rows(per_case)
    assert [(r["case"], r["region"]) for r in rows] == [("case1", "ET"), ("case1", "TC"),
                                                       ("case2", "ET")]
    buffer = stdio.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=metrics.CSV_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    back = list(csv.DictReader(stdio.StringIO(buffer.getvalue())))
    assert float(back[0]["hd95"]) == 373.13 and float(back[1]["dice"]) == 0.9
