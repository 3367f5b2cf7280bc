"""Case input and validation, and writing images with the input's geometry.

Arrays are numpy in SimpleITK order: a volume is (Z, Y, X), a multi-channel volume
(C, Z, Y, X); spacing tuples are (sz, sy, sx) in mm. Channel order is
``MODALITIES`` (FLAIR, T1, T1ce, T2), region order ``REGIONS`` (ET, TC, WT).

Naming conventions: "brats2018" (BraTS 2017-2021 file names, ET label 4) and
"brats2023" (2023+ names, ET label 3); label maps live in ``label_maps``. Every bad
input raises ``InputError`` whose message names the file and the fix (design section 3).
"""
from __future__ import annotations

import gzip
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from .. import BRATS_SEPARATORS, BRATS_SUFFIXES, MODALITIES
# Re-exported: callers import them from io.
from ..errors import InputError, InputWarning, OutputError  # noqa: F401
# The writers live in image_writer; existing callers keep `io.write_image_atomic`.
from .image_writer import (verify_written_image, write_image_atomic,  # noqa: F401
                           write_image_verified)

BRATS2018 = "brats2018"
BRATS2023 = "brats2023"
CONVENTIONS = (BRATS2018, BRATS2023)

SUFFIXES = BRATS_SUFFIXES  # modality -> file-name suffix, per naming convention
_SUFFIX_TO_MODALITY = {
    suffix: (modality, naming)
    for naming, table in SUFFIXES.items() for modality, suffix in table.items()
}
# Greedy case part: the modality is the last token. Either separator is accepted
# for either vocabulary (renamed files), the vocabulary alone decides the naming.
_NAME_RE = re.compile(
    r"^(?P<case>.+)[_-](?P<suffix>" + "|".join(_SUFFIX_TO_MODALITY) + r")\.nii(\.gz)?$",
    re.IGNORECASE)
GRID_TOLERANCE = 1e-4


@dataclass
class Case:
    """One loaded case.

    image: float32 (4, Z, Y, X) in MODALITIES order, raw intensities.
    reference: the first modality's SimpleITK image (geometry for every output).
    spacing: (sz, sy, sx) in mm. naming: "brats2018" or "brats2023", the label
    convention written out for this case.
    """

    image: np.ndarray
    reference: sitk.Image
    spacing: tuple[float, float, float]
    paths: dict[str, Path]
    case_id: str
    naming: str


def _expected_patterns(modality: str) -> str:
    return " or ".join(f"*{BRATS_SEPARATORS[n]}{SUFFIXES[n][modality]}.nii.gz"
                       for n in CONVENTIONS)


def _match_name(path: Path) -> tuple[str, str, str] | None:
    """(modality, naming, case id) for a BraTS-style file name, else None."""
    match = _NAME_RE.match(path.name)
    if match is None:
        return None
    modality, naming = _SUFFIX_TO_MODALITY[match.group("suffix").lower()]
    return modality, naming, match.group("case")


def find_case_files(case_dir) -> dict[str, Path]:
    """Map each modality to its file in a case folder (BraTS 2017-2021 or 2023+ names).

    Files that name no modality (``*_seg``, ``-seg``, notes) are ignored; hidden
    files (macOS ``._*``) too.
    """
    case_dir = Path(case_dir)
    if not case_dir.is_dir():
        raise InputError(f"{case_dir}: not a folder. Give the folder that holds the "
                         f"four modality files of one case.")
    found: dict[str, Path] = {}
    for path in sorted(case_dir.iterdir()):
        modality = _modality_of_entry(path)
        if modality is None:
            continue
        if modality in found:
            raise InputError(
                f"{case_dir}: two files for {modality}: {found[modality].name} and "
                f"{path.name}. Keep one of them in the folder.")
        found[modality] = path
    missing = [m for m in MODALITIES if m not in found]
    if missing:
        from .dicom import dicom_hint  # it imports this module (InputError, read_image)

        expected = "; ".join(f"{m}: {_expected_patterns(m)}" for m in missing)
        raise InputError(f"{case_dir}: no file for {', '.join(missing)}. Expected file "
                         f"names ({expected}; .nii also accepted), or one DICOM series "
                         f"folder per modality named {', '.join(MODALITIES)}."
                         f"{dicom_hint(case_dir)}")
    return {m: found[m] for m in MODALITIES}


