"""Inputs that are not what the model expects, named before they are segmented.

The models are trained on BraTS-prepared MRI: four co-registered, skull-stripped
volumes (zero outside the brain) of MR magnitude intensities. A case prepared otherwise
runs without an error and gives a confident, wrong result, so each mismatch found here
is an InputError that says what preparation the case needs, unless the user passes
--force (then the findings go into report.json as warnings).

Thresholds, measured on the 29 shared BraTS 2018 cases: the non-zero region is 1200 to
1720 ml (an adult head with skull and scalp is 3500 ml or more); the four non-zero masks
overlap by 0.957 or more (intersection over union); no voxel is negative; every
modality has hundreds of distinct values in a sample of its brain.
"""

from __future__ import annotations

import numpy as np

from . import MODALITIES
from .errors import FORCE_HINT, InputError

MAX_BRAIN_ML = 2500.0
MIN_MASK_OVERLAP = 0.8
MAX_NEGATIVE_FRACTION = 0.01
MIN_DISTINCT_VALUES = 16
SAMPLE_VOXELS = 200_000


def _skull(case, masks: np.ndarray) -> list[str]:
    volume_ml = float(masks.any(axis=0).sum()) * float(np.prod(case.spacing)) / 1000.0
    if volume_ml <= MAX_BRAIN_ML:
        return []
    return [f"{case.paths[MODALITIES[0]].parent}: the non-zero region of the images is "
            f"{volume_ml:.0f} ml, far above a brain's (under {MAX_BRAIN_ML:.0f} ml): the "
            "head looks not skull-stripped (or the background is not zero). Skull-strip "
            "the four volumes first, as the BraTS preprocessing does (e.g. HD-BET or "
            "SynthStrip)."]


def _registration(case, masks: np.ndarray) -> list[str]:
    union = masks.any(axis=0).sum()
    overlap = float(masks.all(axis=0).sum()) / float(max(union, 1))
    if overlap >= MIN_MASK_OVERLAP:
        return []
    names = ", ".join(str(case.paths[m]) for m in MODALITIES)
    return [f"{names}: the non-zero regions of the four volumes overlap by only "
            f"{overlap:.2f} (intersection over union; co-registered, skull-stripped "
            f"volumes overlap by {MIN_MASK_OVERLAP} or more): the modalities look not "
            "co-registered. Register them to one another and resample them onto one grid "
            "first, as the BraTS preprocessing does."]


def _intensities(case, masks: np.ndarray) -> list[str]:
    found = []
    rng = np.random.default_rng(0)
    for index, modality in enumerate(MODALITIES):
        values = case.image[index][masks[index]]
        if values.size == 0:
            continue
        sample = values if values.size <= SAMPLE_VOXELS else rng.choice(values, SAMPLE_VOXELS)
        negative = float(np.mean(sample < 0))
        path = case.paths[modality]
        if negative > MAX_NEGATIVE_FRACTION:
            found.append(f"{path}: {negative:.0%} of the non-zero voxels are negative, which "
                         "MR magnitude images never are: this looks like CT (Hounsfield "
                         "units) or an already normalised image. Give the raw MR volume.")
        distinct = np.unique(sample).size
        if distinct < MIN_DISTINCT_VALUES:
            found.append(f"{path}: only {distinct} distinct values in the image: this "
                         "looks like a label map or a mask, not an MR image. Check which "
                         "file was given for " + modality.upper() + ".")
    return found


def findings(case) -> list[str]:
    """What in `case` (io.Case) is not what the model expects; empty when all is well."""
    masks = case.image != 0
    return _skull(case, masks) + _registration(case, masks) + _intensities(case, masks)


def check_case(case, force: bool = False) -> list[str]:
    """Raise InputError naming every finding, unless `force`; returns the findings."""
    found = findings(case)
    if found and not force:
        raise InputError(" ".join(found) + " " + FORCE_HINT)
    return found
