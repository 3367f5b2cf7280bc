"""Offscreen rendering with Slicer's displayable managers (EGL, no X), checked by pixels.

Each expectation is computed from geometry, not from a stored picture: every pixel of the
axial view is mapped through the slice node's XY-to-RAS and the volume's RAS-to-IJK
matrices into the voxel grid, so we know which pixels should carry the heatmap and where
the box outlines must run. Set UNCERTAINTYSEG_PNG_DIR to keep the PNGs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mrml_helpers import SLICER_CORE

slicer = pytest.importorskip("slicer", reason=SLICER_CORE)

from UncertaintySegLib.render import (OffscreenSliceView, OffscreenThreeDView,  # noqa: E402
                                      save_png)
from UncertaintySegLib.review import centre_views_on  # noqa: E402
from UncertaintySegLib.scene import ResultLoader, show_in_slice_views  # noqa: E402
from UncertaintySegLib.volumes import read_scalar_volume  # noqa: E402

SIZE = (320, 320)


@pytest.fixture
def png_dir(tmp_path) -> Path:
    return Path(os.environ.get("UNCERTAINTYSEG_PNG_DIR", tmp_path))


@pytest.fixture
def scene_with_run(logics, case2018):
    flair = read_scalar_volume(logics.volumes, case2018.input_dir / "Synthetic_flair.nii.gz",
                               "FLAIR")
    run = ResultLoader(logics).load(case2018.output_dir, reference_volume=flair)
    return logics, flair, run


def _pixel_ijk(view, volume) -> np.ndarray:
    """(H, W, 3) continuous IJK of every pixel of `view` (row 0 = top of the image)."""
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    width, height = view.window.GetSize()
    xy_to_ras = np.array([[view.node.GetXYToRAS().GetElement(r, c) for c in range(4)]
                          for r in range(4)])
    matrix = vtkMatrix4x4()
    volume.GetRASToIJKMatrix(matrix)
    ras_to_ijk = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    x, y = np.meshgrid(np.arange(width), np.arange(height)[::-1])
    points = np.stack([x, y, np.zeros_like(x), np.ones_like(x)], axis=-1).astype(float)
    return (points @ (ras_to_ijk @ xy_to_ras).T)[..., :3]


def _sample(array_zyx, ijk) -> np.ndarray:
    """Nearest-voxel values of a (Z, Y, X) array at (H, W, 3) IJK; NaN outside."""
    index = np.rint(ijk).astype(int)
    shape = array_zyx.shape[::-1]
    inside = np.all((index >= 0) & (index < np.array(shape)), axis=-1)
    out = np.full(ijk.shape[:2], np.nan)
    i, j, k = index[inside].T
    out[inside] = array_zyx[k, j, i]
    return out


def _axial_view(logics, flair, run, centre):
    view = OffscreenSliceView(logics, "Red", "Axial", SIZE)
    show_in_slice_views(logics.scene, flair, run.uncertainty, 0.6)
    view.fit()
    centre_views_on(logics.scene, centre)
    return view


def _near(mask, distance):
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, iterations=distance)


def test_heatmap_colours_exactly_where_uncertainty_is_high(scene_with_run, case2018, png_dir):
    from scipy.ndimage import maximum_filter, minimum_filter

    logics, flair, run = scene_with_run
    run.segmentation.GetDisplayNode().SetVisibility(False)
    for roi in run.rois:
        roi.GetDisplayNode().SetVisibility(False)
    view = _axial_view(logics, flair, run, case2018.boxes[0]["center_ras"])
    with_heatmap = view.render().astype(int)
    view.composite.SetForegroundVolumeID(None)
    without = view.render().astype(int)
    save_png(with_heatmap.astype(np.uint8), png_dir / "heatmap_on.png")
    save_png(without.astype(np.uint8), png_dir / "heatmap_off.png")

    ijk = _pixel_ijk(view, run.uncertainty)
    wt = case2018.uncertainty[2]
    high = _sample(minimum_filter(wt, size=3), ijk) >= 0.5  # high all around the voxel
    low = _sample(maximum_filter(wt, size=3), ijk) < 0.2     # below threshold all around
    assert high.sum() > 300 and low.sum() > 3000
    changed = np.abs(with_heatmap - without).sum(axis=-1) > 12
    r, g, b = with_heatmap[..., 0], with_heatmap[..., 1], with_heatmap[..., 2]
    warm = (r >= g) & (g >= b) & (r - b > 60)
    assert changed[high].mean() > 0.95, "heatmap missing where uncertainty is high"
    assert warm[high].mean() > 0.95, "heatmap pixels are not in the heatmap's colours"
    assert changed[low].mean() < 0.01, "threshold failed: heatmap drawn where uncertainty is low"


def _border(mask):
    from scipy.ndimage import binary_erosion

    return mask & ~binary_erosion(mask)


@pytest.mark.parametrize("region, colour", [("WT", (40, 200, 80)), ("TC", (230, 60, 230))])
def test_box_outlines_run_along_the_boxes(scene_with_run, case2018, png_dir, region, colour):
    logics, flair, run = scene_with_run
    run.segmentation.GetDisplayNode().SetVisibility(False)
    box = next(b for b in case2018.boxes if b["region"] == region)
    view = _axial_view(logics, flair, run, box["center_ras"])
    view.composite.SetForegroundVolumeID(None)
    pixels = view.render().astype(int)
    save_png(pixels.astype(np.uint8), png_dir / f"boxes_{region}.png")

    ijk = _pixel_ijk(view, flair)
    start, size = np.array(box["start_ijk"]), np.array(box["size_ijk"])
    inside = np.all((ijk >= start - 0.5) & (ijk <= start + size - 0.5), axis=-1)
    border = _border(inside)
    assert border.sum() > 100, "the slice does not cut the box"
    drawn = np.abs(pixels - np.array(colour)).max(axis=-1) < 60
    # The ROI's centre point is drawn as a dot of the same colour: leave it out.
    centre_ijk = start + (size - 1) / 2.0
    centre_distance = np.linalg.norm((ijk - centre_ijk)[..., :2], axis=-1)
    drawn &= ~_near(centre_distance == centre_distance.min(), 10)
    assert drawn.sum() > 100
    assert _near(border, 3)[drawn].mean() > 0.9, "outline pixels away from the box border"
    assert _near(drawn, 2)[border].mean() > 0.8, "box border not outlined"


def test_3d_view_shows_surfaces_and_boxes(scene_with_run, png_dir):
    logics, flair, run = scene_with_run
    view = OffscreenThreeDView(logics, "1", SIZE)
    view.look_from("Anterior", nodes=[run.segmentation, *run.rois])
    full = view.render().astype(int)
    save_png(full.astype(np.uint8), png_dir / "threed.png")
    for roi in run.rois:
        roi.GetDisplayNode().SetVisibility(False)
    surfaces = view.render().astype(int)
    run.segmentation.GetDisplayNode().SetVisibility(False)
    empty = view.render().astype(int)

    def et_blue(pixels):  # ET surface: strongly blue, unlike the pale background gradient
        return (pixels[..., 2] - pixels[..., 0] > 100) & (pixels[..., 2] > 120)

    def green(pixels):  # WT box outline
        return (pixels[..., 1] - pixels[..., 0] > 100) & (pixels[..., 1] - pixels[..., 2] > 60)

    assert et_blue(surfaces).sum() > 1000, "ET surface not rendered"
    assert et_blue(empty).sum() == 0
    assert green(full).sum() > 100, "WT box not rendered"
    assert green(surfaces).sum() == 0
    # The tumour is in the middle of the boxes, so its surface fills the image centre.
    rows, cols = np.nonzero(et_blue(surfaces))
    assert abs(rows.mean() - SIZE[1] / 2) < SIZE[1] / 5
    assert abs(cols.mean() - SIZE[0] / 2) < SIZE[0] / 5
