"""`uncertaintyseg scene`: the .mrb bundle holds everything, and reopens in a new scene."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mrml_helpers import ROOT, SLICER_CORE

slicer = pytest.importorskip("slicer", reason=SLICER_CORE)


def _open_bundle(path: Path):
    from UncertaintySegLib.context import create_headless_logics

    logics = create_headless_logics()
    folder = tempfile.mkdtemp()
    mrml = logics.app_logic.UnpackSlicerDataBundle(str(path), folder)
    logics.scene.SetURL(mrml)
    assert logics.scene.Import()
    return logics


def _nodes(scene, cls):
    collection = scene.GetNodesByClass(cls)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def test_scene_command_writes_a_complete_bundle(case2018, tmp_path):
    from uncertaintyseg.commands.scene_cli import main

    out = tmp_path / "case.mrb"
    shots = tmp_path / "shots"
    assert main(["--results", str(case2018.output_dir), "--out", str(out), "--region", "ET",
                 "--screenshots", str(shots), "--size", "200", "160"]) == 0
    assert out.is_file() and not list(tmp_path.glob(".*partial*")) and not list(tmp_path.glob("_tmp*"))

    logics = _open_bundle(out)
    scene = logics.scene
    (segmentation,) = _nodes(scene, "vtkMRMLSegmentationNode")
    segments = segmentation.GetSegmentation()
    assert {segments.GetNthSegment(i).GetName(): segments.GetNthSegment(i).GetLabelValue()
            for i in range(segments.GetNumberOfSegments())} == {"NCR": 1, "ED": 2, "ET": 4}
    rois = _nodes(scene, "vtkMRMLMarkupsROINode")
    assert sorted(r.GetName().split(" ", 2)[2] for r in rois) == sorted(
        f"{b['region']} box {b['rank']}" for b in case2018.boxes)
    volumes = {v.GetName(): v for v in _nodes(scene, "vtkMRMLScalarVolumeNode")}
    assert {"FLAIR", "T1", "T1ce", "T2", "Synthetic #1 uncertainty ET"} <= set(volumes)
    heatmap = volumes["Synthetic #1 uncertainty ET"].GetDisplayNode()
    assert heatmap.GetColorNode().GetName() == "UncertaintySeg heatmap"
    assert heatmap.GetApplyThreshold() and heatmap.GetLowerThreshold() == pytest.approx(0.2)
    composites = {c.GetLayoutName(): c for c in _nodes(scene, "vtkMRMLSliceCompositeNode")}
    assert set(composites) >= {"Red", "Yellow", "Green"}
    for composite in composites.values():
        assert composite.GetBackgroundVolumeID() == volumes["FLAIR"].GetID()
        assert composite.GetForegroundVolumeID() == volumes["Synthetic #1 uncertainty ET"].GetID()
    sh = scene.GetSubjectHierarchyNode()
    folder = sh.GetItemParent(sh.GetItemByDataNode(segmentation))
    assert sh.GetItemName(folder) == "UncertaintySeg Synthetic #1"
    assert sh.GetItemName(sh.GetItemParent(sh.GetItemByDataNode(volumes["FLAIR"]))) == "Inputs"

    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOImage import vtkPNGReader

    assert {p.name for p in shots.glob("*.png")} == {"axial.png", "3d.png", "overview.png"}
    reader = vtkPNGReader()
    reader.SetFileName(str(shots / "overview.png"))
    reader.Update()
    assert reader.GetOutput().GetDimensions()[:2] == (408, 160)  # 200 + 8 + 200 wide
    assert vtk_to_numpy(reader.GetOutput().GetPointData().GetScalars()).std() > 10


def test_scene_command_without_slicer_core_says_how_to_install(case2018, tmp_path):
    code = ("import sys; sys.modules['slicer'] = None; "
            "from uncertaintyseg.commands.scene_cli import main; "
            f"sys.exit(main(['--results', {str(case2018.output_dir)!r}, '--out', "
            f"{str(tmp_path / 'x.mrb')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT / "UncertaintySeg"), "PATH": ""}, timeout=60)
    assert result.returncode == 3
    assert "pip install .[scene]" in result.stderr
    assert not (tmp_path / "x.mrb").exists()


def test_scene_command_refuses_an_incomplete_folder(tmp_path, capsys):
    from uncertaintyseg.commands.scene_cli import main

    (tmp_path / "empty").mkdir()
    assert main(["--results", str(tmp_path / "empty"), "--out", str(tmp_path / "x.mrb")]) == 2
    assert "not a complete UncertaintySeg output folder" in capsys.readouterr().err


def test_lib_never_imports_torch():
    code = ("import sys, UncertaintySegLib.bundle, UncertaintySegLib.runner, "
            "UncertaintySegLib.export, UncertaintySegLib.editing, UncertaintySegLib.deps; "
            "from UncertaintySegLib.context import create_headless_logics; "
            "create_headless_logics(); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT / "UncertaintySeg"), "PATH": ""}, timeout=60)
    assert result.stdout.strip() == "False", result.stderr[-2000:]
