"""Kernel search (design 4.3): cubes of high cumulative uncertainty.

A cube of side d mm slides over every position of a region's normalised uncertainty map
U2D `(Z, Y, X)`; its score is the sum of U2D inside. The greedy selection takes the best
cube, then the next best whose overlap with every cube already taken is at most
`max_overlap` of the cube's volume, and stops when the next acceptable score falls under
`min_score_fraction` x the first cube's score, or at `max_count` cubes.

Order of candidates (the definition both implementations follow): score descending,
ties broken by the lowest flat (C-order) index of the cube's start, i.e. the smallest
(z, y, x) in lexicographic order. Only cubes with a positive score are ever taken, so an
all-zero map gives no boxes.

`search_kernels` is the fast implementation (summed-area table + argmax with
suppression); `brute_force_search` is the plain reference used by tests and benchmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .. import REGIONS

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class Box:
    """One selected cube, in voxels of the (Z, Y, X) array.

    `rank` is 1 for the region's highest score; `score` is the sum of normalised
    uncertainty inside the cube; `start` is the first voxel (z, y, x) and `size` the
    extent (kz, ky, kx) in voxels.
    """

    region: str
    rank: int
    score: float
    start: Triple
    size: Triple

    @property
    def stop(self) -> Triple:
        """One past the last voxel, (z, y, x)."""
        return tuple(int(a + k) for a, k in zip(self.start, self.size))

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """Index of the cube in a (Z, Y, X) array (or the last three axes of one)."""
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))

    @property
    def volume(self) -> int:
        """Number of voxels in the cube."""
        return int(np.prod(self.size))


def kernel_voxels(size_mm: float | Sequence[float], spacing_zyx: Sequence[float],
                  shape: Sequence[int]) -> Triple:
    """Cube side(s) in mm -> (kz, ky, kx) voxels.

    `size_mm` is one side for a cube or three sides (z, y, x) in mm; `spacing_zyx` in mm.
    Rounds to the nearest voxel (halves up), at least 1 voxel, at most the volume's
    extent `shape` (Z, Y, X), so a kernel bigger than the volume covers all of it.
    """
    sides = np.broadcast_to(np.asarray(size_mm, dtype=np.float64), (3,))
    spacing = np.asarray(spacing_zyx, dtype=np.float64)
    if spacing.shape != (3,) or np.any(spacing <= 0) or np.any(sides <= 0):
        raise ValueError(f"kernel size {size_mm} mm and spacing {spacing_zyx} mm must be "
                         "positive; the spacing needs three values (z, y, x)")
    voxels = np.floor(sides / spacing + 0.5).astype(np.int64)
    voxels = np.clip(voxels, 1, np.asarray(shape, dtype=np.int64))
    return tuple(int(v) for v in voxels)


def _check_map(u: np.ndarray, size: Sequence[int]) -> Triple:
    if u.ndim != 3:
        raise ValueError(f"uncertainty map must be 3D (Z, Y, X), got shape {u.shape}")
    size = tuple(int(k) for k in size)
    if len(size) != 3 or any(k < 1 or k > n for k, n in zip(size, u.shape)):
        raise ValueError(f"kernel size {size} must be 1..{u.shape} voxels; "
                         "use kernel_voxels() to clip it to the volume")
    return size


def _window_sums(a: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Sums of `a` over windows of `k` along `axis` (float64): a summed-area table along
    one axis (cumsum behind a zero pad), differenced at distance k."""
    n = a.shape[axis]

    def along(index: slice) -> tuple:
        return tuple(index if i == axis else slice(None) for i in range(a.ndim))

    shape = list(a.shape)
    shape[axis] = n + 1
    table = np.empty(shape, dtype=np.float64)
    table[along(slice(0, 1))] = 0.0
    np.cumsum(a, axis=axis, dtype=np.float64, out=table[along(slice(1, None))])
    return np.subtract(table[along(slice(k, None))], table[along(slice(0, n + 1 - k))])


