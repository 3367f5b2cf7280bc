"""Fusion of the 2D and 3D predictions (design 4.5) and its PSO fit.

Where at least one cube of region r covers a voxel (P3D >= 0):
`p = sigmoid(w2d * P2D + w3d * P3D + b)`; elsewhere `p = P2D`. The weights (w2d, w3d, b)
per region maximise the mean Dice of `p > 0.5` over training cases, found by pyswarms'
GlobalBestPSO with w in [0, w_max] and b in b_range.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from uncertaintyseg import REGIONS

Progress = Callable[[str, int, int, str], None]

# Constriction coefficients of Clerc and Kennedy (2002), a standard stable PSO setting.
PSO_OPTIONS = {"c1": 1.49618, "c2": 1.49618, "w": 0.7298}
# Covered voxels are scored in chunks so that (particles x chunk) float32 stays small.
_CHUNK = 1 << 18


def fuse(p2d: np.ndarray, p3d: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Fused probabilities (3, ...) float32.

    `p2d` and `p3d` are (3, ...) in REGIONS order, `p3d` is -1 where no cube of that
    region covers the voxel; `weights` (3, 3), rows ET, TC, WT = [w2d, w3d, b].
    """
    weights = np.asarray(weights, dtype=np.float32)
    if p2d.shape != p3d.shape or p2d.shape[0] != len(REGIONS):
        raise ValueError(f"p2d {p2d.shape} and p3d {p3d.shape} must both be (3, ...)")
    if weights.shape != (len(REGIONS), 3):
        raise ValueError(f"fusion weights must be (3, 3) [w2d, w3d, b] per region, "
                         f"got shape {weights.shape}")
    fused = np.array(p2d, dtype=np.float32)
    for r, (w2d, w3d, b) in enumerate(weights):
        covered = p3d[r] >= 0
        z = w2d * fused[r][covered] + w3d * p3d[r][covered].astype(np.float32) + b
        fused[r][covered] = expit(z)
    return fused


def normalized_weights(w: np.ndarray) -> tuple:
    """(w2d / (w2d + w3d), w3d / (w2d + w3d)), the form of the paper's Table 2.

    `w` is one row [w2d, w3d, b] (floats back) or (3, 3) (arrays of 3 back). Where both
    weights are 0 neither model is favoured: 0.5 each.
    """
    w = np.asarray(w, dtype=np.float64)
    total = w[..., 0] + w[..., 1]
    safe = np.where(total > 0, total, 1.0)
    w2d = np.where(total > 0, w[..., 0] / safe, 0.5)
    w3d = np.where(total > 0, w[..., 1] / safe, 0.5)
    if w.ndim == 1:
        return float(w2d), float(w3d)
    return w2d, w3d


@dataclass
class _CaseTerms:
    """One case of one region, reduced to what the Dice of a weight vector needs."""

    pos: np.ndarray      # (2, n) float32: P2D, P3D at covered voxels inside the reference
    neg: np.ndarray      # (2, m) float32: the same outside the reference
    fixed_inter: int     # uncovered voxels predicted (P2D > 0.5) and in the reference
    fixed_pred: int      # uncovered voxels predicted
    ref_total: int       # reference voxels, covered or not


def _prepare(cases: Sequence[tuple]) -> list[_CaseTerms]:
    """Split every case into covered voxels (kept) and uncovered ones (counted once)."""
    terms = []
    for i, (p2d, p3d, ref) in enumerate(cases):
        p2d, p3d, ref = (np.asarray(a) for a in (p2d, p3d, ref))
        if not p2d.shape == p3d.shape == ref.shape:
            raise ValueError(f"fusion case {i}: p2d {p2d.shape}, p3d {p3d.shape} and "
                             f"reference {ref.shape} must have one shape")
        ref = ref.astype(bool)
        covered = p3d >= 0
        fixed_pred = (p2d > 0.5) & ~covered
        pair = np.stack([p2d, p3d]).astype(np.float32)
        terms.append(_CaseTerms(pos=pair[:, covered & ref], neg=pair[:, covered & ~ref],
                                fixed_inter=int(np.count_nonzero(fixed_pred & ref)),
                                fixed_pred=int(np.count_nonzero(fixed_pred)),
                                ref_total=int(np.count_nonzero(ref))))
    return terms


