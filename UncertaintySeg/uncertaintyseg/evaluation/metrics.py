"""Evaluation metrics (design section 6): Dice, HD95, voxel sensitivity, specificity,
accuracy per case and region, and the Wilcoxon signed-rank test with Bonferroni
correction between methods.

Masks are boolean arrays in SimpleITK order `(Z, Y, X)` (any dimension works, as long
as the spacing has one entry per axis); spacings are `(sz, sy, sx)` in mm.

HD95 follows `medpy.metric.binary.hd95` exactly (medpy is the test oracle, not a
runtime dependency): the border of a mask is the mask minus its erosion by the
6-neighbourhood (voxels on the array edge count as border); the surface distances are
the Euclidean distances (mm) from every border voxel of one mask to the nearest border
voxel of the other, in both directions; HD95 is the linear-interpolated 95th
percentile of the pooled distances.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage, stats

from uncertaintyseg import REGIONS
from uncertaintyseg.files.label_maps import labels_to_regions

METRIC_NAMES = ("dice", "hd95", "sensitivity", "specificity", "accuracy")
CSV_FIELDS = ("case", "region") + METRIC_NAMES
DEFAULT_EMPTY_HD95 = 373.13  # mm: the BraTS convention for "one mask is empty"


def _as_bool_pair(ref, pred) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref) != 0
    pred = np.asarray(pred) != 0
    if ref.shape != pred.shape:
        raise ValueError(
            f"reference {ref.shape} and prediction {pred.shape} differ in shape: "
            "resample the prediction onto the reference grid first"
        )
    return ref, pred


def _union_box(a: np.ndarray, b: np.ndarray) -> tuple[slice, ...]:
    """Tight bounding box of `a | b` (at least one of them non-empty)."""
    union = a | b
    box = []
    for axis in range(union.ndim):
        other = tuple(i for i in range(union.ndim) if i != axis)
        hits = np.flatnonzero(union.any(axis=other))
        box.append(slice(hits[0], hits[-1] + 1))
    return tuple(box)


def _border(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    # border_value=0 (the default) makes voxels on the array edge border voxels, as in
    # medpy. Outside the union's bounding box both masks are all zero, so eroding the
    # tight crop with a zero border gives exactly the border of the whole volume.
    return mask & ~ndimage.binary_erosion(mask, structure=structure)


def surface_distances(ref, pred, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Pooled border-to-border distances (mm) of two non-empty masks, both directions.

    Returns a 1-D float64 array: first the distances of the prediction's border voxels
    to the reference border, then those of the reference's border voxels to the
    prediction border. Raises ValueError when either mask is empty.
    """
    ref, pred = _as_bool_pair(ref, pred)
    if len(spacing_zyx) != ref.ndim:
        raise ValueError(f"spacing {tuple(spacing_zyx)} needs one entry per axis of {ref.shape}")
    if not ref.any() or not pred.any():
        raise ValueError("surface distances need two non-empty masks")
    # Every border voxel lies inside the union's bounding box, so the exact EDT of the
    # crop equals the EDT of the whole volume at those voxels: same result, less work.
    box = _union_box(ref, pred)
    ref, pred = ref[box], pred[box]
    structure = ndimage.generate_binary_structure(ref.ndim, 1)
    ref_border, pred_border = _border(ref, structure), _border(pred, structure)
    sampling = np.asarray(spacing_zyx, dtype=np.float64)
    to_ref = ndimage.distance_transform_edt(~ref_border, sampling=sampling)
    to_pred = ndimage.distance_transform_edt(~pred_border, sampling=sampling)
    return np.concatenate([to_ref[pred_border], to_pred[ref_border]])


