"""Export after an edit: the label map on the input's grid, in the input's convention."""

from __future__ import annotations

import numpy as np
import pytest

from mrml_helpers import SLICER_CORE

slicer = pytest.importorskip("slicer", reason=SLICER_CORE)

from UncertaintySegLib.editing import configure_segment_editor, editor_overwrites  # noqa: E402
from UncertaintySegLib.export import ExportError, LabelExporter  # noqa: E402
from UncertaintySegLib.scene import ResultLoader  # noqa: E402
from UncertaintySegLib.volumes import read_scalar_volume  # noqa: E402


def _flair(logics, case):
    path = next(p for p in case.input_dir.iterdir() if "flair" in p.name or "t2f" in p.name)
    return read_scalar_volume(logics.volumes, path, "FLAIR")


def _replace_segment(logics, segmentation, name, mask, reference):
    """Set a segment to a (Z, Y, X) mask on the reference grid, as an editor effect would."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    image = slicer.vtkOrientedImageData()
    image.SetDimensions(mask.shape[2], mask.shape[1], mask.shape[0])
    matrix = vtkMatrix4x4()
    reference.GetIJKToRASMatrix(matrix)
    image.SetImageToWorldMatrix(matrix)
    image.GetPointData().SetScalars(numpy_to_vtk(mask.astype(np.uint8).ravel(), deep=True))
    segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName(name)
    assert logics.segmentations.SetBinaryLabelmapToSegment(
        image, segmentation, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE,
        image.GetExtent())


def _node_ids(scene):
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def _read(path):
    import SimpleITK as sitk

    return sitk.ReadImage(str(path))


def test_export_after_edit_matches_the_edited_voxels(logics, any_case, tmp_path):
    flair = _flair(logics, any_case)
    run = ResultLoader(logics).load(any_case.output_dir, reference_volume=flair)
    labels = any_case.labels
    et_value = 3 if any_case.convention == "brats2023" else 4
    # Edit 2 (below), with overwrite-none: paint NCR into a block of edema; ED keeps those
    # voxels too, and the export gives them to the segment edited last (NCR).
    painted = np.zeros(labels.shape, bool)
    painted[19:23, 20:26, 27:33] = True
    painted &= labels == 2
    # Edit 1: erase part of the enhancing rim.
    erased = np.zeros(labels.shape, bool)
    erased[20:23, 14:30, 14:20] = True
    erased &= labels == et_value
    assert painted.sum() > 20 and erased.sum() > 20
    _replace_segment(logics, run.segmentation, "ET", (labels == et_value) & ~erased, flair)
    _replace_segment(logics, run.segmentation, "NCR", (labels == 1) | painted, flair)
    expected = labels.copy()
    expected[painted] = 1
    expected[erased] = 0

    before = _node_ids(logics.scene)
    path = LabelExporter(logics).export(run.segmentation, flair, tmp_path / "edited.nii.gz")
    # No stray "<segmentation>_ColorTable" or label map is left in the scene (review #12).
    assert _node_ids(logics.scene) == before
    written, original = _read(path), _read(any_case.output_dir / "segmentation.nii.gz")
    import SimpleITK as sitk

    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), expected)
    assert written.GetPixelIDValue() == sitk.sitkUInt8
    assert written.GetSize() == original.GetSize()
    np.testing.assert_allclose(written.GetSpacing(), original.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(written.GetOrigin(), original.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), original.GetDirection(), atol=1e-5)


def test_convention_can_be_chosen_and_missing_segment_is_refused(logics, case2018, tmp_path):
    import SimpleITK as sitk

    run = ResultLoader(logics).load(case2018.output_dir)
    exporter = LabelExporter(logics)
    path = exporter.export(run.segmentation, None, tmp_path / "as2023.nii.gz", "brats2023")
    array = sitk.GetArrayFromImage(_read(path))
    np.testing.assert_array_equal(array == 3, case2018.labels == 4)
    assert 4 not in np.unique(array)

    segmentation = run.segmentation.GetSegmentation()
    segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("ED")).SetName("Oedema")
    nodes_before = logics.scene.GetNumberOfNodes()
    with pytest.raises(ExportError, match="ED not found.*keep the names"):
        exporter.export(run.segmentation, None, tmp_path / "x.nii.gz")
    assert logics.scene.GetNumberOfNodes() == nodes_before
    assert not (tmp_path / "x.nii.gz").exists()


def _editor(logics, run, flair, mode):
    """Slicer's own Segment Editor logic on `run`, set up as the Edit button does."""
    node = logics.scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
    node.SetOverwriteMode(mode)
    configure_segment_editor(node, run.segmentation, flair)
    assert node.GetOverwriteMode() == mode  # the user's mode is left alone (review m8)
    assert editor_overwrites(node) is (mode != node.OverwriteNone)
    editor = slicer.vtkSlicerSegmentEditorLogic()
    editor.SetMRMLScene(logics.scene)
    editor.SetSegmentEditorNode(node)
    return editor


