"""Spherical projection of 2D slices (DESIGN 4.1).

For a slice of H x W pixels and a projection origin o = (row, col), every ray from o is
warped by the arc length on a sphere of radius R tangent to the slice at o, rescaled so
that the border of the slice stays where it is. With B(phi) the distance from o to the
border along direction phi (the border is the rectangle of pixel centres,
[0, H-1] x [0, W-1]):

- forward (image point at distance rho goes to distance q):
  ``q = B * atan(rho / R) / atan(B / R)``
- inverse: ``rho = R * tan((q / B) * atan(B / R))``

The projected slice is sampled with the inverse map (``project``); a network output on
the projected slice is brought back with the forward map (``back_project``). Both are
one batched ``torch.nn.functional.grid_sample`` over many origins.

All coordinates are in pixels, (row, col) order; all tensors are float32.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..options import PROJECTION_PRESETS

#: Origins per slice for each named preset; None means every grid origin in the brain.
#: Defined once in `options`, beside the --projections flag that names them.
PRESETS = PROJECTION_PRESETS

# Floor (px, and for rho / B) that keeps the origin pixel (rho = 0) and an origin on the
# border (no room on that side) free of 0 / 0: no NaN, whatever the origin.
_EPS = 1e-6


def default_radius(shape_hw: tuple[int, int]) -> float:
    """Default sphere radius R in pixels: half the slice's larger side."""
    return max(int(shape_hw[0]), int(shape_hw[1])) / 2.0