def hd95(ref, pred, spacing_zyx: Sequence[float], empty_hd95: float = DEFAULT_EMPTY_HD95) -> float:
    """95th percentile Hausdorff distance in mm (medpy's definition, see module doc).

    Both masks empty -> 0.0; exactly one empty -> `empty_hd95`.
    """
    ref, pred = _as_bool_pair(ref, pred)
    has_ref, has_pred = bool(ref.any()), bool(pred.any())
    if not has_ref and not has_pred:
        return 0.0
    if has_ref != has_pred:
        return float(empty_hd95)
    return float(np.percentile(surface_distances(ref, pred, spacing_zyx), 95))


def dice(ref, pred) -> float:
    """Dice overlap `2|A & B| / (|A| + |B|)`; 1.0 when both masks are empty."""
    ref, pred = _as_bool_pair(ref, pred)
    total = int(ref.sum()) + int(pred.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(ref & pred)) / total


def confusion_counts(ref, pred, mask=None) -> tuple[int, int, int, int]:
    """Voxel counts (tp, fp, tn, fn), over `mask` (bool, same shape) when given."""
    ref, pred = _as_bool_pair(ref, pred)
    if mask is None:
        mask = np.ones(ref.shape, dtype=bool)
    else:
        mask = np.asarray(mask) != 0
        if mask.shape != ref.shape:
            raise ValueError(f"mask {mask.shape} and masks {ref.shape} differ in shape")
    tp = int(np.count_nonzero(ref & pred & mask))
    fp = int(np.count_nonzero(~ref & pred & mask))
    fn = int(np.count_nonzero(ref & ~pred & mask))
    tn = int(np.count_nonzero(mask)) - tp - fp - fn
    return tp, fp, tn, fn


def _rates(tp: int, fp: int, tn: int, fn: int) -> dict[str, float]:
    # Empty reference: there is nothing to detect, so the only error left is a false
    # positive; we score 1.0 when the prediction is empty too and 0.0 otherwise, which
    # mirrors the Dice rule and keeps per-region means finite (no NaN to skip).
    sensitivity = tp / (tp + fn) if tp + fn else (1.0 if fp == 0 else 0.0)
    # No negative voxels (the reference fills the voxel set): no false positive is
    # possible, so specificity is 1.0 by the same reasoning.
    specificity = tn / (tn + fp) if tn + fp else 1.0
    total = tp + fp + tn + fn
    accuracy = (tp + tn) / total if total else 1.0
    return {"sensitivity": sensitivity, "specificity": specificity, "accuracy": accuracy}


def region_metrics(ref, pred, spacing_zyx: Sequence[float],
                   empty_hd95: float = DEFAULT_EMPTY_HD95, mask=None) -> dict[str, float]:
    """Metrics of one binary region.

    ref, pred: bool (Z, Y, X); spacing_zyx: (sz, sy, sx) mm; mask: optional bool
    (Z, Y, X) voxel set (e.g. the brain mask) for sensitivity, specificity and accuracy,
    which are voxel-wise over the whole volume when it is None. Dice and HD95 always
    use the whole masks.

    Returns {"dice", "hd95" (mm), "sensitivity", "specificity", "accuracy"}.
    Empty rules: both masks empty -> dice 1, hd95 0; one empty -> dice 0,
    hd95 `empty_hd95`. Sensitivity with an empty reference (within the voxel set) is
    1.0 if the prediction is empty there too, else 0.0 (a false positive is the only
    possible error). Specificity without negative voxels is 1.0.
    """
    ref, pred = _as_bool_pair(ref, pred)
    result = {"dice": dice(ref, pred), "hd95": hd95(ref, pred, spacing_zyx, empty_hd95)}
    result.update(_rates(*confusion_counts(ref, pred, mask)))
    return result


def case_metrics(ref_labels, pred_labels, spacing_zyx: Sequence[float],
                 **kwargs) -> dict[str, dict[str, float]]:
    """`region_metrics` of ET, TC and WT of two label maps (Z, Y, X) of any convention
    (ET = label 3 or 4). Keyword arguments (`empty_hd95`, `mask`) pass through.
    Returns {region: metrics} in REGIONS order."""
    ref_regions = labels_to_regions(np.asarray(ref_labels))
    pred_regions = labels_to_regions(np.asarray(pred_labels))
    return {
        region: region_metrics(ref_regions[i], pred_regions[i], spacing_zyx, **kwargs)
        for i, region in enumerate(REGIONS)
    }


