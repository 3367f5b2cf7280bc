"""Inputs we cannot read are named for what they are (issue 9, item 8): DICOM series read
directly, an unreadable file reported as a permission problem, a constant modality
warned about, an MRI given to `metrics` as the reference refused in a line, `convert`
refusing a second dataset with one id."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from uncertaintyseg import MODALITIES
from uncertaintyseg.commands import cli
from uncertaintyseg.files import io
from uncertaintyseg.files.phantom import make_phantom, write_phantom_case

from test_output_safety import unprivileged

SPACING_XYZ = (0.9, 1.1, 2.5)
ORIGIN_XYZ = (10.0, -20.0, 30.5)


def write_dicom_series(volume: np.ndarray, folder: Path, series: int) -> Path:
    """A (Z, Y, X) int16 volume as an MR DICOM series, one file per slice, written by
    SimpleITK (GDCM) with the tags a scanner export carries for position and order."""
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(volume.astype(np.int16))
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin(ORIGIN_XYZ)
    uid = f"1.2.826.0.1.3680043.2.1125.{os.getpid()}.{series}"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    orientation = "\\".join(str(v) for v in (*direction[0::3], *direction[1::3]))
    for index in range(image.GetDepth()):
        piece = image[:, :, index]
        position = image.TransformIndexToPhysicalPoint((0, 0, index))
        for tag, value in (("0008|0060", "MR"), ("0020|000e", uid),
                           ("0020|000d", uid + ".0"), ("0020|0013", str(index + 1)),
                           ("0020|0032", "\\".join(str(v) for v in position)),
                           ("0020|0037", orientation), ("0018|0050", str(SPACING_XYZ[2])),
                           ("0008|0018", f"{uid}.{index + 1}")):
            piece.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{index:03d}.dcm"))
        writer.Execute(piece)
    return folder


def _phantom_volumes(shape=(12, 40, 36)):
    phantom = make_phantom(shape=shape, seed=3)
    return {m: np.round(phantom.image[i]).astype(np.int16) for i, m in enumerate(MODALITIES)}


def test_a_dicom_series_folder_reads_as_the_volume(tmp_path):
    volumes = _phantom_volumes()
    folder = write_dicom_series(volumes["flair"], tmp_path / "flair", 1)
    image = io.read_image(folder)
    assert np.array_equal(sitk.GetArrayFromImage(image), volumes["flair"])
    assert np.allclose(image.GetSpacing(), SPACING_XYZ, atol=1e-4)
    assert np.allclose(image.GetOrigin(), ORIGIN_XYZ, atol=1e-4)


def test_case_with_a_dicom_sub_folder_per_modality_and_explicit_folders(tmp_path):
    volumes = _phantom_volumes()
    case_dir = tmp_path / "Patient7"
    names = {"flair": "FLAIR", "t1": "t1", "t1ce": "Patient7_t1ce", "t2": "t2w"}
    for series, modality in enumerate(MODALITIES):
        write_dicom_series(volumes[modality], case_dir / names[modality], series)
    case = io.load_case(case_dir=case_dir)
    for index, modality in enumerate(MODALITIES):
        assert np.array_equal(case.image[index], volumes[modality])
    assert case.case_id == "Patient7" and case.spacing == pytest.approx(SPACING_XYZ[::-1])
    explicit = io.load_case(paths={m: case_dir / names[m] for m in MODALITIES})
    assert np.array_equal(explicit.image, case.image)


def test_a_modality_folder_may_hold_its_one_nifti_file(tmp_path):
    case = write_phantom_case(tmp_path / "cases", seed=1, shape=(10, 24, 20))
    nested = tmp_path / "nested"
    for modality in MODALITIES:
        (nested / modality).mkdir(parents=True)
        source = next(case.glob(f"*_{modality}.nii.gz"))
        source.rename(nested / modality / source.name)
    loaded = io.load_case(case_dir=nested)
    assert loaded.image.shape == (4, 10, 24, 20) and loaded.image[0].any()


def test_dicom_files_loose_in_the_case_folder_are_explained(tmp_path):
    volumes = _phantom_volumes((4, 16, 16))
    folder = write_dicom_series(volumes["flair"], tmp_path / "case", 1)
    with pytest.raises(io.InputError, match="holds 4 DICOM files.*own sub-folder"):
        io.find_case_files(folder)
    for path in folder.iterdir():   # as scanners export them: no file extension
        path.rename(path.with_suffix(""))
    with pytest.raises(io.InputError, match="holds DICOM files.*own sub-folder"):
        io.find_case_files(folder)


def test_two_series_in_one_folder_and_no_series_are_refused(tmp_path):
    volumes = _phantom_volumes((4, 16, 16))
    write_dicom_series(volumes["flair"], tmp_path / "mixed", 1)
    for path in write_dicom_series(volumes["t1"], tmp_path / "other", 2).iterdir():
        path.rename(tmp_path / "mixed" / f"b_{path.name}")
    with pytest.raises(io.InputError, match="holds 2 DICOM series"):
        io.read_image(tmp_path / "mixed")
    (tmp_path / "empty").mkdir()
    with pytest.raises(io.InputError, match="without a DICOM series"):
        io.read_image(tmp_path / "empty")


def test_a_file_we_may_not_read_is_a_permission_problem(tmp_path):
    import shutil
    import tempfile

    # pytest's tmp_path sits in a root-only folder: `nobody` needs a way in.
    top = Path(tempfile.mkdtemp(prefix="uncertaintyseg-read-"))
    top.chmod(0o755)
    try:
        case = write_phantom_case(top, seed=1, shape=(10, 24, 20))
        for path in (top, case):
            path.chmod(0o755)
        flair = next(case.glob("*_flair.nii.gz"))
        flair.chmod(0o000)
        with unprivileged():
            with pytest.raises(io.InputError, match="permission denied") as caught:
                io.read_image(flair)
            with pytest.raises(io.InputError, match="permission denied"):
                io.read_image(tmp_path / "x_flair.nii.gz")   # a folder it may not enter
        assert "truncated" not in str(caught.value)
    finally:
        shutil.rmtree(top)


def test_a_constant_modality_is_warned_about(tmp_path):
    case = write_phantom_case(tmp_path / "cases", seed=1, shape=(10, 24, 20))
    t2 = next(case.glob("*_t2.nii.gz"))
    reference = sitk.ReadImage(str(t2))
    flat = sitk.GetImageFromArray(np.full(sitk.GetArrayFromImage(reference).shape, 7,
                                          np.float32))
    flat.CopyInformation(reference)
    sitk.WriteImage(flat, str(t2))
    with pytest.warns(io.InputWarning, match="carries no image information") as caught:
        io.load_case(case_dir=case)
    assert caught[0].filename == str(t2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        io.load_case(case_dir=write_phantom_case(tmp_path / "ok", seed=2, shape=(10, 24, 20)))


def test_an_mri_given_to_metrics_as_reference_gets_a_short_message(tmp_path, capsys):
    case = write_phantom_case(tmp_path / "cases", seed=1, shape=(10, 24, 20))
    flair = next(case.glob("*_flair.nii.gz"))
    image = sitk.ReadImage(str(flair))
    as_integers = sitk.Cast(image, sitk.sitkInt16)  # as a scanner stores it
    sitk.WriteImage(as_integers, str(flair))
    seg = next(case.glob("*_seg.nii.gz"))
    code = cli.main(["metrics", "--ref", str(flair), "--pred", str(seg)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INPUT_ERROR
    assert len(err) < 400 and "not a label map" in err and str(flair) in err


def test_convert_refuses_a_second_dataset_with_the_same_id(tmp_path):
    from uncertaintyseg.files.convert import convert_dataset

    source = tmp_path / "brats"
    for seed in range(2):
        write_phantom_case(source, seed=seed, shape=(10, 24, 20))
    raw = tmp_path / "raw"
    first = convert_dataset(source, raw, dataset_id=123, name="First", n_val=1)
    assert convert_dataset(source, raw, dataset_id=123, name="First", n_val=1) == first
    with pytest.raises(io.InputError, match="already holds Dataset123_First"):
        convert_dataset(source, raw, dataset_id=123, name="Second", n_val=1)
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset123_First"]
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(io.InputError, match="file.txt is a file"):
        convert_dataset(source, tmp_path / "file.txt" / "raw", dataset_id=124, n_val=1)


def test_predict_runs_on_dicom_series_folders(tmp_path, capsys):
    volumes = _phantom_volumes((16, 48, 40))
    folders = {m: write_dicom_series(volumes[m], tmp_path / "dicom" / m, i)
               for i, m in enumerate(MODALITIES)}
    out = tmp_path / "out"
    argv = ["predict", "--out", str(out), "--progress", "none", "--model", "analytic",
            "--projections", "3", "--kernel-mm", "12", "12", "24", "--max-boxes", "1",
            "--no-snapshot"]
    for modality, folder in folders.items():
        argv += [f"--{modality}", str(folder)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    seg = sitk.ReadImage(str(out / "segmentation.nii.gz"))
    assert seg.GetSize() == (40, 48, 16)
    assert np.allclose(seg.GetSpacing(), SPACING_XYZ, atol=1e-4)
    assert np.allclose(seg.GetOrigin(), ORIGIN_XYZ, atol=1e-4)