_FOLDER_NAMES = {**{m: m for m in MODALITIES},
                 **{suffix: m for suffix, (m, _) in _SUFFIX_TO_MODALITY.items()}}


def _modality_of_entry(path: Path) -> str | None:
    """The modality a case folder entry holds: a BraTS-named NIfTI file, or a sub-folder
    (a DICOM series) named after the modality (flair, t1ce, t2f, CASE_flair, ...)."""
    if path.name.startswith("."):
        return None
    if path.is_file():
        match = _match_name(path)
        return match[0] if match else None
    if path.is_dir():
        token = re.split(r"[_-]", path.name.lower())[-1]
        return _FOLDER_NAMES.get(path.name.lower(), _FOLDER_NAMES.get(token))
    return None



def _detect_naming(paths: Sequence[Path]) -> str:
    """"brats2023" when every file uses the 2023+ vocabulary, else "brats2018"."""
    matches = [_match_name(p) for p in paths]
    if all(m is not None and m[1] == BRATS2023 for m in matches):
        return BRATS2023
    return BRATS2018


def _case_paths(paths) -> dict[str, Path]:
    """Normalise explicit paths (mapping by modality or sequence in MODALITIES order)."""
    if isinstance(paths, Mapping):
        missing = [m for m in MODALITIES if m not in paths]
        if missing:
            raise InputError(f"paths: no entry for {', '.join(missing)}. Give one file "
                             f"per modality: {', '.join(MODALITIES)}.")
        result = {m: Path(paths[m]) for m in MODALITIES}
    else:
        paths = list(paths)
        if len(paths) != len(MODALITIES):
            raise InputError(f"paths: {len(paths)} files given. Give four, in the order "
                             f"{', '.join(MODALITIES)}.")
        result = dict(zip(MODALITIES, map(Path, paths)))
    _check_explicit_paths(result)
    return result


def _check_explicit_paths(paths: dict[str, Path]) -> None:
    """Refuse one file given for two modalities, or a file whose BraTS name says it is
    another modality than the one it was given for: both would run silently wrong."""
    seen: dict[Path, str] = {}
    for modality, path in paths.items():
        key = path.resolve()
        if key in seen:
            raise InputError(f"{path}: given for both {seen[key]} and {modality}. Give a "
                             f"different file for each modality.")
        seen[key] = modality
        match = _match_name(path)
        if match is not None and match[0] != modality:
            raise InputError(f"{path}: given as {modality}, but its name says {match[0]}. "
                             f"Check the order of the files (--flair --t1 --t1ce --t2).")


def _stored_bytes(path: Path) -> int:
    """Bytes in the file after decompression; gzip raises on a cut or damaged stream."""
    if not path.name.lower().endswith(".gz"):
        return path.stat().st_size
    total = 0
    with gzip.open(path, "rb") as stream:
        while chunk := stream.read(1 << 24):
            total += len(chunk)
    return total


def _non_finite_count(proxy) -> int:
    """NaN/inf voxels in a nibabel array proxy; only float or scaled data can hold them."""
    if proxy.dtype.kind not in "fc" and proxy.slope == 1 and proxy.inter == 0:
        return 0
    data = np.asanyarray(proxy)
    return int(data.size - np.count_nonzero(np.isfinite(data)))


