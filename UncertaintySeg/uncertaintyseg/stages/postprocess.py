"""Post-processing (design 4.6): nesting of the regions, small-component removal.

Regions are boolean `(3, ...)` arrays in REGIONS order (ET, TC, WT); ET lies inside TC
inside WT. Neither function modifies its input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from uncertaintyseg import REGIONS
from uncertaintyseg.evaluation.metrics import dice

ET, TC, WT = (REGIONS.index(r) for r in ("ET", "TC", "WT"))
DEFAULT_COMPONENT_FRACTION = 0.1  # design 4.6; a model.json may choose another


def _check(regions: np.ndarray) -> np.ndarray:
    regions = np.asarray(regions)
    if regions.ndim < 2 or regions.shape[0] != len(REGIONS):
        raise ValueError(f"regions must be (3, ...) in {REGIONS} order, "
                         f"got shape {regions.shape}")
    return regions.astype(bool)


def nest(regions: np.ndarray) -> np.ndarray:
    """Enforce ET inside TC inside WT: ET &= TC & WT, TC &= WT; WT unchanged."""
    out = _check(regions).copy()
    out[TC] &= out[WT]
    out[ET] &= out[TC]
    return out


def remove_small_components(regions: np.ndarray,
                            fraction: float = DEFAULT_COMPONENT_FRACTION) -> np.ndarray:
    """Drop WT components smaller than `fraction` x the largest one; mask TC and ET.

    Components are 26-connected in 3D (full connectivity in any dimension: voxels that
    touch by a corner belong together). A component is kept when its voxel count is at
    least fraction x the largest count; TC and ET are then cut to the remaining WT.
    """
    out = _check(regions).copy()
    if fraction < 0:
        raise ValueError(f"fraction {fraction} must be >= 0")
    wt = out[WT]
    structure = ndimage.generate_binary_structure(wt.ndim, wt.ndim)
    labels, n = ndimage.label(wt, structure=structure)
    if n > 0:
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        sizes[0] = 0  # background
        keep = sizes >= fraction * sizes.max()
        keep[0] = False
        out[WT] = keep[labels]
    out[TC] &= out[WT]
    out[ET] &= out[WT]
    return out


# Candidate WT component fractions tried by the training chain: the default (0.1), two
# stricter ones, and 1.0 = keep only the largest whole-tumour component.
COMPONENT_FRACTIONS = (DEFAULT_COMPONENT_FRACTION, 0.25, 0.5, 1.0)


def choose_component_fraction(cases: Sequence[tuple[np.ndarray, np.ndarray]],
                              candidates: Sequence[float] = COMPONENT_FRACTIONS
                              ) -> tuple[float, dict[float, list[float]]]:
    """The WT component fraction for a model, chosen on (probabilities, reference) pairs.

    Each case is (probabilities (3, ...) float, reference regions (3, ...) bool), REGIONS
    order. Every candidate is scored by the Dice per region of
    `remove_small_components(nest(p > 0.5), fraction)`, averaged over the cases. The
    choice is the largest fraction whose mean Dice over the three regions is not below
    the best one's: like nnU-Net's `determine_postprocessing` (keep the largest
    component when it helps), except that ties go to the stricter filter, because on
    training cases the networks rarely produce stray components at all, so "no worse"
    is the usual outcome there (docs/DECISIONS.md #13).
    Returns (fraction, {fraction: [Dice ET, TC, WT]}).
    """
    if not cases:
        raise ValueError("choose_component_fraction needs at least one case")
    table = {}
    for fraction in sorted(candidates):
        scores = []
        for probabilities, reference in cases:
            kept = remove_small_components(nest(np.asarray(probabilities) > 0.5), fraction)
            scores.append([dice(reference[r], kept[r]) for r in range(len(REGIONS))])
        table[float(fraction)] = np.mean(scores, axis=0).tolist()
    best = max(np.mean(v) for v in table.values())
    chosen = max(f for f, v in table.items() if np.mean(v) >= best - 1e-9)
    return chosen, table
