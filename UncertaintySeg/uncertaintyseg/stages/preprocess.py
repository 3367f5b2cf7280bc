"""Brain mask, bounding box, z-score normalisation and padding to a divisor.

Images are float (4, Z, Y, X) in MODALITIES order, masks bool (Z, Y, X). The
normalisation is nnU-Net's own (``ZScoreNormalization`` with
``use_mask_for_norm=True``), so the networks see what nnU-Net trained them on.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from nnunetv2.preprocessing.cropping.cropping import create_nonzero_mask
from nnunetv2.preprocessing.normalization.default_normalization_schemes import (
    ZScoreNormalization)


def brain_mask(image: np.ndarray) -> np.ndarray:
    """bool (Z, Y, X): voxels where any channel of ``image`` (C, Z, Y, X) is non-zero,
    with enclosed holes filled: nnU-Net's own ``create_nonzero_mask``.

    BraTS images are skull-stripped, so zero in every modality means outside the
    brain; zero voxels enclosed by the brain (a resection cavity set to zero, a dropout)
    are inside it, as nnU-Net's preprocessing of the training data counted them.
    """
    image = np.asarray(image)
    if image.ndim != 4:
        raise ValueError(f"brain_mask: expected (C, Z, Y, X), got shape {image.shape}")
    return create_nonzero_mask(image)


def bounding_box(mask: np.ndarray, margin: int | Sequence[int] = 0) -> tuple[slice, ...]:
    """Smallest box (one slice per axis) holding every True voxel, grown by
    ``margin`` voxels per side (an int or one per axis) and clipped to the volume.

    An empty mask gives the whole volume, so callers need no special case.
    """
    mask = np.asarray(mask, dtype=bool)
    margins = np.broadcast_to(np.asarray(margin, dtype=int), (mask.ndim,))
    if np.any(margins < 0):
        raise ValueError(f"bounding_box: margin must be >= 0, got {margin}")
    if not mask.any():
        return tuple(slice(0, n) for n in mask.shape)
    box = []
    for axis, (size, grow) in enumerate(zip(mask.shape, margins)):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=others))
        box.append(slice(max(int(present[0]) - grow, 0),
                         min(int(present[-1]) + 1 + grow, size)))
    return tuple(box)


def normalize(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-channel z-score over ``mask``, zero outside: float32 (C, Z, Y, X).

    image: (C, Z, Y, X) any real dtype; mask: bool (Z, Y, X). Each channel goes
    through nnU-Net's ZScoreNormalization (mean and std over the mask, std floored
    at 1e-8). An empty mask gives an all-zero result.
    """
    image = np.asarray(image)
    mask = np.asarray(mask, dtype=bool)
    if image.ndim != 4 or image.shape[1:] != mask.shape:
        raise ValueError(f"normalize: image {image.shape} and mask {mask.shape} do not "
                         f"fit (C, Z, Y, X) and (Z, Y, X)")
    out = np.zeros(image.shape, dtype=np.float32)
    if not mask.any():
        return out
    # nnU-Net marks the outside of the non-zero region with negative segmentation
    # values and normalises where seg >= 0.
    seg = np.where(mask, 0, -1).astype(np.int8)
    scheme = ZScoreNormalization(use_mask_for_norm=True, intensityproperties={},
                                 target_dtype=np.float32)
    for channel in range(image.shape[0]):
        # run() normalises in place: give it a copy.
        out[channel] = scheme.run(image[channel].astype(np.float32, copy=True), seg)
    # ZScoreNormalization leaves voxels outside the mask unchanged (they are zero in
    # nnU-Net only because its mask is the non-zero region); our mask may be any.
    out[:, ~mask] = 0.0
    return out


def pad_to_multiple(array, divisor: int | Sequence[int]):
    """Zero-pad the trailing axes of ``array`` to a multiple of ``divisor``.

    divisor: an int pads the last two axes (H, W of a 2D network's batch), a
    sequence of k ints pads the last k axes. ``array`` is a numpy array or a torch
    tensor (padded on its device). Padding is centred (nnU-Net's ``pad_nd_image``).
    Returns (padded, pads) where ``pads`` is a tuple of slices that crops the
    padding away again: ``padded[pads]`` equals ``array``.
    """
    # Imported here: acvl_utils imports torch, which the rest of this module avoids.
    from acvl_utils.cropping_and_padding.padding import pad_nd_image

    divisors = [int(divisor)] * 2 if np.isscalar(divisor) else [int(d) for d in divisor]
    if len(divisors) > array.ndim or min(divisors) < 1:
        raise ValueError(f"pad_to_multiple: divisor {divisor} does not fit an array of "
                         f"shape {tuple(array.shape)}")
    divisors = [1] * (array.ndim - len(divisors)) + divisors
    padded, pads = pad_nd_image(array, new_shape=None, mode="constant",
                                return_slicer=True, shape_must_be_divisible_by=divisors)
    # Plain ints rather than numpy integers in the slices: they print and serialise.
    return padded, tuple(slice(int(s.start), int(s.stop)) for s in pads)
