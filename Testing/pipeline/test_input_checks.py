"""Inputs not prepared as the model expects are named, with --force to run anyway."""

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk

from uncertaintyseg.commands.cli import main
from uncertaintyseg.errors import InputError
from uncertaintyseg.inputs.input_checks import check_case, findings
from uncertaintyseg.files.io import load_case, write_image_atomic
from uncertaintyseg.files.phantom import write_phantom_case

# A wide field of view at a coarse grid: 160 mm a side, 4096 ml, the brain ~330 ml.
SHAPE, SPACING = (20, 40, 40), (8.0, 4.0, 4.0)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = write_phantom_case(tmp_path_factory.mktemp("checks"), seed=4, shape=SHAPE,
                                spacing=SPACING)
    return load_case(case_dir=folder)


def _with_head(case):
    # The scalp and skull left in: every voxel of the field of view non-zero.
    rng = np.random.default_rng(1)
    outside = case.image == 0
    image = np.where(outside, rng.uniform(50, 150, case.image.shape), case.image)
    return replace(case, image=image.astype(np.float32))


def test_a_prepared_case_passes(case):
    assert findings(case) == [] and check_case(case) == []


def test_not_skull_stripped(case):
    (message,) = findings(_with_head(case))
    assert "not skull-stripped" in message and "4096 ml" in message
    assert str(case.paths["flair"].parent) in message


def test_not_co_registered(case):
    image = case.image.copy()
    image[2] = np.roll(image[2], 12, axis=2)  # T1ce shifted by 48 mm
    (message,) = findings(replace(case, image=image))
    assert "not co-registered" in message and str(case.paths["t1ce"]) in message


def test_intensities_that_are_not_mri(case):
    image = case.image.copy()
    image[0] = np.where(image[0] != 0, image[0] - 1000.0, 0.0)  # CT-like values
    brain = image[3] > 0
    image[3] = np.where(brain, 1.0 + (image[3] > np.median(image[3][brain])), 0.0)  # labels
    found = findings(replace(case, image=image))
    assert len(found) == 2
    assert str(case.paths["flair"]) in found[0] and "negative" in found[0]
    assert str(case.paths["t2"]) in found[1] and "label map or a mask" in found[1]


def test_force_runs_anyway_and_reports(case):
    with pytest.raises(InputError, match="--force"):
        check_case(_with_head(case))
    assert len(check_case(_with_head(case), force=True)) == 1


def test_cli_refuses_then_forces(case, tmp_path, capsys):
    head = _with_head(case)
    folder = tmp_path / "Head_0001"
    for index, modality in enumerate(case.paths):
        image = sitk.GetImageFromArray(head.image[index])
        image.CopyInformation(case.reference)
        write_image_atomic(image, folder / f"Head_0001_{modality}.nii.gz")
    argv = ["predict", "--case", str(folder), "--model", "analytic", "--device", "cpu",
            "--projections", "2", "--max-boxes", "1", "--no-snapshot", "--progress", "none"]
    assert main([*argv, "--out", str(tmp_path / "refused")]) == 2
    assert "not skull-stripped" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    assert main([*argv, "--out", str(tmp_path / "forced"), "--force"]) == 0
    import json

    report = json.loads((tmp_path / "forced" / "report.json").read_text("utf-8"))
    assert len(report["input"]["warnings"]) == 1
