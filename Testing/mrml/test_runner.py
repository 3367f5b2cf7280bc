"""CaseRunner end to end: scene volumes -> `python -m uncertaintyseg predict` -> scene.

Runs the real pipeline (analytic model, preview projections, CPU) on the synthetic case,
so it needs torch and the pipeline in this interpreter; skipped otherwise.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from mrml_helpers import SLICER_CORE

slicer = pytest.importorskip("slicer", reason=SLICER_CORE)
pytest.importorskip("torch", reason="the end-to-end run needs torch for the pipeline")
pytest.importorskip("uncertaintyseg.run.pipeline", reason="the pipeline is not importable")

from UncertaintySegLib.inputs import VolumeSelection  # noqa: E402
from UncertaintySegLib.runner import CaseRunner, RunOptions  # noqa: E402
from UncertaintySegLib.volumes import read_scalar_volume, volume_array  # noqa: E402

pytestmark = pytest.mark.slow
OPTIONS = RunOptions({"model": "analytic", "device": "cpu", "projections": "preview"},
                     region="ET", python=sys.executable)


def _selection(logics, case):
    nodes = [read_scalar_volume(logics.volumes, p, p.name.split(".nii")[0])
             for p in sorted(case.input_dir.glob("*.nii.gz"))]
    return VolumeSelection.from_nodes(nodes)


def _wait(runner, timeout=120.0):
    stages, deadline = [], time.monotonic() + timeout
    while runner.running():
        stages += [e.stage for e in runner.poll()]
        assert time.monotonic() < deadline, "the pipeline did not finish in time"
        time.sleep(0.1)
    return stages + [e.stage for e in runner.poll()]


def test_run_loads_the_pipeline_output_into_the_scene(logics, case2023, tmp_path):
    runner = CaseRunner(logics, work_root=tmp_path)
    runner.start(_selection(logics, case2023), OPTIONS)
    nodes_while_running = logics.scene.GetNumberOfNodes()
    stages = _wait(runner)
    assert runner.error_message() is None, runner.error_message()
    assert {"uncertainty", "kernels", "finished"} <= set(stages)
    assert logics.scene.GetNumberOfNodes() == nodes_while_running
    run, _ = runner.load_result()
    labels = volume_array(read_scalar_volume(
        logics.volumes, run.output_dir / "segmentation.nii.gz", "check", labelmap=True))
    # BraTS 2023 names in, ET = 3 out (the inputs were written under those names).
    assert run.convention == "brats2023" and set(np.unique(labels)) <= {0, 1, 2, 3}
    assert 2 in set(np.unique(labels))
    assert len(run.rois) == len(run.boxes) > 0
    assert run.uncertainty_region == "ET"
    assert run.output_dir.is_dir() and not (runner.run_dir / "input").exists()


def test_cancel_leaves_the_scene_and_disk_as_they_were(logics, case2018, tmp_path):
    selection = _selection(logics, case2018)
    before = logics.scene.GetNumberOfNodes()
    runner = CaseRunner(logics, work_root=tmp_path)
    runner.start(selection, OPTIONS)
    assert (runner.run_dir / "input").is_dir()
    runner.cancel()
    assert not runner.running()
    assert runner.error_message().startswith("Cancelled")
    assert logics.scene.GetNumberOfNodes() == before
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="Cancelled"):
        runner.load_result()
