"""The QU-BraTS submission format: per case the label map and one uncertainty map per
region, uint8 0-100 (0 certain, 100 uncertain), on the case grid.

Names follow the QU-BraTS 2020 instructions: CASE.nii.gz, CASE_unc_enhance.nii.gz (ET),
CASE_unc_core.nii.gz (TC), CASE_unc_whole.nii.gz (WT).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import REGIONS
from ..files.image_writer import write_image_atomic
from ..files.io import to_image
from ..files.label_maps import regions_to_labels

SUFFIXES = {"ET": "enhance", "TC": "core", "WT": "whole"}


def to_qubrats(uncertainty: np.ndarray) -> np.ndarray:
    """float (3, Z, Y, X) in [0, 1] -> uint8 (3, Z, Y, X) in 0-100 (rounded)."""
    return np.rint(np.clip(uncertainty, 0.0, 1.0) * 100.0).astype(np.uint8)


def write_qubrats_case(folder: Path, reference, output) -> list[Path]:
    """Write one case; nothing when the method has no uncertainty map."""
    if output.uncertainty is None:
        return []
    folder = Path(folder)
    convention = "brats2018" if reference.convention == "brats2018" else "brats2023"
    written = [folder / f"{reference.case_id}.nii.gz"]
    write_image_atomic(to_image(regions_to_labels(output.regions, convention), reference.grid),
                       written[0])
    maps = to_qubrats(output.uncertainty)
    for index, region in enumerate(REGIONS):
        path = folder / f"{reference.case_id}_unc_{SUFFIXES[region]}.nii.gz"
        write_image_atomic(to_image(maps[index], reference.grid), path)
        written.append(path)
    return written
