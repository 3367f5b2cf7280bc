"""Spherical projection (DESIGN 4.1): one test per property the design names."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uncertaintyseg.stages import projection as P

torch.set_num_threads(1)

SHAPE = (72, 60)  # not square: B differs by direction, rows and columns are not swapped
INTERIOR_ORIGINS = np.array([[36.0, 30.0], [4.0, 4.0], [68.0, 12.0], [20.0, 52.0],
                             [0.5, 30.0], [50.0, 58.25]], dtype=np.float32)


def _border_pixels(shape):
    h, w = shape
    rows, cols = np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32)
    sides = [np.stack([rows, np.zeros(h)], 1), np.stack([rows, np.full(h, w - 1)], 1),
             np.stack([np.zeros(w), cols], 1), np.stack([np.full(w, h - 1), cols], 1)]
    return torch.tensor(np.concatenate(sides), dtype=torch.float32)


def _random_points(count, shape, seed=0):
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.uniform(0, 1, (count, 2)) * (np.array(shape) - 1),
                        dtype=torch.float32)


def _ray_to_border(origin, point, shape):
    """Reference B: the ray o + s * d leaves [0, H-1] x [0, W-1] at the smallest s > 0."""
    d = (point - origin) / np.linalg.norm(point - origin)
    exits = [(lim - o) / c for o, c, lim in zip(origin, d, np.array(shape) - 1.0)
             if c > 0] + [-o / c for o, c in zip(origin, d) if c < 0]
    return min(exits)


def _smooth_image(shape):
    rows = torch.arange(shape[0], dtype=torch.float32)[:, None]
    cols = torch.arange(shape[1], dtype=torch.float32)[None]
    image = torch.zeros(shape)
    for row, col, sigma, weight in [(25, 18, 13, 1.0), (50, 40, 17, -0.7), (38, 30, 22, 0.5)]:
        image += weight * torch.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * sigma ** 2))
    return image


def test_map_follows_the_design_formula():
    radius = 25.0
    points = _random_points(300, SHAPE, seed=1)
    for inverse in (False, True):
        mapped = P.map_points(points, INTERIOR_ORIGINS, SHAPE, radius, inverse).double()
        for origin, row in zip(INTERIOR_ORIGINS.astype(np.float64), mapped.numpy()):
            for point, image in zip(points.double().numpy(), row):
                rho, border = np.linalg.norm(point - origin), _ray_to_border(origin, point, SHAPE)
                if inverse:
                    expect = radius * math.tan(rho / border * math.atan(border / radius))
                else:
                    expect = border * math.atan(rho / radius) / math.atan(border / radius)
                assert np.linalg.norm(image - origin) == pytest.approx(expect, rel=1e-4, abs=1e-4)
                # the point stays on its ray
                (a_r, a_c), (b_r, b_c) = point - origin, image - origin
                assert abs(a_r * b_c - a_c * b_r) <= 1e-3 * rho * max(expect, 1.0)


@pytest.mark.parametrize("radius", [8.0, 30.0, 1000.0])
@pytest.mark.parametrize("inverse", [False, True])
def test_border_stays_fixed(radius, inverse):
    border = _border_pixels(SHAPE)
    mapped = P.map_points(border, INTERIOR_ORIGINS, SHAPE, radius, inverse)
    assert (mapped - border).abs().max() <= 1e-4
    grid = P.sampling_grid(INTERIOR_ORIGINS, SHAPE, radius, inverse)
    identity = F.affine_grid(torch.eye(2, 3)[None].expand(len(INTERIOR_ORIGINS), 2, 3),
                             (len(INTERIOR_ORIGINS), 1) + SHAPE, align_corners=True)
    px = torch.tensor([(SHAPE[1] - 1) / 2, (SHAPE[0] - 1) / 2])
    edge = torch.zeros(SHAPE, dtype=torch.bool)
    edge[0], edge[-1], edge[:, 0], edge[:, -1] = True, True, True, True
    assert ((grid - identity)[:, edge] * px).abs().max() <= 1e-4
    assert not ((grid - identity)[:, ~edge] * px).abs().max() <= 1e-4  # the rest moves


def test_round_trip_of_a_smooth_image_is_close_in_the_interior():
    # Bound found over all pixels 8 px inside the border, all 63 grid origins, default R:
    # max 0.036 (2.2 % of the image's 1.6 range), 99th percentile 0.004, mean 7e-4;
    # asserted with some room. The worst pixels lie on the rays to the corners, where
    # B(phi) has a kink, on the side far from an origin near the border, where the
    # projection squeezes the slice ~3x and bilinear sampling of the squeezed copy
    # loses curvature. Nearer the border, grazing corner rays cost more (max 0.12).
    image = _smooth_image(SHAPE)
    origins = P.origin_grid(np.ones(SHAPE, bool))
    radius = P.default_radius(SHAPE)
    projected = P.project(image[None], origins, radius)
    assert (projected[:, 0] - image).abs().max() > 0.5  # the projection does warp
    error = (P.back_project(projected, origins, radius)[:, 0] - image).abs()[:, 8:-8, 8:-8]
    assert error.max() < 0.05
    assert torch.quantile(error.flatten()[::5], 0.99) < 0.006
    assert error.mean() < 2e-3


def test_magnification_at_the_origin():
    radius = P.default_radius(SHAPE)
    origin = np.array([[20.0, 25.0]], dtype=np.float32)
    directions = {(0, 1): SHAPE[1] - 1 - 25.0, (0, -1): 25.0, (1, 0): SHAPE[0] - 1 - 20.0,
                  (-1, 0): 20.0}
    grid = P.sampling_grid(origin, SHAPE, radius, inverse=False)[0]
    pixel = grid * torch.tensor([(SHAPE[1] - 1) / 2, (SHAPE[0] - 1) / 2]) + torch.tensor(
        [(SHAPE[1] - 1) / 2, (SHAPE[0] - 1) / 2])
    for (dr, dc), border in directions.items():
        expect = border / (radius * math.atan(border / radius))
        # 1-pixel step of the sampling grid itself; truncation error 1 / (3 R^2) relative
        col, row = pixel[20 + dr, 25 + dc]
        step = math.hypot(row - 20.0, col - 25.0)
        assert step == pytest.approx(expect, rel=1e-3)
        # and a 0.25 px step of the map
        point = torch.tensor([[20.0 + 0.25 * dr, 25.0 + 0.25 * dc]])
        moved = P.map_points(point, origin, SHAPE, radius, inverse=False)[0, 0]
        assert float(torch.linalg.vector_norm(moved - torch.tensor(origin[0]))) / 0.25 == \
            pytest.approx(expect, rel=1e-3)
        assert expect > 1.0
    diagonal = np.array([1.0, 1.0]) / math.sqrt(2)
    border = _ray_to_border(origin[0].astype(np.float64), origin[0] + diagonal, SHAPE)
    moved = P.map_points(torch.tensor(origin + 0.25 * diagonal, dtype=torch.float32), origin,
                         SHAPE, radius, inverse=False)
    assert float(torch.linalg.vector_norm(moved[0, 0] - torch.tensor(origin[0]))) / 0.25 == \
        pytest.approx(border / (radius * math.atan(border / radius)), rel=1e-3)


def test_large_radius_gives_the_identity():
    grid = P.sampling_grid(INTERIOR_ORIGINS, SHAPE, 1e6, inverse=True)
    identity = F.affine_grid(torch.eye(2, 3)[None].expand(len(INTERIOR_ORIGINS), 2, 3),
                             (len(INTERIOR_ORIGINS), 1) + SHAPE, align_corners=True)
    px = torch.tensor([(SHAPE[1] - 1) / 2, (SHAPE[0] - 1) / 2])
    assert ((grid - identity) * px).abs().max() < 1e-3
    forward = P.sampling_grid(INTERIOR_ORIGINS, SHAPE, 1e6, inverse=False)
    assert ((forward - identity) * px).abs().max() < 1e-3
    image = _smooth_image(SHAPE)
    assert (P.project(image[None], INTERIOR_ORIGINS, 1e6)[:, 0] - image).abs().max() < 1e-4


@pytest.mark.parametrize("radius", [15.0, P.default_radius(SHAPE), 200.0])
def test_map_is_a_bijection_of_the_slice(radius):
    points = _random_points(2000, SHAPE, seed=2)
    inverse = P.map_points(points, INTERIOR_ORIGINS, SHAPE, radius, inverse=True)
    forward = P.map_points(points, INTERIOR_ORIGINS, SHAPE, radius, inverse=False)
    upper = torch.tensor(SHAPE, dtype=torch.float32) - 1
    for mapped in (inverse, forward):  # onto the slice itself
        assert mapped.min() >= -1e-4 and (mapped <= upper + 1e-4).all()
    back = P.map_points(inverse, INTERIOR_ORIGINS, SHAPE, radius, inverse=False)
    assert (back - points).abs().max() < 2e-3
    back = P.map_points(forward, INTERIOR_ORIGINS, SHAPE, radius, inverse=True)
    assert (back - points).abs().max() < 2e-3
    # monotone along a ray: distinct points stay distinct and ordered
    origin = INTERIOR_ORIGINS[:1]
    ray = torch.tensor(origin) + torch.linspace(0, 1, 500)[:, None] * torch.tensor([[35.0, 29.0]])
    dist = torch.linalg.vector_norm(P.map_points(ray, origin, SHAPE, radius, False)[0]
                                    - torch.tensor(origin), dim=-1)
    assert (dist.diff() > 0).all()


def test_origin_pixel_and_border_origins_give_no_nan():
    origins = np.array([[0, 0], [0, 30], [71, 59], [40, 0], [36, 30]], dtype=np.float32)
    for inverse in (False, True):
        grid = P.sampling_grid(origins, SHAPE, 20.0, inverse)
        assert torch.isfinite(grid).all()
        pixel = grid * torch.tensor([29.5, 35.5]) + torch.tensor([29.5, 35.5])
        # the origin pixel maps to itself
        for k, (row, col) in enumerate(origins.astype(int)):
            expect = torch.tensor([col, row], dtype=torch.float32)
            assert torch.allclose(pixel[k, row, col], expect, atol=1e-4)
    maps = P.back_project(P.project(_smooth_image(SHAPE)[None], origins, 20.0), origins, 20.0)
    assert torch.isfinite(maps).all()


def test_origin_grid_counts_and_mask():
    full = P.origin_grid(np.ones((256, 256), bool))
    assert full.shape == (1024, 2)
    assert set(np.unique(full[:, 0])) == set(range(4, 256, 8))
    rows, cols = np.mgrid[:240, :200]
    disk = (rows - 120) ** 2 + (cols - 90) ** 2 < 70 ** 2
    origins = P.origin_grid(disk).astype(int)
    assert disk[origins[:, 0], origins[:, 1]].all()
    grid_inside = {(r, c) for r in range(4, 240, 8) for c in range(4, 200, 8) if disk[r, c]}
    assert set(map(tuple, origins)) == grid_inside
    assert P.origin_grid(np.zeros((64, 64), bool)).shape == (0, 2)
    assert P.select_origins(np.zeros((64, 64), bool), "paper").shape == (0, 2)


def test_thinning_is_reproducible_and_spread():
    rows, cols = np.mgrid[:240, :240]
    brain = ((rows - 120) / 100.0) ** 2 + ((cols - 115) / 80.0) ** 2 < 1
    origins = P.origin_grid(brain)
    first = P.thin_origins(origins, 16)
    assert first.shape == (16, 2)
    np.testing.assert_array_equal(first, P.thin_origins(origins.copy(), 16))
    assert len(np.unique(first, axis=0)) == 16
    assert {tuple(o) for o in first} <= {tuple(o) for o in origins}
    extent = origins.max(0) - origins.min(0)
    assert ((first.max(0) - first.min(0)) >= 0.7 * extent).all()
    # every origin of the brain lies near a kept one (covering radius)
    gaps = np.linalg.norm(origins[:, None] - first[None], axis=-1).min(axis=1)
    assert gaps.max() < 0.3 * extent.max()
    assert P.thin_origins(origins, 10 ** 6).shape == origins.shape


def test_select_origins_presets():
    brain = np.ones((240, 240), bool)
    assert len(P.select_origins(brain, "preview")) == P.PRESETS["preview"] == 16
    assert len(P.select_origins(brain, "standard")) == 128
    assert len(P.select_origins(brain, "paper")) == len(P.select_origins(brain, None)) == 900
    assert len(P.select_origins(brain, 5)) == 5
    with pytest.raises(ValueError, match="preview"):
        P.select_origins(brain, "fast")
    with pytest.raises(ValueError):
        P.select_origins(brain, 0)
    sliver = np.zeros((64, 64), bool)
    sliver[1, 10:30] = True  # between grid rows 4, 12, ...: still gets one origin
    origins = P.select_origins(sliver, "paper").astype(int)
    assert origins.shape == (1, 2) and sliver[origins[0, 0], origins[0, 1]]


@pytest.mark.parametrize("radius", [0.0, -5.0, math.inf, math.nan])
def test_radius_must_be_finite_and_positive(radius):
    with pytest.raises(ValueError, match="radius"):
        P.sampling_grid(INTERIOR_ORIGINS, SHAPE, radius, inverse=True)


def test_thinned_origins_cover_the_interior_not_only_the_rim():
    # Farthest-point sampling alone puts most of a few picks on the brain's edge; the
    # preview preset must sample the interior about as deeply as the full grid does.
    from scipy.ndimage import distance_transform_edt

    rows, cols = np.mgrid[0:240, 0:240]
    mask = ((rows - 120) / 100.0) ** 2 + ((cols - 120) / 80.0) ** 2 <= 1.0
    depth = distance_transform_edt(mask)
    grid = P.origin_grid(mask)
    picks = P.thin_origins(grid, 16)
    depth_of = lambda pts: depth[pts[:, 0].astype(int), pts[:, 1].astype(int)]
    assert np.median(depth_of(picks)) >= 0.7 * np.median(depth_of(grid))
    assert (depth_of(picks) <= 9).sum() <= 5
    assert len({tuple(p) for p in picks}) == 16
