"""Tests of uncertaintyseg.files.io: case discovery, validation, labels, geometry, writing."""
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from uncertaintyseg import MODALITIES
from uncertaintyseg.files import io, label_maps

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "brats2018"
SHAPE = (6, 7, 8)  # (Z, Y, X)
NAMES_2018 = {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2"}
NAMES_2023 = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w"}
# A rotation about z plus anisotropic spacing and an off-centre origin.
ANGLE = 0.3
DIRECTION = (np.cos(ANGLE), -np.sin(ANGLE), 0.0, np.sin(ANGLE), np.cos(ANGLE), 0.0,
             0.0, 0.0, 1.0)
SPACING_XYZ = (0.9, 1.1, 2.5)
ORIGIN_XYZ = (10.0, -20.0, 30.5)


def write(path, array, spacing=SPACING_XYZ, origin=ORIGIN_XYZ, direction=DIRECTION):
    image = sitk.GetImageFromArray(np.asarray(array))
    if image.GetDimension() == 3:
        image.SetSpacing(spacing)
        image.SetOrigin(origin)
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return Path(path)


def make_case(folder, naming="brats2018", seed=0, ext=".nii.gz", labels=None):
    """Four random positive volumes (+ seg) named in ``naming``; returns the arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names, sep = (NAMES_2018, "_") if naming == "brats2018" else (NAMES_2023, "-")
    arrays = {}
    for modality in MODALITIES:
        arrays[modality] = rng.uniform(1, 100, SHAPE).astype(np.float32)
        write(folder / f"case{sep}{names[modality]}{ext}", arrays[modality])
    if labels is not None:
        write(folder / f"case{sep}seg{ext}", labels.astype(np.uint8))
    return arrays


def paths_2018(folder):
    return {m: folder / f"case_{NAMES_2018[m]}.nii.gz" for m in MODALITIES}


# ---- case discovery and naming ---------------------------------------------------

def test_brats2018_names_found_and_loaded_in_modality_order(tmp_path):
    labels = np.zeros(SHAPE, np.uint8)
    arrays = make_case(tmp_path / "c1", "brats2018", labels=labels)
    found = io.find_case_files(tmp_path / "c1")
    assert list(found) == list(MODALITIES)
    assert found["t1"].name == "case_t1.nii.gz"
    assert found["t1ce"].name == "case_t1ce.nii.gz"
    case = io.load_case(tmp_path / "c1")
    assert case.naming == "brats2018"
    assert case.case_id == "c1"
    assert case.image.shape == (4,) + SHAPE and case.image.dtype == np.float32
    for index, modality in enumerate(MODALITIES):
        np.testing.assert_array_equal(case.image[index], arrays[modality])
    assert case.spacing == pytest.approx(tuple(reversed(SPACING_XYZ)))


def test_brats2023_names_found_and_loaded(tmp_path):
    arrays = make_case(tmp_path / "c2", "brats2023", ext=".nii", labels=np.zeros(SHAPE))
    found = io.find_case_files(tmp_path / "c2")
    assert found["flair"].name == "case-t2f.nii"
    assert found["t1ce"].name == "case-t1c.nii"
    case = io.load_case(tmp_path / "c2")
    assert case.naming == "brats2023"
    np.testing.assert_array_equal(case.image[MODALITIES.index("t2")], arrays["t2"])


def test_explicit_paths_and_naming_override(tmp_path):
    make_case(tmp_path, "brats2018")
    paths = paths_2018(tmp_path)
    by_list = io.load_case(paths=[paths[m] for m in MODALITIES])
    by_dict = io.load_case(paths=paths, naming="brats2023")
    np.testing.assert_array_equal(by_list.image, by_dict.image)
    assert by_list.case_id == "case" and by_list.naming == "brats2018"
    assert by_dict.naming == "brats2023"
    with pytest.raises(ValueError):
        io.load_case(tmp_path, paths=paths)


def test_missing_modality_names_folder_and_pattern(tmp_path, capfd):
    make_case(tmp_path, "brats2018")
    (tmp_path / "case_t1ce.nii.gz").unlink()
    with pytest.raises(io.InputError) as error:
        io.find_case_files(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message
    assert "*_t1ce.nii.gz" in message and "*-t1c.nii.gz" in message
    # the folder was searched for DICOM (dicom_hint) without GDCM's "No Series were
    # found" warning on stderr before the error
    assert "GDCM" not in capfd.readouterr().err


def test_two_files_for_one_modality_names_both(tmp_path):
    make_case(tmp_path, "brats2018")
    write(tmp_path / "other-t1n.nii.gz", np.ones(SHAPE, np.float32))
    with pytest.raises(io.InputError) as error:
        io.find_case_files(tmp_path)
    assert "case_t1.nii.gz" in str(error.value) and "other-t1n.nii.gz" in str(error.value)


# ---- malformed files -------------------------------------------------------------

def expect_input_error(tmp_path, bad_name, *words):
    with pytest.raises(io.InputError) as error:
        io.load_case(tmp_path)
    message = str(error.value)
    assert bad_name in message
    for word in words:
        assert word in message
    return message


def test_unreadable_file(tmp_path):
    make_case(tmp_path)
    (tmp_path / "case_t2.nii.gz").write_bytes(b"not an image at all" * 20)
    expect_input_error(tmp_path, "case_t2.nii.gz", "again")


@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_truncated_file(tmp_path, ext):
    make_case(tmp_path, ext=ext)
    path = tmp_path / f"case_flair{ext}"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_input_error(tmp_path, f"case_flair{ext}", "truncated")


def test_2d_image(tmp_path):
    make_case(tmp_path)
    write(tmp_path / "case_t1.nii.gz", np.ones(SHAPE[1:], np.float32))
    expect_input_error(tmp_path, "case_t1.nii.gz", "2D")


def test_4d_image(tmp_path):
    make_case(tmp_path)
    volume = sitk.GetImageFromArray(np.ones(SHAPE, np.float32))
    sitk.WriteImage(sitk.JoinSeries([volume, volume]), str(tmp_path / "case_t1.nii.gz"))
    expect_input_error(tmp_path, "case_t1.nii.gz", "4D")


@pytest.mark.parametrize("prop", ["size", "spacing", "origin", "direction"])
def test_grids_that_differ(tmp_path, prop):
    make_case(tmp_path)
    array, kwargs = np.ones(SHAPE, np.float32), {}
    if prop == "size":
        array = np.ones((6, 7, 9), np.float32)
    elif prop == "spacing":
        kwargs["spacing"] = (0.9, 1.1, 2.6)
    elif prop == "origin":
        kwargs["origin"] = (10.0, -20.0, 31.5)
    else:
        kwargs["direction"] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    write(tmp_path / "case_t2.nii.gz", array, **kwargs)
    expect_input_error(tmp_path, "case_t2.nii.gz", "case_flair.nii.gz", prop)


def test_grid_differences_within_tolerance_are_accepted(tmp_path):
    make_case(tmp_path)
    spacing = tuple(s * (1 + 2e-6) for s in SPACING_XYZ)
    write(tmp_path / "case_t2.nii.gz", np.ones(SHAPE, np.float32), spacing=spacing,
          origin=tuple(o + 1e-5 for o in ORIGIN_XYZ))
    assert io.load_case(tmp_path).image.shape == (4,) + SHAPE


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_voxels(tmp_path, bad):
    make_case(tmp_path)
    array = np.ones(SHAPE, np.float32)
    array[2, 3, 4] = bad
    write(tmp_path / "case_t1ce.nii.gz", array)
    expect_input_error(tmp_path, "case_t1ce.nii.gz", "NaN or infinite")


def test_all_zero_image(tmp_path):
    make_case(tmp_path)
    write(tmp_path / "case_flair.nii.gz", np.zeros(SHAPE, np.int16))
    expect_input_error(tmp_path, "case_flair.nii.gz", "zero")


# ---- labels and regions ----------------------------------------------------------

def label_map(et_value):
    labels = np.zeros(SHAPE, np.uint8)
    labels[1:5, 1:6, 1:7] = 2
    labels[2:4, 2:5, 2:6] = et_value
    labels[2:4, 3, 3:5] = 1
    return labels


@pytest.mark.parametrize("et_value,convention", [(4, "brats2018"), (3, "brats2023")])
def test_load_labels_detects_convention(tmp_path, et_value, convention):
    make_case(tmp_path)
    path = write(tmp_path / "seg.nii.gz", label_map(et_value).astype(np.int16))
    labels, found = label_maps.load_labels(path, reference=io.load_case(tmp_path).reference)
    assert found == convention
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, label_map(et_value))


def test_labels_without_et_are_read_as_brats2018(tmp_path):
    labels = label_map(2)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert label_maps.load_labels(write(tmp_path / "seg.nii.gz", labels))[1] == "brats2018"


@pytest.mark.parametrize("bad_values", [[5], [7, -1], [3, 4]])
def test_unknown_label_values_are_named(tmp_path, bad_values):
    labels = label_map(4).astype(np.int16)
    for index, value in enumerate(bad_values):
        labels[0, 0, index] = value
    path = write(tmp_path / "seg.nii.gz", labels)
    with pytest.raises(io.InputError) as error:
        label_maps.load_labels(path)
    assert "seg.nii.gz" in str(error.value)
    for value in bad_values:
        assert str(value) in str(error.value)


def test_labels_on_another_grid(tmp_path):
    make_case(tmp_path)
    reference = io.load_case(tmp_path).reference
    path = write(tmp_path / "seg.nii.gz", label_map(4), origin=(0.0, 0.0, 0.0))
    with pytest.raises(io.InputError, match="origin"):
        label_maps.load_labels(path, reference=reference)


def test_labels_to_regions_in_both_conventions():
    labels = np.array([[[0, 1, 2, 3, 4]]], np.uint8)
    regions = label_maps.labels_to_regions(labels)
    assert regions.shape == (3, 1, 1, 5) and regions.dtype == bool
    np.testing.assert_array_equal(regions[0, 0, 0], [0, 0, 0, 1, 1])  # ET
    np.testing.assert_array_equal(regions[1, 0, 0], [0, 1, 0, 1, 1])  # TC
    np.testing.assert_array_equal(regions[2, 0, 0], [0, 1, 1, 1, 1])  # WT


def test_regions_to_labels_enforces_nesting():
    # Columns: WT only, WT+TC, all three, ET alone, TC alone, ET+TC without WT,
    # ET+WT without TC, nothing.
    et = [0, 0, 1, 1, 0, 1, 1, 0]
    tc = [0, 1, 1, 0, 1, 1, 0, 0]
    wt = [1, 1, 1, 0, 0, 0, 1, 0]
    regions = np.array([et, tc, wt], bool)[:, None, None, :]
    expected_2018 = [2, 1, 4, 0, 0, 0, 2, 0]
    np.testing.assert_array_equal(label_maps.regions_to_labels(regions, "brats2018")[0, 0],
                                  expected_2018)
    expected_2023 = [3 if v == 4 else v for v in expected_2018]
    np.testing.assert_array_equal(label_maps.regions_to_labels(regions, "brats2023")[0, 0],
                                  expected_2023)
    with pytest.raises(ValueError):
        label_maps.regions_to_labels(regions, "brats2020")


@pytest.mark.parametrize("et_value,convention", [(4, "brats2018"), (3, "brats2023")])
def test_labels_regions_round_trip(et_value, convention):
    rng = np.random.default_rng(1)
    labels = rng.choice(np.array([0, 1, 2, et_value], np.uint8), size=(5, 9, 11))
    regions = label_maps.labels_to_regions(labels)
    assert np.all(regions[0] <= regions[1]) and np.all(regions[1] <= regions[2])
    np.testing.assert_array_equal(label_maps.regions_to_labels(regions, convention), labels)


# ---- writing with geometry ---------------------------------------------------------

def reference_image():
    image = sitk.Image([SHAPE[2], SHAPE[1], SHAPE[0]], sitk.sitkInt16)
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin(ORIGIN_XYZ)
    image.SetDirection(DIRECTION)
    return image


def assert_same_geometry(image, reference):
    assert image.GetSize() == reference.GetSize()
    np.testing.assert_allclose(image.GetSpacing(), reference.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=1e-6)


def test_3d_image_written_with_reference_geometry(tmp_path):
    reference = reference_image()
    labels = label_map(4)
    io.write_image_atomic(io.to_image(labels, reference), tmp_path / "out" / "seg.nii.gz")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["seg.nii.gz"]
    back = sitk.ReadImage(str(tmp_path / "out" / "seg.nii.gz"))
    assert_same_geometry(back, reference)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), labels)


def test_4d_image_keeps_geometry_on_its_first_three_axes(tmp_path):
    reference = reference_image()
    probabilities = np.random.default_rng(2).random((3,) + SHAPE).astype(np.float32)
    path = tmp_path / "probabilities.nii.gz"
    io.write_image_atomic(io.to_image(probabilities, reference), path)
    back = sitk.ReadImage(str(path))
    assert back.GetDimension() == 4 and back.GetSize() == reference.GetSize() + (3,)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), probabilities)
    for channel in range(3):
        extracted = sitk.Extract(back, list(reference.GetSize()) + [0], [0, 0, 0, channel])
        assert_same_geometry(extracted, reference)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(extracted),
                                      probabilities[channel])
    # nibabel sees (X, Y, Z, channel), as the architecture's contract says.
    np.testing.assert_allclose(nib.load(path).get_fdata(),
                               probabilities.transpose(3, 2, 1, 0), rtol=1e-6)


def test_to_image_rejects_a_wrong_shape():
    with pytest.raises(ValueError):
        io.to_image(np.zeros((6, 7, 9)), reference_image())


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "seg.unknownformat"
    path.write_bytes(b"previous result")
    with pytest.raises(io.OutputError, match="seg.unknownformat: could not be written"):
        # SimpleITK has no writer for this extension: the write fails midway.
        io.write_image_atomic(io.to_image(label_map(4), reference_image()), path)
    assert path.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["seg.unknownformat"]


# ---- a real case -------------------------------------------------------------------

def test_real_brats2018_case():
    case_dir = DATA / "Brats18_2013_11_1"
    if not case_dir.is_dir():
        pytest.skip(f"shared BraTS 2018 data not found at {DATA.resolve()}")
    case = io.load_case(case_dir)
    assert case.image.shape == (4, 155, 240, 240)
    assert case.naming == "brats2018" and case.spacing == (1.0, 1.0, 1.0)
    assert all(case.image[c].any() for c in range(4))
    labels, convention = label_maps.load_labels(case_dir / "Brats18_2013_11_1_seg.nii.gz",
                                        reference=case.reference)
    assert convention == "brats2018"
    assert set(np.unique(labels).tolist()) == {0, 1, 2, 4}
    regions = label_maps.labels_to_regions(labels)
    np.testing.assert_array_equal(label_maps.regions_to_labels(regions, convention), labels)


def test_explicit_paths_refuse_one_file_for_two_modalities(tmp_path):
    from uncertaintyseg.files.phantom import write_phantom_case

    case = write_phantom_case(tmp_path, seed=0, shape=(8, 24, 20))
    files = io.find_case_files(case)
    paths = dict(files, t1=files["flair"])
    with pytest.raises(io.InputError, match="both flair and t1"):
        io.load_case(paths=paths)


def test_explicit_paths_refuse_swapped_names(tmp_path):
    from uncertaintyseg.files.phantom import write_phantom_case

    case = write_phantom_case(tmp_path, seed=0, shape=(8, 24, 20))
    files = io.find_case_files(case)
    swapped = dict(files, flair=files["t1ce"], t1ce=files["flair"])
    with pytest.raises(io.InputError, match="its name says t1ce"):
        io.load_case(paths=swapped)
