"""Fusion (design 4.5): the formula, the uncovered rule and the PSO fit."""

import logging
import os

import numpy as np
import pytest

from uncertaintyseg.stages.fusion import (fit_fusion, fit_region_weights, fuse, mean_dice,
                                          normalized_weights)


def dice(a, b):
    a, b = a.astype(bool), b.astype(bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * (a & b).sum() / total


def away_from_half(rng, shape):
    """Probabilities in [0, 0.4] or [0.6, 1]: clearly on one side of 0.5."""
    p = rng.uniform(0.0, 0.4, shape)
    flip = rng.random(shape) < 0.4
    p[flip] = 1.0 - p[flip]
    return p.astype(np.float32)


def synthetic_cases(trusted, n_cases=3, seed=0):
    """One region: the reference is the trusted model's mask on covered voxels, the
    other model is noise there; uncovered voxels (a third) follow P2D exactly."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n_cases):
        shape = (6, 10, 10)
        good, noise = away_from_half(rng, shape), rng.random(shape).astype(np.float32)
        p2d, p3d = (noise, good) if trusted == "3d" else (good, noise)
        ref = good > 0.5
        uncovered = np.zeros(shape, dtype=bool)
        uncovered[:2] = True
        p3d = np.where(uncovered, -1.0, p3d).astype(np.float32)
        ref = np.where(uncovered, p2d > 0.5, ref)
        cases.append((p2d, p3d, ref))
    return cases


def direct_mean_dice(cases, w):
    """Dice of the fused mask computed from the formula itself, one case at a time."""
    scores = []
    for p2d, p3d, ref in cases:
        z = w[0] * p2d.astype(np.float64) + w[1] * p3d + w[2]
        fused = np.where(p3d >= 0, 1.0 / (1.0 + np.exp(-z)), p2d)
        scores.append(dice(fused > 0.5, ref))
    return float(np.mean(scores))


def test_fuse_formula_and_uncovered_rule():
    rng = np.random.default_rng(1)
    p2d = rng.random((3, 4, 5, 6)).astype(np.float32)
    p3d = rng.random((3, 4, 5, 6)).astype(np.float32)
    p3d[rng.random(p3d.shape) < 0.3] = -1.0
    weights = np.array([[2.0, 5.0, -3.0], [0.5, 0.0, 1.0], [10.0, 7.5, -8.0]])
    fused = fuse(p2d, p3d, weights)
    assert fused.shape == p2d.shape and fused.dtype == np.float32
    for r in range(3):
        w2d, w3d, b = weights[r]
        expected = 1.0 / (1.0 + np.exp(-(w2d * p2d[r].astype(np.float64) + w3d * p3d[r] + b)))
        covered = p3d[r] >= 0
        np.testing.assert_allclose(fused[r][covered], expected[covered], rtol=1e-5)
        np.testing.assert_array_equal(fused[r][~covered], p2d[r][~covered])
    with pytest.raises(ValueError):
        fuse(p2d, p3d, weights[:2])


def test_mean_dice_matches_the_direct_computation():
    cases = synthetic_cases("3d", seed=4)
    rng = np.random.default_rng(2)
    candidates = np.column_stack([rng.uniform(0, 20, 40), rng.uniform(0, 20, 40),
                                  rng.uniform(-20, 20, 40)])
    fast = mean_dice(cases, candidates)
    slow = [direct_mean_dice(cases, w) for w in candidates]
    np.testing.assert_allclose(fast, slow, atol=1e-9)
    assert np.ptp(slow) > 0.3  # the candidates really differ


def test_fit_trusts_3d_when_the_reference_follows_3d():
    cases = synthetic_cases("3d")
    w = fit_region_weights(cases, seed=0)
    assert np.all(w[:2] >= 0) and np.all(w[:2] <= 20) and -20 <= w[2] <= 20
    w2d_n, w3d_n = normalized_weights(w)
    assert w3d_n > 0.8 and w2d_n == pytest.approx(1 - w3d_n)
    assert direct_mean_dice(cases, w) > 0.99


def test_fit_trusts_2d_in_the_mirror_case():
    cases = synthetic_cases("2d", seed=1)
    w = fit_region_weights(cases, seed=3)
    w2d_n, _ = normalized_weights(w)
    assert w2d_n > 0.8
    assert direct_mean_dice(cases, w) > 0.99


def test_fit_is_reproducible_and_leaves_global_state_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    cases = synthetic_cases("3d", seed=2)
    a = fit_region_weights(cases, seed=7, particles=8, iterations=10)
    b = fit_region_weights(cases, seed=7, particles=8, iterations=10)
    np.testing.assert_array_equal(a, b)
    c = fit_region_weights(cases, seed=8, particles=8, iterations=10)
    assert not np.array_equal(a, c)
    # The caller's RNG stream goes on as if the fit never happened.
    assert np.random.random() == before
    # pyswarms would otherwise attach handlers to the root logger and write report.log.
    assert root.handlers == handlers and root.level == level
    assert not (tmp_path / "report.log").exists()
    assert "LOG_CFG" not in os.environ


def test_fit_fusion_three_regions_and_progress():
    per_region = [synthetic_cases(t, n_cases=2, seed=s)
                  for s, t in enumerate(["3d", "2d", "3d"])]
    cases = [tuple(np.stack([per_region[r][i][k] for r in range(3)]) for k in range(3))
             for i in range(2)]
    calls = []
    w = fit_fusion(cases, seed=0, particles=10, iterations=15,
                   progress=lambda *a: calls.append(a))
    assert w.shape == (3, 3)
    w2d_n, w3d_n = normalized_weights(w)
    assert w3d_n[0] > 0.5 and w2d_n[1] > 0.5 and w3d_n[2] > 0.5
    assert [c[1] for c in calls] == list(range(1, 46))
    assert {c[2] for c in calls} == {45} and calls[-1][3].startswith("WT")
    fused = fuse(cases[0][0], cases[0][1], w)
    assert all(dice(fused[r] > 0.5, cases[0][2][r]) > 0.95 for r in range(3))


def test_normalized_weights():
    assert normalized_weights([3.0, 1.0, -2.0]) == (0.75, 0.25)
    assert normalized_weights([0.0, 0.0, 1.0]) == (0.5, 0.5)
    w2d, w3d = normalized_weights(np.array([[1.0, 1.0, 0], [0, 2.0, 0], [4.0, 0, 0]]))
    np.testing.assert_allclose(w2d, [0.5, 0.0, 1.0])
    np.testing.assert_allclose(w3d, [0.5, 1.0, 0.0])
