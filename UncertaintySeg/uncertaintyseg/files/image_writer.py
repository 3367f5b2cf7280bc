"""Writing images so that nothing half-written ever carries a final name.

Workaround at the heart of it: on a full disk SimpleITK prints "** ERROR: NWAD" and
returns without raising, leaving a truncated file. Every write is verified here.
"""
from __future__ import annotations

import os
import uuid
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from ..errors import OutputError
# One definition of the atomic text write; callers of this module's name keep it.
from .output_safety import atomic_path
from .output_safety import space_note as _space_note
from .output_safety import write_text_atomic  # noqa: F401


def _expected_nifti_bytes(path: Path) -> int:
    """Header plus voxel bytes the NIfTI header of `path` announces."""
    proxy = nib.load(path).dataobj  # reads the header only
    return int(proxy.offset) + int(np.prod(proxy.shape)) * proxy.dtype.itemsize


def verify_written_image(path, shown=None) -> None:
    """OutputError unless the image file at `path` was written whole; the message names
    `shown` (the final name of a file written under a temporary one), else `path`.

    Workaround: on a full disk SimpleITK prints "** ERROR: NWAD" and returns without
    raising, leaving a truncated file. A .nii.gz file is checked against the gzip
    trailer (its last 4 bytes hold the uncompressed size mod 2**32), a .nii file against
    its size; any other format must at least have a readable header.
    """
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith(".nii.gz"):
            with open(path, "rb") as stream:
                stream.seek(-4, os.SEEK_END)
                stored = int.from_bytes(stream.read(4), "little")
            whole = stored == _expected_nifti_bytes(path) % (1 << 32)
        elif name.endswith(".nii"):
            whole = path.stat().st_size >= _expected_nifti_bytes(path)
        else:
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            whole = path.stat().st_size > 0
    except (OSError, EOFError, RuntimeError, zlib.error,
            nib.filebasedimages.ImageFileError):
        whole = False
    if not whole:
        shown = Path(shown or path)
        raise OutputError(f"{shown}: the image was not written whole ({_space_note(shown)}). "
                          "Free disk space or choose another output folder, then run again.")


def write_image_verified(image: sitk.Image, path, shown=None) -> None:
    """sitk.WriteImage (gzip for .nii.gz), then `verify_written_image`; OutputError
    (and no file left) if it was not written whole. Messages name `shown` or `path`."""
    path = Path(path)
    try:
        sitk.WriteImage(image, str(path), useCompression=path.name.lower().endswith(".gz"))
        verify_written_image(path, shown)
    except RuntimeError as err:
        path.unlink(missing_ok=True)
        reason = str(err).strip().splitlines()[-1]
        raise OutputError(f"{shown or path}: could not be written ({reason}). Check the folder's "
                          f"permissions and free space.") from err
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def write_image_atomic(image: sitk.Image, path) -> None:
    """Write ``image`` to ``path`` through a temporary file in the same folder.

    A cancelled or failed write (a full disk included) leaves no file under ``path``.
    The temporary name keeps the extension so SimpleITK picks the format (and gzip for
    .nii.gz).
    """
    with atomic_path(path) as temporary:
        write_image_verified(image, temporary, shown=path)


# Rows of a map quantised at once: bounds the float temporaries to a slab of the volume.
_QUANTISE_SLICES = 16


def quantise(maps: np.ndarray, slope: float, inter: float) -> np.ndarray:
    """uint16 q with q * slope + inter nearest to each value of `maps` (C, Z, Y, X),
    clipped to the range uint16 spans. Computed a slab of slices at a time, so no float
    copy of the whole map is made (a 0.5 mm volume's map is over 1 GB); `maps` may be
    a read-only broadcast view."""
    top = np.iinfo(np.uint16).max
    out = np.empty(maps.shape, dtype=np.uint16)
    for channel in range(maps.shape[0]):
        for start in range(0, maps.shape[1], _QUANTISE_SLICES):
            rows = (channel, slice(start, start + _QUANTISE_SLICES))
            scaled = (np.asarray(maps[rows], dtype=np.float64) - inter) / slope
            np.rint(scaled, out=scaled)
            np.clip(scaled, 0, top, out=scaled)
            out[rows] = scaled
    return out


def _itk_header(reference: sitk.Image, folder: Path) -> nib.Nifti1Header:
    """The NIfTI header SimpleITK writes for a 4D image on `reference`'s grid: the
    qform/sform only depend on origin, spacing and direction, so a one-voxel image
    gives them, and a file written with it reads back on the same grid in ITK (and
    Slicer) as one written by SimpleITK itself."""
    probe = sitk.JoinSeries([sitk.Image([1, 1, 1], sitk.sitkUInt16)])
    probe.SetOrigin((*reference.GetOrigin(), 0.0))
    probe.SetSpacing((*reference.GetSpacing(), 1.0))
    direction = np.eye(4)
    direction[:3, :3] = np.reshape(reference.GetDirection(), (3, 3))
    probe.SetDirection(direction.ravel().tolist())
    path = folder / f".probe-{os.getpid()}-{uuid.uuid4().hex[:8]}.nii"
    try:
        sitk.WriteImage(probe, str(path))
        return nib.load(path).header.copy()
    finally:
        path.unlink(missing_ok=True)


def write_maps_verified(maps: np.ndarray, reference: sitk.Image, path, shown=None,
                        note: str = "", scale: tuple[float, float] | None = None) -> None:
    """Write region maps (C, Z, Y, X) as a 4D NIfTI on `reference`'s grid (4th axis =
    channel), then `verify_written_image`; no file is left if it fails.

    `scale` = (slope, inter): stored as uint16 with NIfTI scl_slope / scl_inter (every
    NIfTI reader applies them), else as float32. nibabel writes it, streaming the
    channels: SimpleITK can neither store the scaling nor write without copying the
    map twice (GetImageFromArray, JoinSeries)."""
    path = Path(path)
    header = _itk_header(reference, path.parent)
    data = (quantise(maps, *scale) if scale else np.asarray(maps, dtype=np.float32))
    header.set_data_dtype(data.dtype)
    header.set_data_shape(data.shape[::-1])
    header["descrip"] = note.encode("ascii", "replace")[:79]
    # (X, Y, Z, C) as NIfTI orders voxels: the transpose of a C-ordered array is a view.
    image = nib.Nifti1Image(data.T, None, header=header)
    image.header.set_slope_inter(*(scale or (None, None)))
    try:
        nib.save(image, path)
        verify_written_image(path, shown)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
