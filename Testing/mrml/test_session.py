"""RunSession, what the module's Logic does: load and show, adjust the heatmap, export,
run blocking (with the injected fake process), under slicer-core."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mrml_helpers import SLICER_CORE

slicer = pytest.importorskip("slicer", reason=SLICER_CORE)

from UncertaintySegLib.context import nodes_by_class  # noqa: E402
from UncertaintySegLib.inputs import VolumeSelection  # noqa: E402
from UncertaintySegLib.process import PipelineProcess  # noqa: E402
from UncertaintySegLib.render import add_slice_views  # noqa: E402
from UncertaintySegLib.runner import RunOptions  # noqa: E402
from UncertaintySegLib.session import RunSession  # noqa: E402
from UncertaintySegLib.volumes import read_scalar_volume, volume_array  # noqa: E402

FAKE = str(Path(__file__).with_name("fake_pipeline.py"))


def _flair(logics, case):
    path = next(p for p in case.input_dir.iterdir() if "flair" in p.name)
    return read_scalar_volume(logics.volumes, path, "FLAIR")


def test_loaded_output_is_shown_and_the_heatmap_follows_region_and_threshold(logics, case2018):
    add_slice_views(logics, (("Red", "Axial"), ("Yellow", "Sagittal")))
    resets = []
    session = RunSession(logics, reset_views=lambda: resets.append(1))
    flair = _flair(logics, case2018)
    run = session.load_output_folder(case2018.output_dir, flair, region="WT")
    assert resets == [1] and session.runs == [run]
    composites = nodes_by_class(logics.scene, "vtkMRMLSliceCompositeNode")
    assert len(composites) == 2
    assert {(c.GetBackgroundVolumeID(), c.GetForegroundVolumeID()) for c in composites} == {
        (flair.GetID(), run.uncertainty.GetID())}
    wt = volume_array(run.uncertainty).copy()
    session.set_region(run, "ET")
    assert run.uncertainty_region == "ET" and run.uncertainty.GetName().endswith(" ET")
    assert not np.array_equal(volume_array(run.uncertainty), wt)
    session.set_threshold(run, 0.35)
    display = run.uncertainty.GetDisplayNode()
    assert display.GetLowerThreshold() == pytest.approx(0.35)
    assert display.GetUpperThreshold() >= 1.0


def test_run_blocking_with_the_injected_process_loads_and_exports(logics, case2018, tmp_path):
    nodes = [read_scalar_volume(logics.volumes, p, p.name.split(".nii")[0])
             for p in sorted(case2018.input_dir.glob("*.nii.gz"))]

    def factory(command, env=None, cwd=None):
        return PipelineProcess([sys.executable, FAKE, "ok", str(case2018.output_dir)],
                               env=env, cwd=cwd)

    session = RunSession(logics, tmp_path / "runs", process_factory=factory)
    run = session.run_blocking(VolumeSelection.from_nodes(nodes), RunOptions(region="TC"),
                               threshold=0.3, timeout_s=30)
    assert run.uncertainty_region == "TC"
    assert run.uncertainty.GetDisplayNode().GetLowerThreshold() == pytest.approx(0.3)
    written = session.export_labels(run, tmp_path / "labels.nii.gz")
    exported = volume_array(read_scalar_volume(logics.volumes, written, "e", labelmap=True))
    original = volume_array(read_scalar_volume(
        logics.volumes, case2018.output_dir / "segmentation.nii.gz", "o", labelmap=True))
    np.testing.assert_array_equal(exported, original)


def test_runs_whose_nodes_left_are_forgotten_and_only_temporary_folders_deleted(
        logics, case2018, tmp_path):
    """Review m10: a run's temporary output folder goes when its nodes leave the scene; a
    folder the user or a worklist loaded is kept."""
    import shutil

    from UncertaintySegLib.worklist_scene import remove_folder

    session = RunSession(logics, work_root=tmp_path / "work")
    temporary = tmp_path / "work" / "case-20260101-000000-abc" / "output"
    shutil.copytree(case2018.output_dir, temporary)
    mine = session.load_output_folder(temporary)
    theirs = session.load_output_folder(case2018.output_dir)
    assert session.prune_runs() == [] and session.runs == [mine, theirs]
    remove_folder(logics.scene, mine.folder_item)
    remove_folder(logics.scene, theirs.folder_item)
    assert session.prune_runs() == [mine, theirs] and session.runs == []
    assert not temporary.parent.exists() and (tmp_path / "work").is_dir()
    assert (case2018.output_dir / "report.json").is_file()


def test_the_demo_case_loads_as_four_volumes_auto_pick_recognises(logics, tmp_path):
    """Written by the pipeline's own `phantom` command in a child process, as in Slicer."""
    from UncertaintySegLib.demo_case import load_demo_case
    from UncertaintySegLib.inputs import auto_pick, candidate_volumes

    runner = RunSession(logics).runner
    nodes = load_demo_case(runner, logics.volumes, tmp_path)
    written = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.nii.gz")}
    load_demo_case(runner, logics.volumes, tmp_path)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.nii.gz")} == written  # reused
    assert set(nodes) == {"flair", "t1", "t1ce", "t2"}
    assert all(node.GetImageData().GetDimensions() == (112, 128, 80) for node in nodes.values())
    VolumeSelection(nodes).validate()  # one grid, as the pipeline needs
    names = [n.GetName() for n in candidate_volumes(logics.scene)]
    picked = auto_pick(names[:4])
    assert {m: names[i] for m, i in picked.items()} == {m: n.GetName() for m, n in nodes.items()}
    assert nodes["flair"].GetName() == "Phantom_0100_flair"  # unseen by the phantom model


def test_a_demo_case_that_cannot_be_written_says_why(logics, tmp_path):
    from UncertaintySegLib.demo_case import write_demo_case

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(RuntimeError, match="demo case could not be written.*exit code"):
        write_demo_case(RunSession(logics).runner, blocked)
