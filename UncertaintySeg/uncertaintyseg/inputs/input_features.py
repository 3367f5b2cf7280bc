"""What the content checks measure in a case: each volume on a coarse analysis grid,
its robust intensity scale, and the histogram-shape and layout features the modality
classifier reads.

Every check works on the ~2 mm analysis grid (a stride, no resampling): a BraTS case
then has ~1.4 M voxels per volume and every check runs in about a second. Intensities
are compared only after a robust z-score within the volume's own non-zero region
(median and inter-quartile range), so scanner units, a global scaling and most of a
bias field do not matter.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

ANALYSIS_MM = 2.0
# Quantiles of the robust z-scores that describe a histogram's shape (CSF, tumour
# and vessels live in the tails, white and grey matter around the middle).
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.75, 0.9, 0.95, 0.99, 0.999)
DEEP_MM = 20.0   # deeper than this below the brain surface: white matter, ventricles
SHELL_MM = 6.0   # shallower: cortex, sulcal CSF, dura
FEATURE_NAMES = tuple(
    [f"q{q * 100:g}" for q in QUANTILES]
    + ["skew", "deep_minus_shell", "deep_dark", "deep_bright", "shell_dark",
       "shell_bright", "deep_spread", "shell_spread"])


def strides(spacing) -> tuple[int, ...]:
    """Per-axis stride that brings `spacing` (mm) to about ANALYSIS_MM."""
    return tuple(max(1, int(round(ANALYSIS_MM / float(s)))) for s in spacing)


def analysis_grid(image: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """(C, Z, Y, X) volumes -> (their strided view as float32, its spacing in mm)."""
    step = strides(spacing)
    view = image[:, ::step[0], ::step[1], ::step[2]].astype(np.float32, copy=False)
    return view, np.asarray(spacing, dtype=float) * np.asarray(step)


def robust_z(volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(volume - median) / IQR over the mask; zero outside it."""
    values = volume[mask]
    if values.size == 0:
        return np.zeros_like(volume)
    low, median, high = np.percentile(values, (25, 50, 75))
    scale = max(float(high - low), 1e-6 * max(abs(float(median)), 1.0))
    return np.where(mask, (volume - median) / scale, 0.0).astype(np.float32)


def depth_mm(mask: np.ndarray, spacing) -> np.ndarray:
    """Distance (mm) of every mask voxel to the nearest voxel outside it."""
    padded = np.pad(mask, 1)
    depth = ndimage.distance_transform_edt(padded, sampling=spacing)
    return depth[1:-1, 1:-1, 1:-1]


def _shape_features(z: np.ndarray) -> list[float]:
    quantiles = np.quantile(z, QUANTILES)
    centred = np.clip(z, -10.0, 10.0)
    skew = float(np.mean((centred - centred.mean()) ** 3) / max(centred.std(), 1e-6) ** 3)
    return [*map(float, quantiles), skew]


def _spread(values: np.ndarray) -> float:
    return float(np.subtract(*np.percentile(values, (90, 10))))


def _layout_features(z: np.ndarray, depth: np.ndarray) -> list[float]:
    """How the deep brain compares with its surface: in T1 deep white matter is brighter
    than the cortex, in T2 the surface's CSF is brightest, in FLAIR CSF is dark."""
    deep, shell = z[depth > DEEP_MM], z[depth <= SHELL_MM]
    if deep.size < 50 or shell.size < 50:
        return [0.0] * 7
    return [float(np.median(deep) - np.median(shell)),
            float(np.mean(deep < -1.5)), float(np.mean(deep > 1.5)),
            float(np.mean(shell < -1.5)), float(np.mean(shell > 1.5)),
            _spread(deep), _spread(shell)]


def volume_features(volume: np.ndarray, spacing, depth=None) -> np.ndarray:
    """FEATURE_NAMES of one volume on the analysis grid (zero = outside the brain);
    `depth`: its depth_mm, when already computed."""
    mask = volume != 0
    z = robust_z(volume, mask)
    depth = depth_mm(mask, spacing) if depth is None else depth
    values = z[mask]
    return np.array(_shape_features(values) + _layout_features(z[mask], depth[mask]))