def _count_predicted(weights: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """(P,) voxels of `pair` (2, n) with fused p > 0.5, for weights (P, 3) float32.

    sigmoid(z) > 0.5 is tested as z > 0 (sigmoid is monotone, sigmoid(0) = 0.5), with z
    computed in float32 in fuse's order; the two differ only where float32 rounds
    sigmoid(z) to exactly 0.5, i.e. 0 < z < ~6e-8.
    """
    w2d, w3d, b = (weights[:, i:i + 1] for i in range(3))
    counts = np.zeros(len(weights), dtype=np.int64)
    for lo in range(0, pair.shape[1], _CHUNK):
        p2d, p3d = pair[0, lo:lo + _CHUNK], pair[1, lo:lo + _CHUNK]
        counts += np.count_nonzero(w2d * p2d + w3d * p3d + b > 0, axis=1)
    return counts


def _mean_dice(terms: Sequence[_CaseTerms], weights: np.ndarray) -> np.ndarray:
    """(P,) mean Dice over cases of the fused mask, for weights (P, 3)."""
    weights = np.asarray(weights, dtype=np.float32)
    dice = np.zeros(len(weights), dtype=np.float64)
    for t in terms:
        inter = t.fixed_inter + _count_predicted(weights, t.pos)
        predicted = t.fixed_pred + _count_predicted(weights, t.neg) + (inter - t.fixed_inter)
        denom = predicted + t.ref_total
        # Both masks empty: Dice 1 (design section 6).
        dice += np.where(denom > 0, 2.0 * inter / np.maximum(denom, 1), 1.0)
    return dice / max(len(terms), 1)


def mean_dice(cases: Sequence[tuple], weights: np.ndarray) -> np.ndarray:
    """Mean Dice over `cases` [(p2d, p3d, ref) of one region] of fuse(...) > 0.5.

    `weights` is [w2d, w3d, b] or (P, 3) candidates; returns (P,). This is the quantity
    the PSO maximises, computed the fast way (see _count_predicted).
    """
    return _mean_dice(_prepare(cases), np.atleast_2d(weights))


@contextlib.contextmanager
def _pyswarms_logging_untouched():
    """Import and build pyswarms objects without letting them reconfigure logging.

    Workaround: pyswarms' Reporter calls logging.config.dictConfig on import and on every
    optimizer it builds, adding handlers to the root logger and creating `report.log` in
    the working directory. It reads its config from the file named by LOG_CFG; an
    incremental config with nothing in it leaves logging as it was.
    """
    handle, path = tempfile.mkstemp(suffix=".yml", prefix="uncertaintyseg-pso-")
    with os.fdopen(handle, "w") as f:
        f.write("version: 1\nincremental: true\n")
    previous = os.environ.get("LOG_CFG")
    os.environ["LOG_CFG"] = path
    try:
        yield
    finally:
        if previous is None:
            del os.environ["LOG_CFG"]
        else:
            os.environ["LOG_CFG"] = previous
        os.unlink(path)


def fit_region_weights(cases: Sequence[tuple], seed: int = 0, *, particles: int = 20,
                       iterations: int = 50, w_max: float = 20.0,
                       b_range: tuple[float, float] = (-20.0, 20.0),
                       progress: Progress | None = None) -> np.ndarray:
    """PSO fit of [w2d, w3d, b] for one region; returns a float64 array of 3.

    `cases` is a list of (p2d, p3d, ref) arrays of one region and one shape per case
    (p3d -1 where uncovered, ref boolean). Minimises 1 - mean Dice of fuse(...) > 0.5.
    `progress("fusion", iteration, iterations, message)` once per PSO iteration.
    """
    terms = _prepare(cases)
    lower = np.array([0.0, 0.0, b_range[0]])
    upper = np.array([w_max, w_max, b_range[1]])
    done = [0]

    def objective(positions: np.ndarray) -> np.ndarray:
        # pyswarms calls this once per iteration with all particles (P, 3).
        done[0] += 1
        if progress is not None:
            progress("fusion", done[0], iterations,
                     f"PSO iteration {done[0]}/{iterations}")
        return 1.0 - _mean_dice(terms, positions)

    # pyswarms draws every random number from numpy's global RNG: seed it for a
    # reproducible fit, and give the caller's RNG state back afterwards.
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        with _pyswarms_logging_untouched():
            from pyswarms.single import GlobalBestPSO
            optimizer = GlobalBestPSO(n_particles=particles, dimensions=3,
                                      options=dict(PSO_OPTIONS), bounds=(lower, upper),
                                      bh_strategy="nearest")
        _, best = optimizer.optimize(objective, iters=iterations, verbose=False)
    finally:
        np.random.set_state(state)
    return np.asarray(best, dtype=np.float64)


def fit_fusion(cases: Sequence[tuple], seed: int = 0, *, particles: int = 20,
               iterations: int = 50, w_max: float = 20.0,
               b_range: tuple[float, float] = (-20.0, 20.0),
               progress: Progress | None = None) -> np.ndarray:
    """Fit all three regions: `cases` [(p2d (3, ...), p3d (3, ...), ref bool (3, ...))].

    Returns weights (3, 3), rows ET, TC, WT = [w2d, w3d, b], ready for fuse().
    """
    rows = []
    for r, region in enumerate(REGIONS):
        def region_progress(stage, done, total, message, r=r, region=region):
            progress(stage, r * total + done, len(REGIONS) * total, f"{region}: {message}")

        rows.append(fit_region_weights([(c[0][r], c[1][r], c[2][r]) for c in cases],
                                       seed, particles=particles, iterations=iterations,
                                       w_max=w_max, b_range=b_range,
                                       progress=region_progress if progress else None))
    return np.stack(rows)
