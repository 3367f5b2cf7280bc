"""An output folder into a scene, read back exactly: labels, boxes, heatmap, hierarchy."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mrml_helpers import SLICER_CORE, orphan_helper_nodes

slicer = pytest.importorskip("slicer", reason=SLICER_CORE)

from UncertaintySegLib.scene import (ResultLoader, legend_title, read_contract,  # noqa: E402
                                    run_folders)
from UncertaintySegLib.volumes import ResultFolderError, read_scalar_volume, volume_array  # noqa: E402


def _segment_array(logics, segmentation, name, reference):
    """(Z, Y, X) 0/1 array of one segment on the reference grid (via Slicer's own export)."""
    labelmap = logics.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName(name)
    assert logics.segmentations.ExportSegmentsToLabelmapNode(
        segmentation, [segment_id], labelmap, reference,
        slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
    array = volume_array(labelmap) > 0
    logics.scene.RemoveNode(labelmap)
    return array


def test_labels_survive_the_round_trip(logics, any_case):
    flair = read_scalar_volume(logics.volumes, any_case.input_dir / next(
        p.name for p in any_case.input_dir.iterdir() if "flair" in p.name or "t2f" in p.name),
        "FLAIR")
    run = ResultLoader(logics).load(any_case.output_dir, reference_volume=flair)
    segmentation = run.segmentation.GetSegmentation()
    et_value = 3 if any_case.convention == "brats2023" else 4
    found = {}
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        found[segment.GetName()] = segment.GetLabelValue()
        assert "SCT^" in segment.GetTerminology()
    assert found == {"NCR": 1, "ED": 2, "ET": et_value}
    assert run.convention == any_case.convention
    for name, value in (("NCR", 1), ("ED", 2), ("ET", et_value)):
        np.testing.assert_array_equal(_segment_array(logics, run.segmentation, name, flair),
                                      any_case.labels == value)
    assert segmentation.ContainsRepresentation("Closed surface")
    geometry = segmentation.GetConversionParameter("Reference image geometry")
    assert geometry.endswith("0;39;0;47;0;43;")  # the input's extent, x y z


def _ijk_of(node, ras):
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    matrix = vtkMatrix4x4()
    node.GetRASToIJKMatrix(matrix)
    return np.array(matrix.MultiplyPoint([*ras, 1.0])[:3])


def test_roi_nodes_match_the_json_and_cover_their_voxels(logics, case2018):
    run = ResultLoader(logics).load(case2018.output_dir)
    reference = read_scalar_volume(logics.volumes, case2018.output_dir / "segmentation.nii.gz",
                                   "reference", labelmap=True)
    assert len(run.rois) == len(case2018.boxes) == 4
    for roi, box in zip(run.rois, case2018.boxes):
        centre = [0.0, 0.0, 0.0]
        roi.GetCenter(centre)
        np.testing.assert_allclose(centre, box["center_ras"], atol=1e-4)
        np.testing.assert_allclose(roi.GetSize(), box["size_mm"], atol=1e-4)
        assert roi.GetLocked()
        assert roi.GetAttribute("UncertaintySeg.Region") == box["region"]
        assert roi.GetAttribute("UncertaintySeg.Rank") == str(box["rank"])
        assert float(roi.GetAttribute("UncertaintySeg.Score")) == pytest.approx(box["score"])
        # The ROI's corners, mapped into the voxel grid, sit half a voxel outside the
        # box's first and last voxels: the box is where the JSON says, in every axis.
        bounds = [0.0] * 6
        roi.GetObjectBounds(bounds)
        to_world = roi.GetObjectToWorldMatrix()
        corners = [to_world.MultiplyPoint([bounds[i], bounds[2 + j], bounds[4 + k], 1.0])[:3]
                   for i in (0, 1) for j in (0, 1) for k in (0, 1)]
        ijk = np.array([_ijk_of(reference, c) for c in corners])
        start, size = np.array(box["start_ijk"]), np.array(box["size_ijk"])
        np.testing.assert_allclose(ijk.min(axis=0), start - 0.5, atol=1e-3)
        np.testing.assert_allclose(ijk.max(axis=0), start + size - 0.5, atol=1e-3)


def test_heatmap_volume_and_display_settings(logics, case2018):
    loader = ResultLoader(logics)
    run = loader.load(case2018.output_dir, region="TC")
    np.testing.assert_allclose(volume_array(run.uncertainty), case2018.uncertainty[1], atol=1e-6)
    display = run.uncertainty.GetDisplayNode()
    assert display.GetColorNode().GetName() == "UncertaintySeg heatmap"
    assert not display.GetAutoWindowLevel() and not display.GetAutoThreshold()
    assert display.GetApplyThreshold()
    assert display.GetLowerThreshold() == pytest.approx(loader.heatmap.threshold)
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == pytest.approx((0.0, 1.0))
    table = display.GetColorNode()
    low, high = [0.0] * 4, [0.0] * 4
    table.GetColor(0, low)
    table.GetColor(table.GetNumberOfColors() - 1, high)
    assert high[0] > 0.7 and high[1] < 0.1 and high[3] == 1.0   # deep red, opaque
    assert low[1] > 0.9 and low[3] < high[3]                      # pale yellow, lighter
    # A colour legend in the views, reading the heatmap's own table (review section 6).
    legends = [run.uncertainty.GetNthDisplayNode(i)
               for i in range(run.uncertainty.GetNumberOfDisplayNodes())
               if run.uncertainty.GetNthDisplayNode(i).IsA("vtkMRMLColorLegendDisplayNode")]
    # titled with the map the run wrote (report.json), not "entropy" for an error map
    assert len(legends) == 1 and legends[0].GetTitleText() == legend_title(run.report)
    assert legends[0].GetPrimaryDisplayNode() is display

    loader.set_uncertainty_region(run, "ET")
    np.testing.assert_allclose(volume_array(run.uncertainty), case2018.uncertainty[0], atol=1e-6)
    assert run.uncertainty.GetName().endswith("uncertainty ET")
    assert run.uncertainty.GetDisplayNode().GetApplyThreshold()


def test_each_run_gets_its_own_subject_hierarchy_folder(logics, case2018):
    loader = ResultLoader(logics)
    first, second = loader.load(case2018.output_dir), loader.load(case2018.output_dir)
    sh = logics.scene.GetSubjectHierarchyNode()
    assert run_folders(logics.scene) == [first.folder_item, second.folder_item]
    assert sh.GetItemName(first.folder_item) == "UncertaintySeg Synthetic #1"
    assert sh.GetItemName(second.folder_item) == "UncertaintySeg Synthetic #2"
    for run in (first, second):
        assert sh.GetItemAttribute(run.folder_item, "UncertaintySeg.OutputFolder") == str(
            case2018.output_dir)
        assert float(sh.GetItemAttribute(run.folder_item, "UncertaintySeg.TriageScore")) == \
            pytest.approx(case2018.report["triage"]["score"], abs=1e-4)
        for node in (run.segmentation, run.uncertainty):
            assert sh.GetItemParent(sh.GetItemByDataNode(node)) == run.folder_item
        boxes_folder = sh.GetItemParent(sh.GetItemByDataNode(run.rois[0]))
        assert sh.GetItemName(boxes_folder) == "Refinement boxes"
        assert sh.GetItemParent(boxes_folder) == run.folder_item
        assert {sh.GetItemParent(sh.GetItemByDataNode(r)) for r in run.rois} == {boxes_folder}


def test_loading_leaves_no_orphan_display_or_storage_node(logics, case2018):
    """The temporary label map goes with its display and storage nodes (review m1)."""
    flair = read_scalar_volume(logics.volumes, next(case2018.input_dir.glob("*flair*")), "FLAIR")
    before = orphan_helper_nodes(logics.scene)
    ResultLoader(logics).load(case2018.output_dir, reference_volume=flair)
    ResultLoader(logics).load(case2018.output_dir, reference_volume=flair)
    assert orphan_helper_nodes(logics.scene) == before
    assert not logics.scene.GetNodesByClass("vtkMRMLLabelMapVolumeNode").GetNumberOfItems()


def test_incomplete_folder_is_refused_and_scene_untouched(logics, case2018, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(case2018.output_dir, broken)
    (broken / "uncertainty.nii.gz").unlink()
    before = logics.scene.GetNumberOfNodes()
    with pytest.raises(ResultFolderError, match="missing uncertainty.nii.gz"):
        ResultLoader(logics).load(broken)
    assert logics.scene.GetNumberOfNodes() == before
    report, boxes = read_contract(case2018.output_dir)
    assert boxes == json.loads((case2018.output_dir / "refinement_boxes.json").read_text(encoding="utf-8"))["boxes"]
    assert report["triage"]["flag"] in ("review", "routine")


def test_a_failure_half_way_leaves_the_scene_as_it_was(logics, case2018, tmp_path):
    import SimpleITK as sitk

    mixed = tmp_path / "mixed"
    shutil.copytree(case2018.output_dir, mixed)
    other = sitk.GetImageFromArray(np.zeros((3, 10, 12, 14), np.float32), isVector=False)
    sitk.WriteImage(other, str(mixed / "uncertainty.nii.gz"))
    before = logics.scene.GetNumberOfNodes()
    items_before = logics.scene.GetSubjectHierarchyNode().GetNumberOfItems()
    with pytest.raises(ResultFolderError, match="mixes two runs"):
        ResultLoader(logics).load(mixed)
    assert logics.scene.GetNumberOfNodes() == before
    assert logics.scene.GetSubjectHierarchyNode().GetNumberOfItems() == items_before
    assert run_folders(logics.scene) == []


def test_label_values_decide_when_the_report_disagrees(logics, case2023, tmp_path):
    folder = tmp_path / "relabelled"
    shutil.copytree(case2023.output_dir, folder)
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    report["input"]["label_convention"] = "brats2018"  # wrong: the labels use ET = 3
    (folder / "report.json").write_text(json.dumps(report))
    run = ResultLoader(logics).load(folder)
    assert run.convention == "brats2023"
    segmentation = run.segmentation.GetSegmentation()
    et = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("ET"))
    assert et.GetLabelValue() == 3


def test_a_minimal_folder_with_quantised_maps_loads(logics, case2018, tmp_path):
    """`predict --outputs minimal` folders: the maps stored as uint16 with NIfTI
    scl_slope / scl_inter (no P2D, no P3D); the heatmap is the map within one step."""
    from uncertaintyseg.contract_names import MAP_FILES, MAP_INTER, MAP_SLOPE
    from uncertaintyseg.files.image_writer import write_maps_verified

    folder = tmp_path / "minimal"
    shutil.copytree(case2018.output_dir, folder)
    for name in ("probabilities_2d", "probabilities_3d"):
        (folder / MAP_FILES[name]).unlink()
    reference = _segmentation_image(folder)
    write_maps_verified(case2018.uncertainty, reference, folder / MAP_FILES["uncertainty"],
                        scale=(MAP_SLOPE, MAP_INTER))
    loader = ResultLoader(logics)
    run = loader.load(folder, region="TC")
    heatmap = volume_array(run.uncertainty)
    np.testing.assert_allclose(heatmap, case2018.uncertainty[1], rtol=0, atol=MAP_SLOPE)
    assert np.abs(heatmap - case2018.uncertainty[1]).max() > 0  # the quantised file was read
    loader.set_uncertainty_region(run, "WT")
    np.testing.assert_allclose(volume_array(run.uncertainty), case2018.uncertainty[2],
                               rtol=0, atol=MAP_SLOPE)


def _segmentation_image(folder):
    import SimpleITK as sitk

    return sitk.ReadImage(str(folder / "segmentation.nii.gz"))


def test_the_legend_names_the_map_the_run_wrote():
    """Issue 17: the default map is an error probability; a legend saying "entropy"
    over it would mislead the reader."""
    error_map = {"settings": {"uncertainty_map": "error-probability"},
                 "uncertainty_map": {"map": "error-probability"}}
    assert legend_title(error_map) == "Probability the label is wrong (0-1)"
    fell_back = {"settings": {"uncertainty_map": "error-probability"},
                 "uncertainty_map": {"map": "mean-entropy", "note": "no fit"}}
    assert legend_title(fell_back) == "Entropy of P2D, bits (0-1)"
    assert legend_title({"method": "full-3d"}) == "Uncertainty (0-1)"  # its own map
    assert legend_title({}) == "Normalised entropy (0-1)"  # folders from before the option
