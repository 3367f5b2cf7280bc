"""Kernel search (design 4.3): the fast search equals the brute-force reference, and
both obey the greedy definition checked here from first principles."""

import itertools

import numpy as np
import pytest

from uncertaintyseg.stages.kernels import (Box, box_scores, brute_force_search, kernel_voxels,
                                           overlap_fraction, search_kernels)


def blob_map(shape, seed, n_blobs=3):
    """Uncertainty-like map: a few gaussian blobs over weak noise, in [0, 1]."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float64)
    u = 0.05 * rng.random(shape)
    for _ in range(n_blobs):
        centre = rng.uniform(0, shape)
        width = rng.uniform(1.0, 3.0)
        dist2 = sum((g - c) ** 2 for g, c in zip(grid, centre))
        u += rng.uniform(0.3, 1.0) * np.exp(-dist2 / (2 * width ** 2))
    return (u / u.max()).astype(np.float32)


def direct_score(u, start, size):
    """Sum over the cube by an explicit triple loop over voxels (no numpy slicing)."""
    total = 0.0
    for dz, dy, dx in itertools.product(*(range(k) for k in size)):
        total += float(u[start[0] + dz, start[1] + dy, start[2] + dx])
    return total


def assert_same_boxes(fast, slow):
    assert [(b.region, b.rank, b.start, b.size) for b in fast] == \
        [(b.region, b.rank, b.start, b.size) for b in slow]
    np.testing.assert_allclose([b.score for b in fast], [b.score for b in slow],
                               rtol=0, atol=1e-6)


def test_box_scores_match_direct_sums():
    u = np.random.default_rng(3).random((6, 7, 5)).astype(np.float32)
    size = (2, 3, 4)
    scores = box_scores(u, size)
    assert scores.shape == (5, 5, 2)
    for start in itertools.product(*(range(n) for n in scores.shape)):
        assert scores[start] == pytest.approx(direct_score(u, start, size), abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.8, 1.2)])
def test_fast_search_equals_brute_force(seed, spacing):
    u = blob_map((12, 15, 13), seed)
    size = kernel_voxels(4.0, spacing, u.shape)
    for max_overlap, fraction, count in [(0.4, 0.1, 8), (0.0, 0.05, 20), (0.7, 0.3, 30)]:
        fast = search_kernels(u, size, "TC", max_overlap, fraction, count)
        slow = brute_force_search(u, size, "TC", max_overlap, fraction, count)
        assert len(fast) >= 2
        assert_same_boxes(fast, slow)


def test_fast_equals_brute_force_on_pure_noise():
    u = np.random.default_rng(11).random((9, 10, 11)).astype(np.float32)
    for max_overlap in (0.0, 0.25, 1.0):
        fast = search_kernels(u, (3, 4, 2), "WT", max_overlap, 0.9, 40)
        slow = brute_force_search(u, (3, 4, 2), "WT", max_overlap, 0.9, 40)
        assert_same_boxes(fast, slow)


def test_ties_go_to_the_lowest_flat_index():
    # A constant map: every cube has the same score, so order is by (z, y, x).
    u = np.ones((6, 6, 6), dtype=np.float32)
    fast = search_kernels(u, (2, 2, 2), max_overlap=0.0, min_score_fraction=0.0,
                          max_count=100)
    assert fast[0].start == (0, 0, 0)
    assert fast[1].start == (0, 0, 2)  # the first position not overlapping (0, 0, 0)
    assert len(fast) == 27  # a perfect tiling of the 6^3 volume by 2^3 cubes
    assert_same_boxes(fast, brute_force_search(u, (2, 2, 2), max_overlap=0.0,
                                               min_score_fraction=0.0, max_count=100))


def test_greedy_definition_and_overlap_limit():
    """Each box is the best candidate compatible with the ones before it, and when the
    search stops early, no candidate above the stop threshold is left."""
    u = blob_map((11, 12, 10), seed=5)
    size, max_overlap, fraction = (3, 4, 3), 0.3, 0.2
    boxes = search_kernels(u, size, max_overlap=max_overlap, min_score_fraction=fraction,
                           max_count=50)
    starts = list(itertools.product(*(range(n - k + 1) for n, k in zip(u.shape, size))))
    scores = {s: direct_score(u, s, size) for s in starts}

    def compatible(s, taken):
        return all(overlap_fraction(s, b.start, size) <= max_overlap for b in taken)

    for i, box in enumerate(boxes):
        assert compatible(box.start, boxes[:i])
        best = max(scores[s] for s in starts if compatible(s, boxes[:i]))
        assert box.score == pytest.approx(best, abs=1e-6)
        assert box.score >= fraction * boxes[0].score
    assert len(boxes) < 50
    threshold = fraction * boxes[0].score
    assert not any(scores[s] >= threshold and compatible(s, boxes) for s in starts)


def test_overlap_fraction():
    assert overlap_fraction((0, 0, 0), (0, 0, 0), (4, 4, 4)) == 1.0
    assert overlap_fraction((0, 0, 0), (2, 0, 0), (4, 4, 4)) == 0.5
    assert overlap_fraction((0, 0, 0), (2, 2, 2), (4, 4, 4)) == 0.125
    assert overlap_fraction((0, 0, 0), (4, 0, 0), (4, 4, 4)) == 0.0
    assert overlap_fraction((5, 1, 0), (3, 0, 1), (2, 3, 4)) == 0.0


def test_max_count_and_stop_rule():
    u = blob_map((12, 12, 12), seed=7)
    many = search_kernels(u, (3, 3, 3), max_overlap=0.2, min_score_fraction=0.0,
                          max_count=100)
    assert len(many) > 5
    assert [b.rank for b in many] == list(range(1, len(many) + 1))
    assert len(search_kernels(u, (3, 3, 3), max_overlap=0.2, max_count=3)) == 3
    assert search_kernels(u, (3, 3, 3), max_count=0) == []
    for fraction in (0.3, 0.6):
        cut = search_kernels(u, (3, 3, 3), max_overlap=0.2, min_score_fraction=fraction,
                             max_count=100)
        # Stopping early keeps a prefix of the unlimited run, cut where the score drops.
        expected = [b for b in many if b.score >= fraction * many[0].score]
        assert [b.start for b in cut] == [b.start for b in expected]


def test_single_hot_spot_found_and_zero_map_gives_nothing():
    u = np.zeros((10, 10, 10), dtype=np.float32)
    assert search_kernels(u, (3, 3, 3)) == []
    assert brute_force_search(u, (3, 3, 3)) == []
    u[6, 2, 7] = 1.0
    boxes = search_kernels(u, (3, 3, 3), max_overlap=0.0)
    # Ties among the 27 cubes holding the voxel go to the lowest start.
    assert [b.start for b in boxes] == [(4, 0, 5)]
    assert boxes[0].score == pytest.approx(1.0)


def test_kernel_voxels_rounding_anisotropy_and_clipping():
    assert kernel_voxels(32, (1, 1, 1), (155, 240, 240)) == (32, 32, 32)
    assert kernel_voxels(32, (5.0, 0.9375, 0.9375), (40, 256, 256)) == (6, 34, 34)
    assert kernel_voxels(5, (2, 2, 4), (10, 10, 10)) == (3, 3, 1)  # 2.5 rounds up
    assert kernel_voxels(0.2, (1, 1, 1), (10, 10, 10)) == (1, 1, 1)
    assert kernel_voxels(64, (1, 1, 1), (20, 70, 30)) == (20, 64, 30)
    with pytest.raises(ValueError):
        kernel_voxels(-1, (1, 1, 1), (10, 10, 10))


def test_kernel_bigger_than_volume_is_clipped_to_one_box():
    u = blob_map((8, 9, 10), seed=2)
    size = kernel_voxels(64, (1, 1, 1), u.shape)
    assert size == u.shape
    boxes = search_kernels(u, size)
    assert [(b.start, b.size) for b in boxes] == [((0, 0, 0), u.shape)]
    assert boxes[0].score == pytest.approx(float(u.sum(dtype=np.float64)), abs=1e-6)
    with pytest.raises(ValueError):
        search_kernels(u, (9, 9, 10))


def test_box_helpers():
    box = Box("WT", 1, 3.0, (2, 3, 4), (5, 6, 7))
    assert box.stop == (7, 9, 11)
    assert box.volume == 210
    a = np.zeros((10, 12, 14))
    a[box.slices] = 1
    assert a.sum() == 210 and a[2, 3, 4] == 1 and a[6, 8, 10] == 1 and a[7, 8, 10] == 0


def test_invalid_settings_and_maps():
    u = np.ones((5, 5, 5), dtype=np.float32)
    with pytest.raises(ValueError):
        search_kernels(u, (2, 2, 2), max_overlap=1.5)
    with pytest.raises(ValueError):
        search_kernels(u[0], (2, 2, 2))
    u[1, 1, 1] = np.nan
    with pytest.raises(ValueError):
        search_kernels(u, (2, 2, 2))
