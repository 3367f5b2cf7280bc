"""Table 1 (evaluation/table.py): means, sds and Bonferroni-corrected Wilcoxon p, and the
BraTS 2024+ reference maps with a resection cavity (label_maps)."""

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import stats

from uncertaintyseg.evaluation.table import table1, table1_markdown
from uncertaintyseg.files.io import InputError
from uncertaintyseg.files.label_maps import labels_to_regions, load_labels


def _scores(dice_by_method):
    """{method: [dice per case]} -> the table's nested input (all regions alike)."""
    return {m: {f"c{i}": {r: {"dice": d, "hd95": 2 * d} for r in ("ET", "TC", "WT")}
                for i, d in enumerate(values)} for m, values in dice_by_method.items()}


def test_table1_means_sds_and_corrected_p():
    rng = np.random.default_rng(0)
    fused = rng.uniform(0.8, 0.9, 8)
    worse = fused - rng.uniform(0.01, 0.05, 8)  # always worse: exact two-sided p = 2/256
    noisy = fused + rng.normal(0, 0.02, 8)
    scores = _scores({"fused": fused, "2D-only": worse, "other": noisy})
    rows = table1(scores, metrics=("dice",))
    wt = [r for r in rows if r["region"] == "WT"][0]
    assert wt["n"] == 8
    assert wt["fused mean"] == pytest.approx(fused.mean())
    assert wt["2D-only sd"] == pytest.approx(worse.std(ddof=1))
    assert wt["p fused vs 2D-only"] == pytest.approx(2 / 256)
    assert wt["p_bonferroni fused vs 2D-only"] == pytest.approx(2 * 2 / 256)  # 2 comparisons
    expected = stats.wilcoxon(fused, noisy).pvalue
    assert wt["p fused vs other"] == pytest.approx(expected)
    assert wt["significant fused vs 2D-only"] is True
    markdown = table1_markdown(scores, rows)
    assert "0.0156*" in markdown and "p multiplied by 2" in markdown


def test_table1_uses_only_cases_every_method_has():
    scores = _scores({"fused": [0.9, 0.8, 0.7], "b": [0.5, 0.6, 0.4]})
    del scores["b"]["c2"]
    rows = table1(scores, metrics=("dice",))
    assert rows[0]["n"] == 2
    assert rows[0]["fused mean"] == pytest.approx(0.85)


def _write_labels(path, array):
    sitk.WriteImage(sitk.GetImageFromArray(array.astype(np.uint8)), str(path))
    return path


def test_brats2024_cavity_is_in_no_region(tmp_path):
    labels = np.zeros((2, 3, 3), np.uint8)
    labels[0, 0, :] = [1, 2, 3]
    labels[1, 1, :] = 4  # resection cavity
    path = _write_labels(tmp_path / "seg.nii.gz", labels)
    with pytest.raises(InputError, match="both 3 and 4"):
        load_labels(path)
    array, convention = load_labels(path, allow_cavity=True)
    assert convention == "brats2024"
    regions = labels_to_regions(array, convention)
    assert regions[0].sum() == 1 and regions[1].sum() == 2 and regions[2].sum() == 3
    assert not regions[:, 1, 1, :].any()
    # the older conventions are unchanged: 4 is ET there
    assert labels_to_regions(labels)[0].sum() == 4
