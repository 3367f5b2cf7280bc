"""Inputs that are not what the model expects, named before they are segmented.

The models are trained on BraTS-prepared MRI: four co-registered, skull-stripped
volumes (zero outside the brain) of MR magnitude intensities, one patient, each the
modality it is given as. A case prepared otherwise runs without an error and gives a
confident, wrong result, so each mismatch found here is an InputError that says what
the case needs, unless the user passes --force (then the findings go into report.json
as warnings). A T1ce without enhancement is a warning only: it runs, with a worse ET.

The checks read the images, not the file names (a PACS export names them vol0..vol3):
the modality of each volume (modality), the anatomy shared by the four and the rim
of a skull strip (anatomy_checks), on a ~2 mm grid (input_features), about a second a
case. Thresholds, measured on the 29 shared BraTS 2018 cases and their broken variants
(tools/fit_input_checks.py, docs/INPUT-CHECKS.md): the non-zero region is 1200 to 1720
ml (an adult head with skull and scalp is 3500 ml or more); no voxel is negative;
every modality has hundreds of distinct values in a sample of its brain.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import MODALITIES
from . import anatomy_checks as anatomy
from ..errors import FORCE_HINT, InputError, InputWarning
from .input_features import analysis_grid, depth_mm
from .modality import case_log_probabilities, swap_finding

MAX_BRAIN_ML = 2500.0
# The modality classifier and the enhancement statistic were measured on adult brains
# (1200 to 1720 ml): deep white matter, ventricles, vessels and choroid plexus mean
# nothing in a much smaller one (a phantom, a cropped volume), so below this they are
# not asked.
MIN_CONTENT_ML = 600.0
# Intersection over union of the four non-zero masks on the slices all four cover
# (docs/INPUT-CHECKS.md: shared cases 0.959 or more, also with the top 30 % of one
# volume's slices missing; one volume shifted 8 mm 0.844 or less; one volume of another
# patient, on the same atlas grid, 0.913 or less over all 2,436 combinations).
MIN_MASK_OVERLAP = 0.935
# The odd volume moved back by up to 12 mm: a shifted one overlaps again by 0.984 or
# more, another patient's by 0.913 or less.
MIN_MOVED_OVERLAP = 0.95
# Share of the outer 3 mm brighter than the interior's 99th percentile, worst volume
# (shared cases 0.09 or less; a 2-4 mm rim left by the skull strip 0.567 or more).
MAX_RIM = 0.2
# T1ce minus T1 at the 99.9th percentile, in brain medians (shared cases 0.83 or more;
# a T1ce replaced by its T1, scaled: 0).
MIN_ENHANCEMENT = 0.4
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


def _registration(case, view: np.ndarray, spacing) -> list[str]:
    """The four masks must overlap on the slices they all cover; the volume that does
    not is named, as misaligned when moving it back makes it overlap."""
    masks = view != 0
    overlap = anatomy.covered_overlap(masks)
    if overlap >= MIN_MASK_OVERLAP:
        return []
    odd = anatomy.odd_one(masks)
    moved, shift = anatomy.best_shift(masks, odd, spacing)
    path = case.paths[MODALITIES[odd]]
    found = (f"{path}: on the slices that all four volumes cover, their non-zero "
             f"regions overlap by only {overlap:.2f} (intersection over union; "
             f"co-registered, skull-stripped volumes by {MIN_MASK_OVERLAP} or more)")
    if moved < MIN_MOVED_OVERLAP:
        return [found + ", and no shift up to 12 mm makes this one overlap: it looks like "
                "another patient's (or session's) scan, or not co-registered (rotated, "
                "scaled). Give the four volumes of one patient and session, registered "
                "to one another on one grid, as the BraTS preprocessing does."]
    moves = ", ".join(f"{v:+.0f}" for v in shift)
    return [found + f" and would overlap by {moved:.2f} if this one were moved by "
            f"({moves}) mm (z, y, x): the modalities look not co-registered. Register "
            "them to one another and resample them onto one grid first, as the BraTS "
            "preprocessing does."]


def _rim(case, view: np.ndarray, spacing, depths) -> list[str]:
    rims = {m: anatomy.rim_fraction(view[i], spacing, depths[i])
            for i, m in enumerate(MODALITIES)}
    bright = [m for m, share in rims.items() if share > MAX_RIM]
    if not bright:
        return []
    listed = ", ".join(f"{case.paths[m]} ({rims[m]:.0%})" for m in bright)
    return [f"{listed}: a bright shell at the edge of the brain (the share of the outer "
            f"{anatomy.SHELL_MM:g} mm brighter than the brain's 99th percentile; a "
            f"skull-stripped brain has under {MAX_RIM:.0%}): the skull strip looks "
            "incomplete, scalp or marrow is left. Skull-strip the four volumes again "
            "(e.g. HD-BET or SynthStrip)."]


def _enhancement(case, view: np.ndarray) -> list[str]:
    value = anatomy.enhancement(view)
    if value >= MIN_ENHANCEMENT:
        return []
    return [f"{case.paths['t1ce']}: the volume given as T1ce shows no contrast "
            f"enhancement (its brightest voxels exceed the T1's by {value:.2f} brain "
            f"medians; post-contrast scans by {MIN_ENHANCEMENT} or more): it looks "
            "acquired without contrast agent, or a copy of the T1. The enhancing tumour "
            "(ET) and the tumour core need the post-contrast T1: give it if there is one."]


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


def _content(case) -> tuple[list[str], list[str]]:
    """Errors and warnings from the images' content on the analysis grid."""
    view, spacing = analysis_grid(case.image, case.spacing)
    depths = [depth_mm(volume != 0, spacing) for volume in view]
    errors = _registration(case, view, spacing) + _rim(case, view, spacing, depths)
    if errors:
        return errors, []
    brain_ml = float((view != 0).any(axis=0).sum()) * float(np.prod(spacing)) / 1000.0
    if brain_ml < MIN_CONTENT_ML:
        return [], []
    errors = swap_finding(case.paths, case_log_probabilities(view, spacing, depths))
    return errors, ([] if errors else _enhancement(case, view))


def assess(case) -> tuple[list[str], list[str]]:
    """(errors, warnings) about `case` (io.Case); both empty when all is well."""
    masks = case.image != 0
    errors = _skull(case, masks) + _intensities(case, masks)
    if errors:  # not skull-stripped MRI: the content checks would misread it
        return errors, []
    return _content(case)


def findings(case) -> list[str]:
    """What in `case` stops the run (without --force); empty when all is well."""
    return assess(case)[0]


def check_case(case, force: bool = False) -> list[str]:
    """Raise InputError naming every finding, unless `force`; warn (InputWarning) about
    what runs but worse; returns both, for report.json."""
    errors, cautions = assess(case)
    if errors and not force:
        raise InputError(" ".join(errors) + " " + FORCE_HINT)
    for caution in cautions:
        warnings.warn(caution, InputWarning, stacklevel=2)
    return errors + cautions
