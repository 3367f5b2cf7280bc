"""The grid the networks work on, and the way back to the input's grid.

Two ways in:
- `from_nnunet`: a model trained with nnU-Net gets nnU-Net's own preprocessing (crop to
  the non-zero region, z-score per channel, in-plane resampling to the plans' spacing)
  and nnU-Net's export back (probability resampling, cropping reverted). Inputs at
  another spacing than the training data reach the network at the scale it learned.
- `from_crop`: a model without plans (the analytic model) gets our z-score over the
  brain and a crop to the brain's bounding box plus a margin; no resampling.

Boxes found on the working grid are mapped to input voxels through the crop offset and
the spacing ratio; without resampling the mapping is an exact shift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..stages.kernels import Box
from ..stages.preprocess import bounding_box, brain_mask, normalize


@dataclass
class WorkingGrid:
    """image (4, z, y, x) normalised float32 and mask (z, y, x) bool on the working grid;
    spacing (sz, sy, sx) mm of that grid; `offset` (voxels) and `scale` (input voxels per
    working voxel, per axis) map working indices to input indices; `_to_input` takes
    (C, z, y, x) maps back to (C, ...) on the input's `box` (slices of the input grid,
    the region the grid was cut from); voxels outside it are the maps' "nothing"."""

    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]
    offset: tuple[int, int, int]
    scale: tuple[float, float, float]
    _to_input: Callable[[np.ndarray], np.ndarray]
    resampled: bool
    input_shape: tuple[int, int, int]
    box: tuple[slice, slice, slice] | None = None  # None: the whole input grid

    def to_input(self, maps: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """(C, z, y, x) -> (C, Z, Y, X) float32; voxels outside the working grid get
        `fill`. One channel at a time, into one output array: the export's resampling
        temporaries then stay a channel's of the brain's box, not a whole map's (a
        0.5 mm map is over 1 GB)."""
        maps = np.asarray(maps, np.float32)
        box = self.box or tuple(slice(0, n) for n in self.input_shape)
        out = np.full((maps.shape[0], *self.input_shape), fill, dtype=np.float32)
        for channel in range(maps.shape[0]):
            # The export fills with 0 outside its crop: shift maps whose "nothing" is not 0.
            source = maps[channel:channel + 1] - fill if fill else maps[channel:channel + 1]
            part = self._to_input(source)[0]
            out[(channel, *box)] = part + fill if fill else part
        return out

    def box_to_input(self, box: Box) -> Box:
        """A box on the working grid as input voxels (start rounded, size scaled, kept
        inside the input volume)."""
        size = tuple(min(dim, max(1, int(round(n * k))))
                     for n, k, dim in zip(box.size, self.scale, self.input_shape))
        start = tuple(min(dim - n, max(0, int(round(o + s * k)))) for o, s, k, n, dim
                      in zip(self.offset, box.start, self.scale, size, self.input_shape))
        return Box(box.region, box.rank, box.score, start, size)


def from_crop(image: np.ndarray, spacing_zyx, margin: int, crop: bool = True) -> WorkingGrid:
    """Our own preparation: z-score over the brain, crop to its bounding box + margin."""
    mask = brain_mask(image)
    normalised = normalize(image, mask)
    box = bounding_box(mask, margin) if crop else tuple(slice(0, n) for n in mask.shape)
    return WorkingGrid(image=np.ascontiguousarray(normalised[(slice(None), *box)]),
                       mask=mask[box], spacing=tuple(float(v) for v in spacing_zyx),
                       offset=tuple(int(s.start) for s in box), scale=(1.0, 1.0, 1.0),
                       _to_input=lambda maps: maps, resampled=False,
                       input_shape=tuple(mask.shape), box=box)


def nonzero_box(image: np.ndarray) -> tuple[slice, slice, slice]:
    """The bounding box of the voxels non-zero in any channel: where nnU-Net crops
    (its mask's filled holes do not change the box). A channel at a time: a 4D bool
    temporary of a large volume would be as large as a map."""
    nonzero = image[0] != 0
    for channel in image[1:]:
        nonzero |= channel != 0
    return bounding_box(nonzero)


def _nnunet_managers(model):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    if model.plans is None:
        raise ValueError(f"model '{model.name}' has no nnU-Net plans (the analytic model); "
                         f"use preprocess.normalize instead")
    manager = PlansManager(model.plans)
    return manager, manager.get_configuration(model.configuration_2d)


def nnunet_preprocess(model, image: np.ndarray, spacing_zyx) -> tuple[np.ndarray, dict]:
    """nnU-Net's DefaultPreprocessor on one case, exactly as at training time.

    image: (4, Z, Y, X) raw intensities (MODALITIES order), spacing (sz, sy, sx) mm.
    Crops to the non-zero region, z-scores each channel inside it, resamples in-plane
    to the plan's spacing. Returns (data (4, z, y, x) float32, properties); give the
    properties to nnunet_export to bring maps back to the input grid.
    """
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

    manager, config = _nnunet_managers(model)
    properties = {"spacing": [float(s) for s in spacing_zyx]}
    data, _, properties = DefaultPreprocessor(verbose=False).run_case_npy(
        np.asarray(image, dtype=np.float32), None, properties, manager, config, model.dataset)
    return data.astype(np.float32), properties


def nnunet_export(model, maps: np.ndarray, properties: dict) -> np.ndarray:
    """nnU-Net's way back: (C, z, y, x) maps on the preprocessed grid -> (C, Z, Y, X) on the
    input grid (probability resampling, cropping reverted with 0 outside, transpose).

    Maps whose 'nothing' value is not 0 (P3D's -1) should be shifted before and after.
    """
    manager, config = _nnunet_managers(model)
    labels = manager.get_label_manager(model.dataset)
    spacing = [properties["spacing"][i] for i in manager.transpose_forward]
    current = config.spacing if len(config.spacing) == 3 else [spacing[0], *config.spacing]
    resampled = config.resampling_fn_probabilities(
        np.asarray(maps, dtype=np.float32),
        properties["shape_after_cropping_and_before_resampling"], current, spacing)
    full = labels.revert_cropping_on_probabilities(
        np.asarray(resampled, dtype=np.float32), properties["bbox_used_for_cropping"],
        properties["shape_before_cropping"])
    return np.ascontiguousarray(full.transpose([0, *[i + 1 for i in manager.transpose_backward]]))


def from_nnunet(model, image: np.ndarray, spacing_zyx) -> WorkingGrid:
    """nnU-Net's preprocessing of the model's 2D configuration, and its export back.

    nnU-Net is given the image already cut to the non-zero box it would crop to (so
    the same voxels reach it, and it crops nothing more): its float32 copy of the
    input and its resampling then cost the brain's box, not the field of view (a
    0.5 mm head volume is mostly air)."""
    transpose = model.plans.get("transpose_forward", [0, 1, 2])
    if list(transpose) != [0, 1, 2]:
        # Our slice axis is axis 0 of the input; a plan that reorders axes would make the
        # 2D network see other planes than our kernel search and outputs assume.
        # Checked before nnU-Net's preprocessing, which costs seconds per case.
        raise ValueError(f"model '{model.name}': plans transpose the axes {transpose}; "
                         "only plans without transposition are supported")
    box = nonzero_box(image)
    data, properties = nnunet_preprocess(model, image[(slice(None), *box)], spacing_zyx)
    cropped = properties["shape_after_cropping_and_before_resampling"]
    scale = tuple(float(c) / float(n) for c, n in zip(cropped, data.shape[1:]))
    working_spacing = tuple(float(s) * k for s, k in zip(spacing_zyx, scale))
    offset = tuple(int(b.start) + int(inner[0])
                   for b, inner in zip(box, properties["bbox_used_for_cropping"]))
    return WorkingGrid(image=np.ascontiguousarray(data, dtype=np.float32),
                       mask=brain_mask(data), spacing=working_spacing, offset=offset,
                       scale=scale,
                       _to_input=lambda maps: nnunet_export(model, maps, properties),
                       resampled=any(abs(k - 1.0) > 1e-6 for k in scale),
                       input_shape=tuple(int(n) for n in image.shape[1:]), box=box)