def box_scores(u: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Sum of `u` (Z, Y, X) over every cube of `size` (kz, ky, kx), float64.

    Returns `(Z-kz+1, Y-ky+1, X-kx+1)`; entry [z, y, x] is the sum over
    u[z:z+kz, y:y+ky, x:x+kx]. The summed-area table is built and differenced one axis
    at a time: linear in the volume, and the partial sums stay the size of a window,
    which keeps float64 round-off far below 1e-6 on a 240 x 240 x 155 map.
    """
    size = _check_map(u, size)
    sums = np.asarray(u)
    for axis, k in enumerate(size):
        sums = _window_sums(sums, k, axis)
    return sums


def overlap_fraction(a_start: Sequence[int], b_start: Sequence[int],
                     size: Sequence[int]) -> float:
    """Intersection volume of two cubes of one `size` / the cube's volume."""
    inter = 1
    for a, b, k in zip(a_start, b_start, size):
        inter *= max(0, int(k) - abs(int(a) - int(b)))
    return inter / math.prod(int(k) for k in size)


def _check_settings(max_overlap: float, min_score_fraction: float, max_count: int):
    if not 0.0 <= max_overlap <= 1.0:
        raise ValueError(f"max_overlap {max_overlap} must lie in [0, 1]")
    if not 0.0 <= min_score_fraction <= 1.0:
        raise ValueError(f"min_score_fraction {min_score_fraction} must lie in [0, 1]")
    if max_count < 0:
        raise ValueError(f"max_count {max_count} must be >= 0")


def _forbidden_offsets(size: Triple, max_overlap: float) -> np.ndarray:
    """Bool (2kz-1, 2ky-1, 2kx-1): offsets d (centred) whose overlap exceeds the limit.

    Computed as overlap_fraction does (integer intersection / integer volume), so the
    fast search compares exactly the same float64 numbers as the reference.
    """
    ranges = [k - np.abs(np.arange(-(k - 1), k)) for k in size]
    inter = ranges[0][:, None, None] * ranges[1][None, :, None] * ranges[2][None, None, :]
    return inter / math.prod(size) > max_overlap


def _suppress(scores: np.ndarray, start: Triple, size: Triple,
              forbidden: np.ndarray) -> None:
    """Set to -inf every position whose cube overlaps the cube at `start` too much."""
    window, offsets = [], []
    for s, k, n in zip(start, size, scores.shape):
        lo, hi = max(0, s - (k - 1)), min(n, s + k)
        window.append(slice(lo, hi))
        offsets.append(slice(lo - (s - (k - 1)), hi - (s - (k - 1))))
    scores[tuple(window)][forbidden[tuple(offsets)]] = -np.inf
    # The cube itself: with max_overlap = 1 nothing above is forbidden, yet the greedy
    # scan visits every position once.
    scores[start] = -np.inf


def search_kernels(u: np.ndarray, size: Sequence[int], region: str = "ET",
                   max_overlap: float = 0.4, min_score_fraction: float = 0.1,
                   max_count: int = 8) -> list[Box]:
    """Greedy cube selection on one region's uncertainty map `u` (Z, Y, X).

    `size` (kz, ky, kx) in voxels (see kernel_voxels). Returns the boxes in selection
    order, ranks 1, 2, ... Exactly the greedy scan of `brute_force_search`: the next box
    is the first candidate in (score desc, flat index asc) order that no taken box
    overlaps by more than `max_overlap`; taking the argmax among positions not yet
    suppressed gives it, because a candidate rejected once stays rejected as the set of
    taken boxes only grows (np.argmax returns the lowest index among ties).
    """
    size = _check_map(u, size)
    _check_settings(max_overlap, min_score_fraction, max_count)
    if not np.all(np.isfinite(u)):
        raise ValueError("uncertainty map holds NaN or inf values")
    scores = box_scores(u, size)
    forbidden = _forbidden_offsets(size, max_overlap)
    flat = scores.reshape(-1)
    boxes: list[Box] = []
    threshold = 0.0
    while len(boxes) < max_count:
        index = int(np.argmax(flat))
        score = float(flat[index])
        if not score > 0.0 or score < threshold:
            break
        if not boxes:
            threshold = min_score_fraction * score
        start = tuple(int(v) for v in np.unravel_index(index, scores.shape))
        boxes.append(Box(region, len(boxes) + 1, score, start, size))
        _suppress(scores, start, size, forbidden)
    return boxes


def brute_force_search(u: np.ndarray, size: Sequence[int], region: str = "ET",
                       max_overlap: float = 0.4, min_score_fraction: float = 0.1,
                       max_count: int = 8) -> list[Box]:
    """Reference for search_kernels: same arguments, same result, no cleverness.

    Scores by summing each cube in a loop over every position, sorts all positions by
    (score desc, flat index asc) and scans them, accepting a cube when its overlap with
    every accepted cube is at most `max_overlap`. Slow: O(positions x cube volume).
    """
    size = _check_map(u, size)
    _check_settings(max_overlap, min_score_fraction, max_count)
    kz, ky, kx = size
    positions = [(z, y, x) for z in range(u.shape[0] - kz + 1)
                 for y in range(u.shape[1] - ky + 1)
                 for x in range(u.shape[2] - kx + 1)]
    scores = [float(u[z:z + kz, y:y + ky, x:x + kx].sum(dtype=np.float64))
              for z, y, x in positions]
    order = sorted(range(len(positions)), key=lambda i: (-scores[i], i))
    boxes: list[Box] = []
    for i in order:
        if len(boxes) >= max_count or not scores[i] > 0.0:
            break
        if boxes and scores[i] < min_score_fraction * boxes[0].score:
            break
        if all(overlap_fraction(positions[i], b.start, size) <= max_overlap for b in boxes):
            boxes.append(Box(region, len(boxes) + 1, scores[i], positions[i], size))
    return boxes


def search_regions(uncertainty: np.ndarray, spacing_zyx: Sequence[float],
                   kernel_mm: Sequence[float], max_overlap: float = 0.4,
                   min_score_fraction: float = 0.1, max_count: int = 8) -> list[Box]:
    """The kernel search for every region of a (3, Z, Y, X) uncertainty map.

    `kernel_mm` holds the cube side per region in REGIONS order (ET, TC, WT), in mm;
    the boxes come region by region, each region's in rank order.
    """
    boxes: list[Box] = []
    for index, region in enumerate(REGIONS):
        size = kernel_voxels(kernel_mm[index], spacing_zyx, uncertainty.shape[1:])
        boxes += search_kernels(uncertainty[index], size, region=region,
                                max_overlap=max_overlap,
                                min_score_fraction=min_score_fraction, max_count=max_count)
    return boxes
