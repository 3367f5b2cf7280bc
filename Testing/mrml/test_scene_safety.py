"""`uncertaintyseg scene` never replaces a scene or drops the input MRIs silently, and the
.mrb carries what snapshot.png shows: the same colours and the ET, TC, WT uncertainty."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from mrml_helpers import SLICER_CORE
from synthetic_case import write_fixture_case


@pytest.fixture
def moved_case(tmp_path):
    """A result whose input MRIs were moved away after the run."""
    case = write_fixture_case(tmp_path / "case", "brats2018")
    shutil.move(str(case.input_dir), str(tmp_path / "moved"))
    return case, tmp_path / "moved"


def test_an_existing_scene_is_kept_without_overwrite(case2018, tmp_path, capsys):
    from uncertaintyseg.commands.scene_cli import main

    edited = tmp_path / "case.mrb"
    edited.write_bytes(b"a scene the user edited in Slicer")
    assert main(["--results", str(case2018.output_dir), "--out", str(edited)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert edited.read_bytes() == b"a scene the user edited in Slicer"


def test_moved_inputs_are_refused_and_named(moved_case, tmp_path, capsys):
    from uncertaintyseg.commands.scene_cli import main

    case, _ = moved_case
    out = tmp_path / "case.mrb"
    assert main(["--results", str(case.output_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "input MRIs not found" in err and "--allow-missing-inputs" in err
    assert str(case.report["input"]["paths"]["flair"]) in err
    assert not out.exists()


def _open_bundle(path: Path):
    from UncertaintySegLib.context import create_headless_logics

    logics = create_headless_logics()
    mrml = logics.app_logic.UnpackSlicerDataBundle(str(path), tempfile.mkdtemp())
    logics.scene.SetURL(mrml)
    assert logics.scene.Import()
    return logics.scene


def _volumes(scene):
    collection = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    return {collection.GetItemAsObject(i).GetName(): collection.GetItemAsObject(i)
            for i in range(collection.GetNumberOfItems())}


def test_missing_inputs_allowed_with_a_warning_and_found_with_inputs(moved_case, tmp_path,
                                                                    capsys):
    pytest.importorskip("slicer", reason=SLICER_CORE)
    from uncertaintyseg.commands.scene_cli import main

    case, moved = moved_case
    bare = tmp_path / "bare.mrb"
    assert main(["--results", str(case.output_dir), "--out", str(bare),
                 "--allow-missing-inputs"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: the scene has no") == 4
    assert "FLAIR" not in _volumes(_open_bundle(bare))
    full = tmp_path / "full.mrb"
    assert main(["--results", str(case.output_dir), "--out", str(full),
                 "--inputs", str(moved)]) == 0
    assert {"FLAIR", "T1", "T1ce", "T2"} <= set(_volumes(_open_bundle(full)))
    # --overwrite replaces the scene
    assert main(["--results", str(case.output_dir), "--out", str(bare), "--inputs",
                 str(moved), "--overwrite"]) == 0
    assert "FLAIR" in _volumes(_open_bundle(bare))


def test_bundle_holds_all_three_uncertainties_in_the_snapshot_colours(case2018, tmp_path):
    pytest.importorskip("slicer", reason=SLICER_CORE)
    import numpy as np
    from vtkmodules.util.numpy_support import vtk_to_numpy

    from uncertaintyseg import palette
    from uncertaintyseg.commands.scene_cli import main

    out = tmp_path / "case.mrb"
    assert main(["--results", str(case2018.output_dir), "--out", str(out)]) == 0
    scene = _open_bundle(out)
    volumes = _volumes(scene)
    for index, region in enumerate(("ET", "TC", "WT")):
        name = next(n for n in volumes if n.endswith(f"uncertainty {region}"))
        node = volumes[name]
        dims = node.GetImageData().GetDimensions()
        array = vtk_to_numpy(node.GetImageData().GetPointData().GetScalars())
        assert np.allclose(array.reshape(dims[::-1]), case2018.uncertainty[index], atol=1e-6)
        display = node.GetDisplayNode()
        assert display.GetLowerThreshold() == pytest.approx(palette.HEATMAP_THRESHOLD)
        table = display.GetColorNode()
        rgba = [0.0] * 4
        table.GetColor(int(0.9 * 255), rgba)
        assert np.allclose(rgba, palette.heatmap_rgba(int(0.9 * 255) / 255), atol=2 / 255)
    rois = scene.GetNodesByClass("vtkMRMLMarkupsROINode")
    for i in range(rois.GetNumberOfItems()):
        roi = rois.GetItemAsObject(i)
        region = roi.GetAttribute("UncertaintySeg.Region")
        assert np.allclose(roi.GetDisplayNode().GetColor(), palette.REGION_COLOURS[region],
                           atol=1e-3)
