"""BraTS label maps: reading them in either convention, label <-> region conversion.

Conventions: "brats2018" (BraTS 2017-2021: 1 NCR/NET, 2 ED, 4 ET) and "brats2023"
(BraTS 2023+: 3 for ET); the evaluator also reads "brats2024" (post-treatment maps: 3 ET
and 4 resection cavity, which belongs to no region). Regions, in REGIONS order: ET = {ET}, TC = {NCR, ET},
WT = {NCR, ED, ET}; arrays are (Z, Y, X) labels and bool (3, Z, Y, X) regions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import REGIONS
from .io import BRATS2018, BRATS2023, CONVENTIONS, InputError, check_same_grid, read_image

NCR_LABEL = 1
ED_LABEL = 2
ET_LABEL = {BRATS2018: 4, BRATS2023: 3}
BRATS2024 = "brats2024"  # read only (evaluation references), never written
RESECTION_CAVITY_LABEL = 4  # in BraTS 2024+ maps, beside ET = 3


_IMAGE_HINT = (": an image, not a label map? Give a segmentation (*_seg.nii.gz, "
               "segmentation.nii.gz)")


def _label_values(array: np.ndarray, path: Path) -> np.ndarray:
    """Sorted distinct label values; InputError unless all lie in {0, 1, 2, 3, 4}."""
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or np.any(array != np.round(array)):
            raise InputError(f"{path}: label map holds non-integer values{_IMAGE_HINT}. "
                             f"Save labels as integers (0, 1, 2 and 4 or 3).")
    if array.min() < 0 or array.max() > 4:
        bad = np.unique(array[(array < 0) | (array > 4)])
        # An MRI given by mistake has thousands of values: name a few, not all.
        shown = ", ".join(str(v) for v in bad[:5].tolist()) + (", ..." if bad.size > 5 else "")
        hint = _IMAGE_HINT if bad.size > 5 else ""
        raise InputError(f"{path}: {bad.size} unknown label values ({shown}){hint}. "
                         f"Expected BraTS labels 0, 1 NCR, 2 ED, 4 ET (or 3 ET in BraTS "
                         f"2023+).")
    integers = array if array.dtype.kind in "iu" else array.astype(np.intp)
    counts = np.bincount(integers.ravel(), minlength=5)
    return np.flatnonzero(counts)


def load_labels(path, reference: sitk.Image | None = None, allow_cavity: bool = False,
                reference_name: str = "the case's images") -> tuple[np.ndarray, str]:
    """Read a BraTS label map in either convention.

    Returns (labels uint8 (Z, Y, X) with the file's own values, convention):
    values {0,1,2,4} -> "brats2018", {0,1,2,3} -> "brats2023"; a map without
    ET is ambiguous and reported as "brats2018". With ``reference`` the grid is
    checked against it (``reference_name`` names it in the message). With ``allow_cavity`` a map holding both 3 and 4 is a BraTS
    2024+ map (4 = resection cavity) and reported as "brats2024"; pass that convention
    to `labels_to_regions`.
    """
    path = Path(path)
    image = read_image(path)
    if reference is not None:
        # Label maps of one case on two grids: a resampling away, not a registration.
        check_same_grid(reference, reference_name, image, path,
                        fix=f"The voxels differ, not the alignment: resample {path.name} onto "
                            f"the grid of {reference_name} (nearest neighbour for a label map, "
                            "e.g. SimpleITK's Resample with sitkNearestNeighbor), then compare.")
    array = sitk.GetArrayFromImage(image)
    values = _label_values(array, path)
    if 3 in values and 4 in values and allow_cavity:
        return array.astype(np.uint8), BRATS2024
    if 3 in values and 4 in values:
        raise InputError(f"{path}: holds both 3 and 4, ET in two conventions. Relabel "
                         f"it to one convention (4 for BraTS 2017-2021, 3 for 2023+).")
    convention = BRATS2023 if 3 in values else BRATS2018
    return array.astype(np.uint8), convention


def labels_to_regions(labels: np.ndarray, convention: str | None = None) -> np.ndarray:
    """Label map (Z, Y, X) in either convention -> bool (3, Z, Y, X) in REGIONS order.

    ET = {3 or 4}, TC = {1} + ET, WT = {1, 2} + ET. With convention "brats2024", ET is
    {3} only and label 4 (resection cavity) lies outside every region.
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 4):
        raise ValueError("labels_to_regions: label values must lie in {0, 1, 2, 3, 4}")
    et = labels == 3
    if convention != BRATS2024:
        et = et | (labels == 4)
    tc = et | (labels == NCR_LABEL)
    wt = tc | (labels == ED_LABEL)
    return np.stack([et, tc, wt])


def regions_to_labels(regions: np.ndarray, convention: str) -> np.ndarray:
    """bool (3, Z, Y, X) ET/TC/WT -> uint8 label map (Z, Y, X) in ``convention``.

    Nesting is enforced by trimming the inner regions, never by growing the outer
    ones: TC := TC and WT, ET := ET and TC (and WT). WT-only voxels become ED (2),
    TC-only NCR (1), ET 4 ("brats2018") or 3 ("brats2023").
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, not {convention!r}")
    regions = np.asarray(regions, dtype=bool)
    if regions.ndim < 1 or regions.shape[0] != len(REGIONS):
        raise ValueError(f"regions must have shape (3, ...), got {regions.shape}")
    wt = regions[2]
    tc = regions[1] & wt
    et = regions[0] & tc
    labels = np.zeros(wt.shape, dtype=np.uint8)
    labels[wt] = ED_LABEL
    labels[tc] = NCR_LABEL
    labels[et] = ET_LABEL[convention]
    return labels
