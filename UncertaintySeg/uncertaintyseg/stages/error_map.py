"""`--uncertainty-map error-probability`: a per-voxel probability that the label is wrong.

Per region, from two maps the pipeline already has (no second network pass):

    score = 1 / (1 + d) + lambda * H(P2D)     probability = sigmoid(a * score + b)

d: the distance in mm to the border of the predicted (post-processed) region
(`border_distance`, here because evaluate's border baseline, a floor above, uses it too;
no border: the nearness term is 0);
H(P2D): the mean-entropy map (`uncertainty.mean_entropy`). Nearness to the border is
the strongest error detector measured (docs/EVALUATION.md, the border baseline); the
entropy breaks its many ties (every voxel one voxel from the border shares d) and ranks
the voxels beyond the border. lambda is the value of `LAMBDAS` with the best mean AUROC
over the model's validation cases; a and b (Platt scaling) make the score a calibrated
probability without changing its ranking. `tools/fit_error_map.py` fits them from
`predict --outputs all` results and stores them in model.json under `ERROR_MAP_KEY`;
a model without that block falls back to `FALLBACK_MAP` (the report says so).
Fitting a logistic regression on more features (both entropies, P3D - P2D, log distance,
inside/outside) ranked worse than the border baseline on TC and WT leave-one-case-out
(DECISIONS #24).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from scipy.special import expit

from .. import REGIONS
from .uncertainty import mean_entropy

ERROR_MAP_KEY = "error_map"
ERROR_MAP = "error-probability"
FALLBACK_MAP = "mean-entropy"
FEATURES = ("border_nearness = 1 / (1 + mm to the predicted border)",
            "mean_entropy = H(P2D) / ln 2")
LAMBDAS = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0)



def border_distance(region: np.ndarray, spacing, within: np.ndarray) -> np.ndarray | None:
    """d on the voxels of `within` (bool, like `region`, (Z, Y, X)): the distance in mm
    (`spacing` z, y, x) from a voxel to the nearest voxel on the other side of the
    predicted `region`'s border (1 voxel's spacing next to it). None when `region` is
    empty or fills the grid (it has no border)."""
    region = np.asarray(region, bool)
    if not region.any() or region.all():
        return None
    # The distances are taken in the box of the scored voxels and the region, one voxel
    # wider: the full grid would cost the same transforms on mostly empty air.
    where = np.argwhere(within | region)
    low = np.maximum(where.min(axis=0) - 1, 0)
    high = np.minimum(where.max(axis=0) + 2, region.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    inside = region[box]
    distance = np.where(inside, ndimage.distance_transform_edt(inside, sampling=spacing),
                        ndimage.distance_transform_edt(~inside, sampling=spacing))
    return distance[within[box]]

def check_fit(block, source: str = "model.json") -> dict:
    """The `ERROR_MAP_KEY` block with every region's lambda, a, b as floats; ValueError
    naming `source` and the fix when one is missing or not finite."""
    try:
        regions = {r: {k: float(block["regions"][r][k]) for k in ("lambda", "a", "b")}
                   for r in REGIONS}
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{source}: {ERROR_MAP_KEY} lacks {err}; re-run "
                         "tools/fit_error_map.py on the model's validation results") from None
    if not all(np.isfinite(v) for row in regions.values() for v in row.values()):
        raise ValueError(f"{source}: {ERROR_MAP_KEY} has a value that is not finite; re-run "
                         "tools/fit_error_map.py")
    return regions


def nearness(region: np.ndarray, spacing, within: np.ndarray) -> np.ndarray:
    """1 / (1 + d) on the voxels of `within`; 0 when the region has no border."""
    distance = border_distance(region, spacing, within)
    if distance is None:
        return np.zeros(int(np.count_nonzero(within)), np.float64)
    return 1.0 / (1.0 + distance)


def entropy(p2d: np.ndarray) -> np.ndarray:
    """The mean-entropy map of P2D values (any shape), float64, in [0, 1]."""
    return mean_entropy(torch.from_numpy(np.asarray(p2d, np.float32))).numpy().astype(np.float64)


def score(near: np.ndarray, h: np.ndarray, lam: float) -> np.ndarray:
    return near + lam * h


def error_probability(regions_fit: dict, p2d: np.ndarray, regions: np.ndarray, spacing,
                      brain: np.ndarray) -> np.ndarray:
    """(3, Z, Y, X) float32 in [0, 1]: the probability that the predicted label of each
    region is wrong, over `brain` (0 outside it). `regions_fit`: `check_fit`'s result;
    p2d (3, Z, Y, X) in [0, 1]; regions bool (3, Z, Y, X), the predicted regions."""
    out = np.zeros(p2d.shape, np.float32)
    for i, region in enumerate(REGIONS):
        fit = regions_fit[region]
        s = score(nearness(regions[i], spacing, brain), entropy(p2d[i][brain]), fit["lambda"])
        out[i][brain] = expit(fit["a"] * s + fit["b"])
    return out
