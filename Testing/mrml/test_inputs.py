"""Choosing the four volumes by name, the grid check, and writing them for the pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from mrml_helpers import SLICER_CORE
from UncertaintySegLib.inputs import (GridMismatchError, VolumeSelection, auto_pick,
                                      guess_modality, naming_from_names, write_inputs)


@pytest.mark.parametrize("name, modality", [
    ("Brats18_2013_11_1_flair", "flair"), ("Brats18_2013_11_1_t1", "t1"),
    ("Brats18_2013_11_1_t1ce", "t1ce"), ("Brats18_2013_11_1_t2", "t2"),
    ("BraTS-GLI-00000-000-t2f", "flair"), ("BraTS-GLI-00000-000-t1n", "t1"),
    ("BraTS-GLI-00000-000-t1c", "t1ce"), ("BraTS-GLI-00000-000-t2w", "t2"),
    ("T2-FLAIR axial", "flair"), ("t2_flair", "flair"), ("T1 post contrast", "t1ce"),
    ("T1+C", "t1ce"), ("T1Gd", "t1ce"), ("MPRAGE", "t1"), ("T2w TSE", "t2"),
    ("3: T1 pre", "t1"), ("CT head", None), ("Segmentation", None),
])
def test_guess_modality(name, modality):
    assert guess_modality(name) == modality


def test_auto_pick_uses_each_name_once_and_leaves_gaps():
    names = ["Segmentation", "case_t1ce", "case_flair", "case_t1", "other_flair"]
    assert auto_pick(names) == {"flair": 2, "t1": 3, "t1ce": 1, "t2": None}


def test_naming_follows_the_suffixes():
    assert naming_from_names(["x-t2f", "x-t1n"]) == "brats2023"
    assert naming_from_names(["x_flair", "x_t1"]) == "brats2018"


def _load_inputs(logics, case):
    from UncertaintySegLib.volumes import read_scalar_volume

    return [read_scalar_volume(logics.volumes, p, p.name.split(".nii")[0])
            for p in sorted(case.input_dir.glob("*.nii.gz"))]


def test_selection_from_scene_nodes_and_write_inputs_keep_geometry(logics, any_case, tmp_path):
    pytest.importorskip("slicer", reason=SLICER_CORE)
    import SimpleITK as sitk

    selection = VolumeSelection.from_nodes(_load_inputs(logics, any_case))
    assert selection.missing() == []
    selection.validate()
    assert selection.naming() == any_case.convention
    paths = write_inputs(selection, tmp_path / "case", "case")
    suffix = "-t2f" if any_case.convention == "brats2023" else "_flair"
    assert paths["flair"].name == f"case{suffix}.nii.gz"
    for modality, path in paths.items():
        written = sitk.ReadImage(str(path))
        original = sitk.ReadImage(any_case.report["input"]["paths"][modality])
        assert written.GetSize() == original.GetSize()
        np.testing.assert_allclose(written.GetSpacing(), original.GetSpacing(), atol=1e-5)
        np.testing.assert_allclose(written.GetOrigin(), original.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(written.GetDirection(), original.GetDirection(), atol=1e-5)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(written),
                                      sitk.GetArrayFromImage(original))


def test_grid_check_names_the_volume_and_the_fix(logics, case2018):
    pytest.importorskip("slicer", reason=SLICER_CORE)
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    nodes = _load_inputs(logics, case2018)
    selection = VolumeSelection.from_nodes(nodes)
    t2 = selection.nodes["t2"]
    spacing = list(t2.GetSpacing())
    t2.SetSpacing(spacing[0] * 1.5, spacing[1], spacing[2])
    with pytest.raises(GridMismatchError, match=r"T2 volume 'Synthetic_t2'.*Register and resample"):
        selection.validate()
    t2.SetSpacing(*spacing)
    selection.validate()

    transform = logics.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    transform.SetMatrixTransformToParent(vtkMatrix4x4())
    selection.nodes["t1"].SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(GridMismatchError, match="under a transform.*Harden"):
        selection.validate()
    selection.nodes["t1"] = None
    with pytest.raises(GridMismatchError, match="Select a volume for T1"):
        selection.validate()
