"""3D surface renders of label maps side by side (UncertaintySegLib.surfaces), checked by
pixels: what each picture shows is known from the label maps drawn."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from mrml_helpers import SLICER_CORE

slicer = pytest.importorskip("slicer", reason=SLICER_CORE)

from UncertaintySegLib.surfaces import render_label_surfaces  # noqa: E402

SIZE = (160, 160)


def _label_file(path, labels):
    image = sitk.GetImageFromArray(labels.astype(np.uint8))
    image.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(image, str(path))
    return path


def _blue(pixels):
    """Pixels where ET's blue dominates (any shading of (30, 120, 255))."""
    p = pixels.astype(int)
    return (p[..., 2] > 60) & (p[..., 2] > p[..., 0] + 40) & (p[..., 2] > p[..., 1] + 10)


def test_each_label_map_is_drawn_alone_from_one_camera(tmp_path):
    shape = (40, 40, 40)
    left, right, empty = (np.zeros(shape, np.uint8) for _ in range(3))
    left[14:26, 14:26, 4:16] = 4    # ET at low x (patient's right in LPS)
    right[14:26, 14:26, 24:36] = 4  # the same cube at high x
    files = {"left": _label_file(tmp_path / "left.nii.gz", left),
             "again": _label_file(tmp_path / "again.nii.gz", left),
             "right": _label_file(tmp_path / "right.nii.gz", right),
             "empty": _label_file(tmp_path / "empty.nii.gz", empty)}
    pixels = render_label_surfaces(files, "brats2018", SIZE)
    assert list(pixels) == list(files)
    assert all(p.shape == (SIZE[1], SIZE[0], 3) for p in pixels.values())
    assert not pixels["empty"].any()  # nothing drawn on the black background
    np.testing.assert_array_equal(pixels["left"], pixels["again"])  # one camera, no drift
    columns = {name: np.flatnonzero(_blue(pixels[name]).any(axis=0)) for name in ("left", "right")}
    assert columns["left"].size > 10 and columns["right"].size > 10
    # Seen from the front (anterior), the patient's right is on the image's left; each
    # picture shows only its own cube, so the two cubes occupy different columns.
    assert columns["left"].mean() < SIZE[0] / 2 < columns["right"].mean()
    assert not set(columns["left"]) & set(columns["right"])