def _paint(editor, run, flair, name, mask):
    """Add a (Z, Y, X) mask to a segment as a paint stroke does (the editor's masking and
    overwrite mode apply)."""
    segment_id = run.segmentation.GetSegmentation().GetSegmentIdBySegmentName(name)
    editor.ModifySegmentByLabelmap(run.segmentation, segment_id, _image(mask, flair),
                                   editor.ModificationModeAdd, False, False)


def _image(mask, reference):
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    image = slicer.vtkOrientedImageData()
    image.SetDimensions(mask.shape[2], mask.shape[1], mask.shape[0])
    matrix = vtkMatrix4x4()
    reference.GetIJKToRASMatrix(matrix)
    image.SetImageToWorldMatrix(matrix)
    image.GetPointData().SetScalars(numpy_to_vtk(mask.astype(np.uint8).ravel(), deep=True))
    return image


def _block(labels, value, z, y, x):
    mask = np.zeros(labels.shape, bool)
    mask[z, y, x] = True
    return mask & (labels == value)


def _export(logics, run, flair, path):
    import SimpleITK as sitk

    before = _node_ids(logics.scene)
    written = LabelExporter(logics).export(run.segmentation, flair, path)
    assert _node_ids(logics.scene) == before
    return sitk.GetArrayFromImage(_read(written))


def test_enhancing_voxels_repainted_as_ncr_and_ed_export_as_such(logics, case2018, tmp_path):
    """Review W2: with Slicer's default "Overwrite all" the painted voxels leave ET, and
    the label map has them as 1 (NCR) and 2 (ED)."""
    flair = _flair(logics, case2018)
    run = ResultLoader(logics).load(case2018.output_dir, reference_volume=flair)
    labels = case2018.labels
    as_ncr = _block(labels, 4, slice(18, 24), slice(10, 40), slice(10, 24))
    as_ed = _block(labels, 4, slice(18, 24), slice(10, 40), slice(24, 40))
    assert as_ncr.sum() > 20 and as_ed.sum() > 20
    editor = _editor(logics, run, flair, slicer.vtkMRMLSegmentEditorNode.OverwriteAllSegments)
    _paint(editor, run, flair, "NCR", as_ncr)
    _paint(editor, run, flair, "ED", as_ed)
    # The painted voxels left ET (one class per voxel), whatever order the export uses.
    from test_scene import _segment_array

    et = _segment_array(logics, run.segmentation, "ET", flair)
    assert not et[as_ncr | as_ed].any() and et[labels == 4].sum() == (
        (labels == 4).sum() - as_ncr.sum() - as_ed.sum())
    expected = labels.copy()
    expected[as_ncr], expected[as_ed] = 1, 2
    np.testing.assert_array_equal(_export(logics, run, flair, tmp_path / "a.nii.gz"), expected)


def test_an_overlap_left_by_allow_overlap_goes_to_the_segment_edited_last(logics, case2018,
                                                                        tmp_path):
    flair = _flair(logics, case2018)
    run = ResultLoader(logics).load(case2018.output_dir, reference_volume=flair)
    labels = case2018.labels
    editor = _editor(logics, run, flair, slicer.vtkMRMLSegmentEditorNode.OverwriteNone)
    # NCR painted into edema: both segments hold the voxels; NCR was edited last.
    ncr_in_ed = _block(labels, 2, slice(19, 23), slice(20, 26), slice(27, 33))
    assert ncr_in_ed.sum() > 20
    _paint(editor, run, flair, "NCR", ncr_in_ed)
    expected = labels.copy()
    expected[ncr_in_ed] = 1
    np.testing.assert_array_equal(_export(logics, run, flair, tmp_path / "b.nii.gz"), expected)
    # Then ED painted over the same voxels: now ED is the segment edited last.
    _paint(editor, run, flair, "ED", ncr_in_ed)
    np.testing.assert_array_equal(_export(logics, run, flair, tmp_path / "c.nii.gz"), labels)
