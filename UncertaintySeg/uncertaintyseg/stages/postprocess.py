"""Post-processing (design 4.6): nesting of the regions, small-component removal.

Regions are boolean `(3, ...)` arrays in REGIONS order (ET, TC, WT); ET lies inside TC
inside WT. Neither function modifies its input.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from uncertaintyseg import REGIONS

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