def wilcoxon_bonferroni(a, b, n_comparisons: int) -> tuple[float, float, float]:
    """Two-sided Wilcoxon signed-rank test of paired samples a, b (1-D, same length),
    Bonferroni-corrected for `n_comparisons` tests.

    Returns (statistic, p, p_corrected) with p_corrected = min(1, p * n_comparisons).
    All pairs equal -> (0.0, 1.0, 1.0): no evidence of a difference (scipy would
    divide by a zero variance there).
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired samples need equal, non-zero lengths: {a.size} and {b.size}")
    if not np.all(np.isfinite(a)) or not np.all(np.isfinite(b)):
        raise ValueError("paired samples contain NaN or inf: drop those cases from both methods")
    if int(n_comparisons) < 1:
        raise ValueError(f"n_comparisons must be at least 1, got {n_comparisons}")
    if np.all(a == b):
        return 0.0, 1.0, 1.0
    result = stats.wilcoxon(a, b, alternative="two-sided")
    p = float(result.pvalue)
    return float(result.statistic), p, min(1.0, p * int(n_comparisons))


def aggregate(per_case: Iterable[Mapping[str, Mapping[str, float]]]
              ) -> dict[str, dict[str, np.ndarray]]:
    """Collect per-case `case_metrics` results into {region: {metric: 1-D array over
    cases}}, the input `format_table` summarises as mean +- std."""
    collected: dict[str, dict[str, list[float]]] = {}
    for case in per_case:
        for region, values in case.items():
            for name, value in values.items():
                collected.setdefault(region, {}).setdefault(name, []).append(float(value))
    return {region: {name: np.asarray(v) for name, v in metrics.items()}
            for region, metrics in collected.items()}


def _ordered_regions(regions: Iterable[str]) -> list[str]:
    regions = list(regions)
    return [r for r in REGIONS if r in regions] + [r for r in regions if r not in REGIONS]


def _format_cell(name: str, value) -> str:
    digits = 2 if name == "hd95" else 4  # mm to 0.01 mm; ratios to 4 decimals
    values = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if np.ndim(value) == 0:
        return f"{values[0]:.{digits}f}"
    std = values.std(ddof=1) if values.size > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {std:.{digits}f}"


def format_table(metrics_by_region: Mapping[str, Mapping[str, object]]) -> str:
    """Plain-text table, one row per region (ET, TC, WT first), one column per metric.

    Values may be scalars (one case: printed as is) or sequences over cases (printed
    as mean ± sample std). HD95 is in mm."""
    regions = _ordered_regions(metrics_by_region)
    names = [m for m in METRIC_NAMES if any(m in metrics_by_region[r] for r in regions)]
    names += sorted({m for r in regions for m in metrics_by_region[r]} - set(names))
    header = ["region"] + [f"{n} (mm)" if n == "hd95" else n for n in names]
    rows = [[r] + [_format_cell(n, metrics_by_region[r][n]) if n in metrics_by_region[r] else "-"
                   for n in names] for r in regions]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_csv_rows(per_case: Mapping[str, Mapping[str, Mapping[str, float]]]
                ) -> list[dict[str, object]]:
    """Rows for `csv.DictWriter(f, fieldnames=CSV_FIELDS)`: one per case and region.

    per_case: {case_id: case_metrics(...)}; cases keep their order, regions go
    ET, TC, WT. Metric values are floats (HD95 in mm)."""
    rows = []
    for case_id, regions in per_case.items():
        for region in _ordered_regions(regions):
            row: dict[str, object] = {"case": case_id, "region": region}
            row.update({name: float(regions[region][name]) for name in METRIC_NAMES
                        if name in regions[region]})
            rows.append(row)
    return rows