def origin_grid(mask_hw: np.ndarray, stride: int = 8) -> np.ndarray:
    """Grid origins inside a 2D brain mask.

    Grid points lie at ``stride // 2 + k * stride`` along each axis (a 256 x 256 slice
    has 32 x 32 = 1024 of them) and are kept only where ``mask_hw`` is true.

    Returns:
        (N, 2) float32 array of (row, col) pixel coordinates, row-major order.
    """
    mask_hw = np.asarray(mask_hw, dtype=bool)
    if mask_hw.ndim != 2:
        raise ValueError(f"origin_grid needs a 2D mask, got shape {mask_hw.shape}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1 px, got {stride}")
    rows = np.arange(stride // 2, mask_hw.shape[0], stride)
    cols = np.arange(stride // 2, mask_hw.shape[1], stride)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    keep = mask_hw[rr, cc]
    return np.stack([rr[keep], cc[keep]], axis=1).astype(np.float32)


def thin_origins(origins: np.ndarray, count: int, iterations: int = 10) -> np.ndarray:
    """Evenly thin origins to at most ``count``: farthest-point seeds, then Lloyd steps.

    Deterministic: the first seed is the origin nearest the centroid of all origins,
    each next seed the origin farthest from those taken (ties: lowest index). Farthest
    points alone crowd the brain's rim (10 of 16 preview origins within 9 px of the
    edge on a BraTS-sized brain), so `iterations` Lloyd steps then move every pick to
    the origin nearest the centroid of the origins it is closest to: the picks end up
    spread over the whole brain, interior included, and stay grid origins.

    Returns:
        (min(count, N), 2) float32, the kept origins in their original (row-major) order.
    """
    origins = np.asarray(origins, dtype=np.float32).reshape(-1, 2)
    if count < 0:
        raise ValueError(f"origin count must be >= 0, got {count}")
    if count >= len(origins):
        return origins.copy()
    if count == 0:
        return origins[:0].copy()
    points = origins.astype(np.float64)
    chosen = [int(np.argmin(((points - points.mean(axis=0)) ** 2).sum(axis=1)))]
    nearest = ((points - points[chosen[0]]) ** 2).sum(axis=1)
    for _ in range(count - 1):
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, ((points - points[pick]) ** 2).sum(axis=1))
    chosen = np.array(chosen)
    for _ in range(iterations):
        moved = _lloyd_step(points, chosen)
        if np.array_equal(moved, chosen):
            break
        chosen = moved
    return origins[np.sort(chosen)]


def _lloyd_step(points: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Move each pick to the point nearest the centroid of its Voronoi cell (vectorised);
    a pick whose new place another pick already takes stays where it was."""
    owner = ((points[:, None, :] - points[chosen][None]) ** 2).sum(axis=2).argmin(axis=1)
    sizes = np.bincount(owner, minlength=len(chosen)).astype(np.float64)
    centroids = np.stack([np.bincount(owner, points[:, a], len(chosen)) for a in (0, 1)],
                         axis=1) / np.maximum(sizes, 1.0)[:, None]
    distance = ((points - centroids[owner]) ** 2).sum(axis=1)
    order = np.lexsort((np.arange(len(points)), distance, owner))
    first = order[np.unique(owner[order], return_index=True)[1]]
    moved = chosen.copy()
    moved[owner[first]] = first
    if len(np.unique(moved)) < len(moved):
        return chosen
    return moved


def resolve_count(projections: int | str | None) -> int | None:
    """Number of origins asked for: an int, a preset name, or None (all)."""
    if projections is None:
        return None
    if isinstance(projections, str) and projections.isdigit():
        projections = int(projections)
    if isinstance(projections, str):
        if projections not in PRESETS:
            raise ValueError(
                f"unknown projection preset {projections!r}: use one of "
                f"{sorted(PRESETS)} or a positive number of projections")
        return PRESETS[projections]
    count = int(projections)
    if count < 1:
        raise ValueError(f"number of projections must be >= 1, got {projections}")
    return count


def select_origins(mask_hw: np.ndarray, projections: int | str | None,
                   stride: int = 8) -> np.ndarray:
    """Origins for one slice: the grid inside the mask, thinned to the count asked for.

    ``projections`` is a number, a name in ``PRESETS`` or None (every grid origin). An
    empty mask gives zero origins. A non-empty mask that no grid point falls in (a
    sliver of brain between grid points) gets one origin, the mask pixel nearest the
    mask's centroid, so that its voxels still get a prediction.

    Returns:
        (M, 2) float32 (row, col).
    """
    count = resolve_count(projections)
    mask_hw = np.asarray(mask_hw, dtype=bool)
    origins = origin_grid(mask_hw, stride)
    if len(origins) == 0 and mask_hw.any():
        pixels = np.argwhere(mask_hw).astype(np.float64)
        centre = pixels.mean(axis=0)
        nearest = np.argmin(((pixels - centre) ** 2).sum(axis=1))
        origins = pixels[nearest:nearest + 1].astype(np.float32)
    return origins if count is None else thin_origins(origins, count)


def _check_radius(radius: float) -> None:
    if not 0 < radius < math.inf:
        raise ValueError(f"projection radius must be a finite number of px > 0, got {radius} "
                         "(a very large radius, e.g. 1e6, gives the identity map)")


def _axis_reach(offset: torch.Tensor, origin: torch.Tensor, upper: int) -> torch.Tensor:
    """|offset| / (room to the border along one axis, on the offset's side).

    The ray from o through a point leaves the rectangle where the larger of the two
    axes' reaches equals 1, so ``rho / B = max(reach_row, reach_col)``: this gives B
    without trigonometry and exactly 1 for pixels on the border.
    """
    room = torch.where(offset > 0, upper - origin, origin)
    # An origin on the border has no room on that side: the clamp keeps 0 / 0 out (only
    # points beyond the border, never pixels of the slice, would get a large reach).
    return offset.abs() / room.clamp_min(_EPS)


def _radial_scale(offset_r: torch.Tensor, offset_c: torch.Tensor, reach: torch.Tensor,
                  radius: float, inverse: bool) -> torch.Tensor:
    """Factor s with mapped point = o + s * (p - o), from broadcastable offsets (px).

    With t = rho / B and a = atan(B / R): forward q / rho = atan(rho / R) / (t a);
    inverse rho' / rho = tan(t a) / (t tan a) (tan a = B / R), i.e. R tan(t a) / rho.
    The tan a form makes s exactly 1 where t = 1, so the border stays fixed to the last
    bit in float32. ``reach`` (t before clamping) is overwritten.
    """
    rho = torch.hypot(offset_r, offset_c)
    # t <= 1 for any point of the slice (the clamp only removes rounding). Flooring t
    # and B at _EPS keeps the origin pixel (rho = 0) finite: its s is irrelevant, since
    # it multiplies a zero offset. In-place steps: this runs on N * H * W elements.
    ratio = reach.clamp_(_EPS, 1.0)
    angle = (rho / ratio).clamp_min_(_EPS).div_(radius).atan_()
    if inverse:
        return (angle * ratio).tan_().div_(angle.tan_().mul_(ratio))
    return rho.div_(radius).atan_().div_(angle.mul_(ratio))


def _linear_scale(offset_r: torch.Tensor, offset_c: torch.Tensor, reach: torch.Tensor,
                  radius: float, inverse: bool) -> torch.Tensor:
    """Factor s of the linear-scaling map (the LSU-Net baseline), as `_radial_scale`.

    The neighbourhood of o is magnified by the spherical map's magnification at o,
    m = x / atan(x) with x = B / R, but linearly: q = m * rho out to rho = k B, then a
    second linear piece to the border, which stays fixed (k = min(1/2, 1/(2m)) keeps
    both pieces increasing). So the lsu-2d estimator differs from the spherical one in
    the shape of the map only, not in how much it magnifies.
    """
    rho = torch.hypot(offset_r, offset_c)
    t = reach.clamp_(_EPS, 1.0)
    x = (rho / t).clamp_min_(_EPS).div_(radius)
    m = x / torch.atan(x)
    k = torch.clamp(0.5 / m, max=0.5)
    mk = m * k
    if inverse:  # t is q / B here: the map keeps directions, so B is the same
        outer = (k + (t - mk) * (1 - k) / (1 - mk)) / t
        return torch.where(t <= mk, 1.0 / m, outer)
    outer = (mk + (t - k) * (1 - mk) / (1 - k)) / t
    return torch.where(t <= k, m, outer)


#: Radial profiles of the projection: the paper's spherical one, and the linear
#: scaling of the LSU-Net baseline (SPU-Net paper).
PROFILES = {"spherical": _radial_scale, "linear": _linear_scale}


def map_points(points: torch.Tensor, origins: torch.Tensor, shape_hw: tuple[int, int],
               radius: float, inverse: bool, profile: str = "spherical") -> torch.Tensor:
    """Apply the spherical map of each origin to points of the slice.

    Args:
        points: (N, P, 2) or (P, 2) pixel coordinates (row, col) inside the slice.
        origins: (N, 2) pixel coordinates (row, col) inside the slice.
        shape_hw: slice size (H, W).
        radius: sphere radius R in pixels (> 0).
        inverse: False for the forward map (rho -> q), True for the inverse (q -> rho).
        profile: "spherical" (design 4.1) or "linear" (`_linear_scale`).
    Returns:
        (N, P, 2) mapped pixel coordinates, float32.
    """
    _check_radius(radius)
    origins = torch.as_tensor(origins, dtype=torch.float32).reshape(-1, 1, 2)
    points = torch.as_tensor(points, dtype=torch.float32, device=origins.device)
    offset = points - origins
    reach = torch.maximum(
        _axis_reach(offset[..., 0], origins[..., 0], int(shape_hw[0]) - 1),
        _axis_reach(offset[..., 1], origins[..., 1], int(shape_hw[1]) - 1))
    scale = PROFILES[profile](offset[..., 0], offset[..., 1], reach, radius, inverse)
    return origins + offset * scale.unsqueeze(-1)


def sampling_grid(origins: torch.Tensor, shape_hw: tuple[int, int], radius: float,
                  inverse: bool, profile: str = "spherical") -> torch.Tensor:
    """Sampling grids for ``grid_sample(align_corners=True)``, one per origin.

    inverse=True: output pixel at distance q from o reads the input at distance rho
    (makes the projected slice). inverse=False: output pixel at distance rho reads the
    projected map at distance q (brings a network output back).

    Args:
        origins: (N, 2) (row, col) pixel coordinates, tensor or array; its device is used.
    Returns:
        (N, H, W, 2) float32, last axis (x, y) = (col, row) normalised to [-1, 1].
    """
    _check_radius(radius)
    origins = torch.as_tensor(origins, dtype=torch.float32).reshape(-1, 2)
    height, width = int(shape_hw[0]), int(shape_hw[1])
    origin_r = origins[:, 0].reshape(-1, 1, 1)
    origin_c = origins[:, 1].reshape(-1, 1, 1)
    # Rows and columns separately, (N, H, 1) and (N, 1, W): the per-axis work is
    # H + W per origin instead of H * W; only the radial scale is per pixel.
    offset_r = torch.arange(height, dtype=torch.float32,
                            device=origins.device).reshape(1, -1, 1) - origin_r
    offset_c = torch.arange(width, dtype=torch.float32,
                            device=origins.device).reshape(1, 1, -1) - origin_c
    reach = torch.maximum(_axis_reach(offset_r, origin_r, height - 1),
                          _axis_reach(offset_c, origin_c, width - 1))
    scale = PROFILES[profile](offset_r, offset_c, reach, radius, inverse)
    # Normalised x = (o + s * offset) * 2 / (W - 1) - 1, written straight into the
    # interleaved output (a stack would copy N * H * W * 2 floats once more).
    # max(.., 1): a slice one pixel wide has a single coordinate, mapped to -1.
    to_x, to_y = 2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)
    grid = torch.empty(scale.shape + (2,), dtype=torch.float32, device=origins.device)
    torch.addcmul(origin_c * to_x - 1.0, offset_c * to_x, scale, out=grid[..., 0])
    torch.addcmul(origin_r * to_y - 1.0, offset_r * to_y, scale, out=grid[..., 1])
    return grid


def _warp(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling of (N, C, H, W) images with (N, H, W, 2) grids, border padding."""
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                         align_corners=True)


def project(slice_chw: torch.Tensor, origins: torch.Tensor, radius: float,
            profile: str = "spherical") -> torch.Tensor:
    """Projected copies of one slice, one per origin.

    Args:
        slice_chw: (C, H, W) float32 tensor (its device is used).
        origins: (N, 2) (row, col) pixel coordinates.
        radius: sphere radius R in pixels.
    Returns:
        (N, C, H, W) float32.
    """
    slice_chw = torch.as_tensor(slice_chw, dtype=torch.float32)
    count = torch.as_tensor(origins).reshape(-1, 2).shape[0]
    return project_each(slice_chw.unsqueeze(0).expand(count, -1, -1, -1), origins, radius,
                        profile)


def project_each(images_nchw: torch.Tensor, origins: torch.Tensor, radius: float,
                 profile: str = "spherical") -> torch.Tensor:
    """Image n projected about origin n, all in one warp: the images may be different
    slices (the 2D stage batches origins across slices, `uncertainty.predict_volume`).

    Args:
        images_nchw: (N, C, H, W) float32 tensor (its device is used).
        origins: (N, 2) (row, col) pixel coordinates.
    Returns:
        (N, C, H, W) float32.
    """
    images_nchw = torch.as_tensor(images_nchw, dtype=torch.float32)
    origins = torch.as_tensor(origins, dtype=torch.float32, device=images_nchw.device)
    if origins.reshape(-1, 2).shape[0] != images_nchw.shape[0]:
        raise ValueError(f"{images_nchw.shape[0]} images but {origins.shape[0]} origins")
    grid = sampling_grid(origins, images_nchw.shape[-2:], radius, inverse=True,
                         profile=profile)
    return _warp(images_nchw, grid)


def back_project(maps_nchw: torch.Tensor, origins: torch.Tensor, radius: float,
                 profile: str = "spherical") -> torch.Tensor:
    """Bring maps computed on projected slices back to the slice's own geometry.

    Args:
        maps_nchw: (N, C, H, W) float32, map n computed on the projection of origin n.
        origins: (N, 2) (row, col) pixel coordinates.
    Returns:
        (N, C, H, W) float32.
    """
    maps_nchw = torch.as_tensor(maps_nchw, dtype=torch.float32)
    origins = torch.as_tensor(origins, dtype=torch.float32, device=maps_nchw.device)
    if origins.shape[0] != maps_nchw.shape[0]:
        raise ValueError(f"{maps_nchw.shape[0]} maps but {origins.shape[0]} origins")
    grid = sampling_grid(origins, maps_nchw.shape[-2:], radius, inverse=False, profile=profile)
    return _warp(maps_nchw, grid)