def _check_nifti(path: Path) -> None:
    """Reject a truncated or damaged NIfTI file, or one holding NaN/inf voxels.

    Workarounds: SimpleITK 2.5 reads a NIfTI file cut short without an error
    (missing voxels become zeros) and turns NaN and inf voxels into zeros, so both
    are checked here with nibabel and gzip before SimpleITK reads the file.
    """
    if not re.search(r"\.nii(\.gz)?$", path.name, re.IGNORECASE):
        return
    try:
        proxy = nib.load(path).dataobj  # reads the header only
        expected = int(proxy.offset) + int(np.prod(proxy.shape)) * proxy.dtype.itemsize
        found = _stored_bytes(path)
        if found < expected:
            raise InputError(f"{path}: truncated NIfTI file ({found} of {expected} "
                             f"bytes). Copy or export the file again.")
        bad = _non_finite_count(proxy)
    except (OSError, EOFError, zlib.error, nib.filebasedimages.ImageFileError) as err:
        raise InputError(f"{path}: unreadable or truncated NIfTI file ({err}). Copy or "
                         f"export the file again.") from err
    if bad:
        raise InputError(f"{path}: {bad} voxels are NaN or infinite. Fix or re-export "
                         f"the image.")


def _check_3d(image: sitk.Image, path: Path) -> None:
    size = image.GetSize()
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: {image.GetNumberOfComponentsPerPixel()} values per "
                         f"voxel (vector or colour image). Give one scalar 3D volume.")
    if image.GetDimension() != 3 or min(size) < 2:
        raise InputError(f"{path}: a {image.GetDimension()}D image of size {size}, "
                         f"expected one 3D volume. Save each modality as its own 3D "
                         f"volume (no single slices, no 4D series).")


def read_image(path) -> sitk.Image:
    """Read and check one 3D scalar image; InputError if missing, damaged or not 3D."""
    path = Path(path)
    try:
        path.stat()
    except PermissionError as err:  # a folder on the way the user may not enter
        raise InputError(f"{path}: permission denied, you may not open a folder on this "
                         f"path. Ask its owner for access, or copy the file somewhere you "
                         f"may read.") from err
    except OSError:
        pass  # not there: reported below
    if path.is_dir():
        from .dicom import read_folder  # it imports this module (InputError, read_image)

        image = read_folder(path)
        _check_3d(image, path)
        return image
    if not path.is_file():
        raise InputError(f"{path}: file not found. Check the path.")
    try:
        # Opening is the one check that sees modes, ACLs and the effective user alike;
        # nibabel would report the refusal as a damaged file.
        with open(path, "rb"):
            pass
    except PermissionError as err:
        raise InputError(f"{path}: permission denied, you may not read this file. Ask "
                         f"its owner for read access, or copy it somewhere you may read.") from err
    _check_nifti(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1]
        raise InputError(f"{path}: cannot be read ({reason}). Give a NIfTI (.nii.gz) "
                         f"file or another format SimpleITK reads.") from err
    _check_3d(image, path)
    return image


def _numbers(values) -> str:
    """Plain numbers, "(0.9, 1.1, 2.5)": not numpy's "np.float64(0.9)" reprs."""
    return "(" + ", ".join(f"{float(v):g}" for v in values) + ")"


def _grid_difference(reference: sitk.Image, image: sitk.Image) -> str | None:
    """Name of the first grid property that differs, with both values; None if equal."""
    if reference.GetSize() != image.GetSize():
        return f"size {reference.GetSize()} vs {image.GetSize()}"
    sp_a, sp_b = np.array(reference.GetSpacing()), np.array(image.GetSpacing())
    if np.any(np.abs(sp_a - sp_b) > GRID_TOLERANCE * np.maximum(sp_a, sp_b)):
        return f"spacing {_numbers(sp_a)} vs {_numbers(sp_b)} mm"
    or_a, or_b = np.array(reference.GetOrigin()), np.array(image.GetOrigin())
    # Origins are compared relative to the voxel size or the coordinates' magnitude.
    scale = max(sp_a.max(), np.abs(or_a).max(), np.abs(or_b).max())
    if np.any(np.abs(or_a - or_b) > GRID_TOLERANCE * scale):
        return f"origin {_numbers(or_a)} vs {_numbers(or_b)} mm"
    di_a, di_b = np.array(reference.GetDirection()), np.array(image.GetDirection())
    if np.any(np.abs(di_a - di_b) > GRID_TOLERANCE):
        return f"direction {_numbers(di_a)} vs {_numbers(di_b)}"
    return None


