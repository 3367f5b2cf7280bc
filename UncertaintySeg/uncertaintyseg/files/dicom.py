"""DICOM series as input: a folder holding one series is read as one 3D volume
(SimpleITK's series reader, slices sorted by position), with the same validation as a
NIfTI file (io.read_image calls `read_folder` for any folder it is given).
"""
from __future__ import annotations

import re
from pathlib import Path

import SimpleITK as sitk

from .io import InputError, read_image


def read_folder(folder: Path) -> sitk.Image:
    """A modality folder: its DICOM series, or (no series there) its one NIfTI file."""
    nifti = [p for p in folder.glob("*.nii*") if is_nifti_name(p) and not p.name.startswith(".")]
    if len(nifti) == 1 and not has_dicom_series(folder):
        return read_image(nifti[0])
    return read_dicom_series(folder)


def is_nifti_name(path: Path) -> bool:
    return re.search(r"\.nii(\.gz)?$", path.name, re.IGNORECASE) is not None


def has_dicom_series(folder: Path) -> bool:
    """True when GDCM finds a DICOM series in `folder`.

    ITK's warning display is off while it looks: for a folder without DICOM, GDCM
    prints "No Series were found" to stderr, which came before (and hid) the error that
    names the real problem, such as a missing modality file.
    """
    display = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    except RuntimeError:
        return False
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(display)


def read_dicom_series(folder) -> sitk.Image:
    """The one DICOM series in `folder` as a 3D image (SimpleITK's series reader: slices
    sorted by position); InputError when the folder holds none or several series."""
    folder = Path(folder)
    reader = sitk.ImageSeriesReader()
    try:
        series = reader.GetGDCMSeriesIDs(str(folder))
    except RuntimeError as err:
        raise InputError(f"{folder}: cannot be read as a DICOM folder ({err}).") from err
    if not series:
        raise InputError(f"{folder}: a folder without a DICOM series. Give a NIfTI file, "
                         f"or a folder holding the DICOM files of one series.")
    if len(series) > 1:
        raise InputError(f"{folder}: holds {len(series)} DICOM series. Put each series in "
                         f"its own folder and give the one of this modality.")
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
    try:
        return reader.Execute()
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1]
        raise InputError(f"{folder}: the DICOM series cannot be read ({reason}). Export "
                         f"it again.") from err


def dicom_hint(case_dir: Path) -> str:
    dicom = [p for p in case_dir.iterdir() if p.is_file() and p.suffix.lower() in (".dcm", ".ima")]
    if dicom:
        found = f"{len(dicom)} DICOM files ({dicom[0].name}, ...)"
    elif has_dicom_series(case_dir):  # scanner exports often have no file extension
        found = "DICOM files"
    else:
        return ""
    return (f" The folder holds {found}: put each modality's series in its own sub-folder "
            f"(flair/, t1/, t1ce/, t2/), or give --flair DIR --t1 DIR --t1ce DIR --t2 DIR.")
