"""Cases in any storage orientation: in and out of the canonical (axial) orientation.

The 2D network works along array axis 0 and was trained on BraTS volumes, which are
stored axially with an identity direction (ITK's "LPS": index axes point to the
patient's left, posterior, superior). A sagittal or coronal acquisition, or one with
flipped axes, is brought to that orientation with SimpleITK's `DICOMOrient` (a
permutation and flips of the voxel axes, no resampling, so nothing is interpolated),
segmented there, and every output is brought back to the input's own grid and
direction by the inverse permutation and flips: the result is voxel for voxel on the
input's grid, and the boxes keep their place in RAS.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import SimpleITK as sitk

from ..files.io import Case
from .kernels import Box

# The orientation of the training data (BraTS): axial slices along array axis 0.
CANONICAL = "LPS"


@dataclass(frozen=True)
class Reorientation:
    """How an input's voxel axes map onto the canonical ones (numpy (z, y, x) order):
    canonical = flip(transpose(input, order), flips); `code` is the input's orientation
    (ITK letters, e.g. "ASL" for a sagittal volume)."""

    order: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    code: str

    @property
    def identity(self) -> bool:
        return self.order == (0, 1, 2) and not any(self.flips)

    def forward(self, array: np.ndarray) -> np.ndarray:
        """(..., Z, Y, X) on the input's axes -> the canonical axes."""
        lead = array.ndim - 3
        out = np.transpose(array, (*range(lead), *(lead + a for a in self.order)))
        flip_axes = tuple(lead + a for a, f in enumerate(self.flips) if f)
        return np.ascontiguousarray(np.flip(out, flip_axes) if flip_axes else out)

    def backward(self, array: np.ndarray) -> np.ndarray:
        """(..., z, y, x) on the canonical axes -> the input's axes."""
        lead = array.ndim - 3
        flip_axes = tuple(lead + a for a, f in enumerate(self.flips) if f)
        array = np.flip(array, flip_axes) if flip_axes else array
        inverse = np.argsort(self.order)
        return np.ascontiguousarray(
            np.transpose(array, (*range(lead), *(lead + int(a) for a in inverse))))

    def box_backward(self, box: Box, canonical_shape) -> Box:
        """A box in canonical voxels (z, y, x) -> the same voxels on the input's axes."""
        start, size = [0, 0, 0], [0, 0, 0]
        for axis, source in enumerate(self.order):
            first = box.start[axis]
            if self.flips[axis]:
                first = canonical_shape[axis] - box.start[axis] - box.size[axis]
            start[source], size[source] = int(first), int(box.size[axis])
        return Box(box.region, box.rank, box.score, tuple(start), tuple(size))


def reorientation(reference: sitk.Image) -> Reorientation:
    """The permutation and flips `DICOMOrient` applies to bring `reference` to CANONICAL."""
    orienter = sitk.DICOMOrientImageFilter()
    orienter.SetDesiredCoordinateOrientation(CANONICAL)
    # Executed on a one-voxel-per-axis copy of the geometry: only the axes matter here.
    probe = sitk.Image([2, 2, 2], sitk.sitkUInt8)
    probe.SetDirection(reference.GetDirection())
    orienter.Execute(probe)
    permute_xyz, flips_xyz = orienter.GetPermuteOrder(), orienter.GetFlipAxes()
    # ITK's output axis i is input axis permute[i], in (x, y, z) order; numpy's axis a
    # is ITK's axis 2 - a.
    order = tuple(2 - int(permute_xyz[2 - a]) for a in range(3))
    flips = tuple(bool(flips_xyz[2 - a]) for a in range(3))
    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
        reference.GetDirection())
    return Reorientation(order, flips, code)


def to_canonical(case: Case) -> tuple[Case, Reorientation]:
    """The case in the canonical orientation (the case itself when it already is)."""
    turn = reorientation(case.reference)
    if turn.identity:
        return case, turn
    reference = sitk.DICOMOrient(case.reference, CANONICAL)
    spacing = tuple(float(s) for s in reversed(reference.GetSpacing()))
    return replace(case, image=turn.forward(case.image), reference=reference,
                   spacing=spacing), turn


MAPS = ("probabilities", "probabilities_2d", "probabilities_3d", "uncertainty",
        "uncertainty_raw", "labels", "flair")


def result_to_input(result, turn: Reorientation, case: Case):
    """A CaseResult made on the canonical grid -> the input's grid, direction and boxes
    (in place; returned). `case` is the input as loaded."""
    if turn.identity:
        return result
    canonical_shape = result.labels.shape
    for name in MAPS:
        array = getattr(result, name)
        if array is not None:
            setattr(result, name, turn.backward(array))
    result.boxes = [turn.box_backward(b, canonical_shape) for b in result.boxes]
    result.reference = case.reference
    return result


def describe(turn: Reorientation) -> dict:
    """The report.json record of the orientation handling."""
    return {"input": turn.code, "processed": CANONICAL, "reoriented": not turn.identity,
            "axes_order_zyx": list(turn.order), "flipped_zyx": list(turn.flips)}