# What to do about volumes of one case on different grids (the modalities of a case).
CO_REGISTER = "Resample every volume onto one grid (co-register them) first."


def check_same_grid(reference: sitk.Image, reference_name, image: sitk.Image, path,
                    fix: str = CO_REGISTER) -> None:
    """InputError naming both files, the property and `fix` if the grids differ."""
    difference = _grid_difference(reference, image)
    if difference is not None:
        raise InputError(f"{path} and {reference_name} are on different grids "
                         f"({difference}). {fix}")


def _voxels(image: sitk.Image, path: Path) -> np.ndarray:
    """float32 (Z, Y, X) voxels; InputError on NaN/inf or an all-zero image."""
    array = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        count = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise InputError(f"{path}: {count} voxels are NaN or infinite (or exceed the "
                         f"float32 range). Fix or re-export the image.")
    if not array.any():
        raise InputError(f"{path}: every voxel is zero. The file is empty; export the "
                         f"image again.")
    values = array[array != 0]
    if values.min() == values.max():
        # Runs, but the networks see no contrast in it: almost surely the wrong file.
        warnings.warn_explicit(
            f"every voxel {'' if values.size == array.size else 'of the non-zero ones '}"
            f"has the value {values.min():g}: this modality carries no image information "
            f"(a mask or a placeholder?). Check that the right file was given.",
            InputWarning, filename=str(path), lineno=0)
    return array


def _case_id(paths: dict[str, Path]) -> str:
    first = paths[MODALITIES[0]]
    match = _match_name(first)
    return match[2] if match else re.sub(r"\.nii(\.gz)?$", "", first.name, flags=re.I)


def load_case(case_dir=None, paths=None, naming: str | None = None) -> Case:
    """Load and validate the four modalities of one case.

    Give exactly one of ``case_dir`` (a folder, see ``find_case_files``) or
    ``paths`` (a mapping modality -> file, or four files in MODALITIES order).
    ``naming`` overrides the convention read from the file names.
    Returns a Case whose image is float32 (4, Z, Y, X).
    """
    if (case_dir is None) == (paths is None):
        raise ValueError("load_case: give exactly one of case_dir or paths")
    if case_dir is not None:
        paths = find_case_files(case_dir)
        case_id = Path(case_dir).name
    else:
        paths = _case_paths(paths)
        case_id = _case_id(paths)
    naming = naming or _detect_naming(list(paths.values()))
    if naming not in CONVENTIONS:
        raise ValueError(f"naming must be one of {CONVENTIONS}, not {naming!r}")
    # One modality at a time into one array: holding the four images and their arrays
    # at once before stacking them costs three times the case (4.5 GB at 0.5 mm).
    reference = read_image(paths[MODALITIES[0]])
    image = np.empty((len(MODALITIES), *reversed(reference.GetSize())), dtype=np.float32)
    image[0] = _voxels(reference, paths[MODALITIES[0]])
    for index, modality in enumerate(MODALITIES[1:], start=1):
        other = read_image(paths[modality])
        check_same_grid(reference, paths[MODALITIES[0]], other, paths[modality])
        image[index] = _voxels(other, paths[modality])
        del other
    spacing = tuple(float(s) for s in reversed(reference.GetSpacing()))
    return Case(image=image, reference=reference, spacing=spacing, paths=paths,
                case_id=case_id, naming=naming)


def to_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """numpy (Z, Y, X) -> 3D image, or (C, Z, Y, X) -> 4D image (4th axis = channel).

    The (first three) axes carry the reference's origin, spacing and direction;
    the channel axis has spacing 1 and origin 0. bool arrays are written as uint8.
    """
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    grid = tuple(reversed(reference.GetSize()))
    if array.ndim == 3 and array.shape == grid:
        image = sitk.GetImageFromArray(array, isVector=False)
        image.CopyInformation(reference)
        return image
    if array.ndim == 4 and array.shape[1:] == grid:
        return sitk.JoinSeries([to_image(channel, reference) for channel in array])
    raise ValueError(f"to_image: array of shape {array.shape} does not fit the "
                     f"reference grid (Z, Y, X) = {grid}")
