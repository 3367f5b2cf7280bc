"""Measures of a case's anatomy on the analysis grid (input_features): do the four
volumes show one patient, aligned, with contrast enhancement and no rim of non-brain
tissue? Each returns numbers; input_checks compares them with the thresholds measured
on the shared BraTS 2018 cases (docs/INPUT-CHECKS.md) and words the findings.
"""
from __future__ import annotations

import itertools

import numpy as np

from .. import MODALITIES
from .input_features import depth_mm

SHELL_MM = 3.0       # the outer shell of a mask, where a skull-strip rim would be
INTERIOR_MM = 10.0   # the interior it is compared with
SHIFTS_MM = tuple(range(-12, 13, 2))  # the alignment search, per axis


def covered_overlap(masks: np.ndarray) -> float:
    """Intersection over union of the masks on the slices that every volume covers:
    a volume covering fewer slices is partial coverage, not misregistration."""
    covered = masks.any(axis=(2, 3)).all(axis=0)
    if not covered.any():
        return 0.0
    inside = masks[:, covered]
    return float(inside.all(axis=0).sum()) / float(max(inside.any(axis=0).sum(), 1))


def odd_one(masks: np.ndarray) -> int:
    """The volume whose mask overlaps the others' least (mean over the pairs)."""
    count = len(masks)
    table = np.ones((count, count))
    for i, j in itertools.combinations(range(count), 2):
        table[i, j] = table[j, i] = covered_overlap(masks[[i, j]])
    return int(np.argmin(table.sum(axis=1)))


def _moved(volume: np.ndarray, shift) -> np.ndarray:
    for axis, voxels in enumerate(shift):
        if voxels:  # a wrapped slab is outside the brain: volumes have a zero margin
            volume = np.roll(volume, voxels, axis=axis)
    return volume


def best_shift(masks: np.ndarray, index: int, spacing):
    """(overlap, shift in mm (z, y, x)) of mask `index` moved onto the others' common
    mask, over shifts up to 12 mm along each axis in turn (coordinate ascent): a
    volume that is only misaligned overlaps again once moved back."""
    others = np.delete(masks, index, axis=0).all(axis=0)
    shift = [0, 0, 0]
    best = covered_overlap(np.stack([masks[index], others]))
    for axis in range(3):
        for mm in SHIFTS_MM:
            trial = list(shift)
            trial[axis] = int(round(mm / spacing[axis]))
            value = covered_overlap(np.stack([_moved(masks[index], trial), others]))
            if value > best:
                best, shift = value, trial
    return best, tuple(float(v * s) for v, s in zip(shift, spacing))


def enhancement(view: np.ndarray) -> float:
    """The 99.9th percentile of T1ce minus T1, each divided by its brain median, over the
    voxels both cover: vessels, choroid plexus, dura and an enhancing tumour make it
    large; a T1ce without contrast agent (or a copy of the T1) leaves it near zero."""
    t1, t1ce = view[MODALITIES.index("t1")], view[MODALITIES.index("t1ce")]
    both = (t1 != 0) & (t1ce != 0)
    if both.sum() < 100:
        return float("inf")  # nothing to compare: no finding
    difference = t1ce[both] / np.median(t1ce[both]) - t1[both] / np.median(t1[both])
    return float(np.percentile(difference, 99.9))


def rim_fraction(volume: np.ndarray, spacing, depth=None) -> float:
    """Share of the mask's outer SHELL_MM brighter than the 99th percentile of its
    interior: a bright shell left by an incomplete skull strip. `depth`: the mask's
    depth_mm, when already computed."""
    mask = volume != 0
    depth = depth_mm(mask, spacing) if depth is None else depth
    shell, interior = volume[mask & (depth <= SHELL_MM)], volume[depth > INTERIOR_MM]
    if shell.size < 50 or interior.size < 50:
        return 0.0
    return float(np.mean(shell > np.percentile(interior, 99)))
