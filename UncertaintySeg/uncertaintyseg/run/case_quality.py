"""Case-level quality signals (issue 17): what a failed result looks like, measured from
what `predict` already holds in memory at the end of a run (no extra network pass).

The old triage score (pipeline.triage) is the mean entropy over the dilated *predicted*
tumour: it cannot see a tumour the model missed, nor inputs unlike its training data.
These signals look beyond it: (a) disagreement between independent predictions (the 2D
projections vs the 3D refinement) and uncertainty over the whole brain; (b) plausibility
of the result (volumes, nesting, fragments, location); (c) the input checks' findings a
--force run went past; (d) the case's distance from the training data in the 2D
network's features (feature_distance, computed by the pipeline on the working grid). Each is a small function of arrays; `SIGNAL_UNITS` gives units.
quality_model turns them into an estimated Dice, a flag and reasons.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .. import REGIONS

ET, TC, WT = (REGIONS.index(r) for r in ("ET", "TC", "WT"))
UNCERTAIN = 0.5         # normalised entropy above which a voxel counts as uncertain
BORDER_VOXELS = 2       # the brain mask's outer shell (voxels) that "at the border" means

SIGNAL_UNITS = {
    "disagreement_2d3d": "share of the predicted WT in the refined cubes where the 2D "
                         "and 3D predictions differ (0-1; None without cubes)",
    "brain_uncertainty": "mean max-over-regions normalised entropy over the brain (0-1)",
    "uncertain_ratio": "U / (U + T), U the brain voxels with entropy > 0.5, T the "
                       "predicted WT voxels (0-1; 0.5 when as many uncertain as tumour)",
    "volume_ml": "predicted WT, TC and ET volumes (ml)",
    "volume_deviation": "largest |log| factor by which a region's volume lies outside "
                        "the training labels' range (0 inside; natural log)",
    "nesting_violation": "share of predicted ET outside TC plus TC outside WT, before "
                         "the nesting is enforced (0-1)",
    "wt_components": "26-connected WT components before post-processing (count)",
    "fragment_share": "share of the WT volume outside its largest component (0-1)",
    "outside_brain": "share of the predicted WT outside the brain mask (0-1)",
    "at_border": "share of the predicted WT in the brain mask's outer 2 voxels (0-1)",
    "input_findings": "input-check findings a --force run went past (count)",
    "feature_distance": "median Mahalanobis distance of the 2D network's bottleneck "
                        "features of 8 slices from the training cases', over a typical "
                        "training case's (1 typical; None: the model has no fit)",
}


def brain_mask(image: np.ndarray) -> np.ndarray:
    """(Z, Y, X) bool: voxels non-zero in any modality of (4, Z, Y, X) skull-stripped MRI."""
    return np.any(image != 0, axis=0)


def disagreement_2d3d(p2d: np.ndarray | None, p3d: np.ndarray | None) -> float | None:
    """Share (0-1) of the voxels that the 2D or the 3D network calls WT, inside the
    refined cubes (P3D >= 0; -1 elsewhere), where the two disagree. None when there is
    no cube or no tumour in them (nothing to compare)."""
    if p2d is None or p3d is None:
        return None
    inside = p3d[WT] >= 0
    if not inside.any():
        return None
    a, b = p2d[WT][inside] > 0.5, p3d[WT][inside] > 0.5
    union = int(np.count_nonzero(a | b))
    return None if union == 0 else float(np.count_nonzero(a ^ b) / union)


def brain_uncertainty(uncertainty: np.ndarray, brain: np.ndarray) -> float:
    """Mean over the brain of the max-over-regions normalised entropy (0-1)."""
    if not brain.any():
        return 0.0
    return float(uncertainty.max(axis=0)[brain].mean())


def uncertain_ratio(uncertainty: np.ndarray, brain: np.ndarray, wt: np.ndarray) -> float:
    """U / (U + T): U the brain voxels with normalised entropy > 0.5, T the predicted WT
    voxels. A model unsure far from the tumour it draws (a missed tumour, an unfamiliar
    input) scores near 1; bounded (unlike U / T) so that a linear model can use it.
    0 when there is neither."""
    uncertain = int(np.count_nonzero((uncertainty.max(axis=0) > UNCERTAIN) & brain))
    total = uncertain + int(np.count_nonzero(wt))
    return 0.0 if total == 0 else float(uncertain / total)


def volumes_ml(regions: np.ndarray, spacing_zyx) -> dict[str, float]:
    """{region: ml} of (3, Z, Y, X) bool regions on a grid of `spacing_zyx` mm."""
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    return {r: round(float(np.count_nonzero(regions[i])) * voxel_ml, 3)
            for i, r in enumerate(REGIONS)}


def volume_deviation(volumes: dict[str, float], ranges: dict) -> tuple[float, str | None]:
    """(largest natural-log factor outside its range, that region): 0 when every volume
    is inside `ranges` ({region: [low_ml, high_ml]}, the training labels'); a region
    below its range by half scores log 2 = 0.69. An empty region scores as 0.1 ml."""
    worst, region = 0.0, None
    for name, (low, high) in ranges.items():
        value = max(float(volumes.get(name, 0.0)), 0.1)
        excess = max(math.log(low / value) if low > 0 else 0.0, math.log(value / high))
        if excess > worst:
            worst, region = excess, name
    return round(worst, 4), region


def nesting_violation(regions: np.ndarray) -> float:
    """(ET outside TC + TC outside WT) / (ET + TC) voxels, on regions before nesting is
    enforced: the networks predict each region apart, and a result whose regions do not
    nest was not understood by them."""
    et, tc, wt = regions[ET], regions[TC], regions[WT]
    total = int(np.count_nonzero(et)) + int(np.count_nonzero(tc))
    if total == 0:
        return 0.0
    bad = np.count_nonzero(et & ~tc) + np.count_nonzero(tc & ~wt)
    return float(bad / total)


def fragments(wt: np.ndarray) -> tuple[int, float]:
    """(26-connected component count, share of the volume outside the largest) of the WT
    before post-processing removes the small ones."""
    structure = ndimage.generate_binary_structure(3, 3)
    labels, count = ndimage.label(wt, structure=structure)
    if count == 0:
        return 0, 0.0
    sizes = np.bincount(labels.ravel())[1:]
    return int(count), float(1.0 - sizes.max() / sizes.sum())


def location(wt: np.ndarray, brain: np.ndarray) -> tuple[float, float]:
    """(share of WT outside the brain mask, share in the mask's outer BORDER_VOXELS):
    a tumour drawn on the skull-strip rim or outside the head is not a tumour."""
    total = int(np.count_nonzero(wt))
    if total == 0:
        return 0.0, 0.0
    inner = ndimage.binary_erosion(brain, iterations=BORDER_VOXELS)
    outside = np.count_nonzero(wt & ~brain) / total
    border = np.count_nonzero(wt & brain & ~inner) / total
    return float(outside), float(border)


def compute_signals(image, spacing_zyx, probabilities, uncertainty, *, p2d=None, p3d=None,
                    findings=(), ranges=None, feature_distance=None) -> dict:
    """Every signal of one run, by name (SIGNAL_UNITS), rounded for report.json.

    `image` (4, Z, Y, X) input; `probabilities`, `uncertainty`, `p2d`, `p3d` (3, Z, Y,
    X) on the same grid (p2d/p3d None when the run kept none); `findings` the input
    checks' findings of a --force run; `ranges` {region: [low, high]} ml of the
    training labels (model.json quality.volume_ranges_ml; no deviation without);
    `feature_distance` the run's feature_distance.for_run, recorded as it is."""
    brain = brain_mask(image)
    regions = probabilities > 0.5
    wt = regions[WT]
    volumes = volumes_ml(regions, spacing_zyx)
    deviation, region = volume_deviation(volumes, ranges or {})
    count, share = fragments(wt)
    outside, border = location(wt, brain)
    disagreement = disagreement_2d3d(p2d, p3d)
    signals = {
        "disagreement_2d3d": None if disagreement is None else round(disagreement, 4),
        "brain_uncertainty": round(brain_uncertainty(uncertainty, brain), 4),
        "uncertain_ratio": round(uncertain_ratio(uncertainty, brain, wt), 4),
        "volume_ml": volumes, "volume_deviation": deviation,
        "volume_deviation_region": region,
        "nesting_violation": round(nesting_violation(regions), 4),
        "wt_components": count, "fragment_share": round(share, 4),
        "outside_brain": round(outside, 4), "at_border": round(border, 4),
        "input_findings": len(findings), "feature_distance": feature_distance,
    }
    return signals
