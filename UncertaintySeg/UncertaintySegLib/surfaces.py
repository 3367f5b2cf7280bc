"""3D surface renders of several label maps of one case, seen from the same camera.

Used by `uncertaintyseg evaluate`'s case figures (reference, 2D-only and fused side by
side). Each label map becomes a segmentation node styled as the module styles a result
(NCR, ED, ET in their colours, closed surfaces), in one headless scene; one offscreen 3D
view frames all of them, then shows one at a time, so the pictures are comparable.
Needs the slicer-core wheel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .context import create_headless_logics, remove_with_helpers
from .render import OffscreenThreeDView
from .scene import ResultLoader
from .segments import normalise_convention
from .volumes import read_scalar_volume


def render_label_surfaces(label_files: dict[str, Path], convention: str = "brats2018",
                          size: tuple[int, int] = (360, 360), direction: str = "Anterior",
                          background=(0.0, 0.0, 0.0)) -> dict[str, np.ndarray]:
    """{name: (H, W, 3) uint8 RGB} of the closed surfaces of each BraTS label map file
    (same grid for all, labels of `convention`), in the given order, from `direction`
    (Anterior, Left, Right, Superior) tilted up 25 degrees."""
    logics = create_headless_logics()
    loader = ResultLoader(logics)
    segmentations = {}
    for name, path in label_files.items():
        labelmap = read_scalar_volume(logics.volumes, Path(path), f"{name} labels",
                                      labelmap=True)
        try:
            segmentations[name] = loader.segmentation_from_labelmap(
                labelmap, normalise_convention(convention), name, labelmap)
        finally:
            remove_with_helpers(logics.scene, labelmap)
    view = OffscreenThreeDView(logics, "1", size)
    view.set_background(background)
    view.look_from(direction, nodes=list(segmentations.values()))
    pixels = {}
    for name, shown in segmentations.items():
        for node in segmentations.values():
            node.GetDisplayNode().SetVisibility(node is shown)
        pixels[name] = view.render()
    return pixels
