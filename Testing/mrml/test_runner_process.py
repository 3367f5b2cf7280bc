"""CaseRunner with an injected process (fake_pipeline.py), under slicer-core; no torch.

The runner writes real inputs from scene volumes and reads the process's JSON lines; the
fake stands in for `python -m uncertaintyseg predict`, so the failure paths (an error
line, a crash, inputs removed while running) and the success path are checked against
the scene and the disk.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from mrml_helpers import SLICER_CORE

slicer = pytest.importorskip("slicer", reason=SLICER_CORE)

from UncertaintySegLib.inputs import VolumeSelection  # noqa: E402
from UncertaintySegLib.process import PipelineProcess  # noqa: E402
from UncertaintySegLib.runner import PACKAGE_DIR, CaseRunner, RunOptions  # noqa: E402
from UncertaintySegLib.volumes import read_scalar_volume  # noqa: E402
from uncertaintyseg_shared.stages import PREDICT_STAGES  # noqa: E402

FAKE = str(Path(__file__).with_name("fake_pipeline.py"))


class FakeFactory:
    """Builds the process the runner asks for, running the fake in `mode` instead of the
    pipeline, and keeps what the runner passed (command, env, cwd)."""

    def __init__(self, mode, arg=None):
        self.mode, self.arg, self.calls = mode, arg, []

    def __call__(self, command, env=None, cwd=None):
        self.calls.append({"command": command, "env": env, "cwd": cwd})
        args = [sys.executable, FAKE, self.mode] + ([str(self.arg)] if self.arg else [])
        return PipelineProcess(args, env=env, cwd=cwd)


def _selection(logics, case):
    nodes = [read_scalar_volume(logics.volumes, p, p.name.split(".nii")[0])
             for p in sorted(case.input_dir.glob("*.nii.gz"))]
    return VolumeSelection.from_nodes(nodes)


def _wait(runner, timeout=30.0, poll=True):
    deadline = time.monotonic() + timeout
    while runner.running():
        if poll:
            runner.poll()
        assert time.monotonic() < deadline, "the fake process did not finish"
        time.sleep(0.02)


def test_error_line_becomes_the_message_and_leaves_scene_and_disk_clean(logics, case2018,
                                                                          tmp_path):
    selection = _selection(logics, case2018)
    before = logics.scene.GetNumberOfNodes()
    factory = FakeFactory("error")
    runner = CaseRunner(logics, work_root=tmp_path, process_factory=factory)
    runner.start(selection)
    assert (runner.run_dir / "input").is_dir()
    _wait(runner)
    with pytest.raises(RuntimeError) as error:
        runner.load_result()
    assert str(error.value) == "error: FLAIR file is empty: case_flair.nii.gz"
    assert list(tmp_path.iterdir()) == []  # the run folder is gone
    assert logics.scene.GetNumberOfNodes() == before
    call = factory.calls[0]
    assert call["cwd"] == str(PACKAGE_DIR)  # the shipped pipeline wins (review #17)
    assert call["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(PACKAGE_DIR)
    # Only what the user changed is passed: nothing here, so no option at all.
    assert call["command"][3:4] == ["predict"] and call["command"][-2:] == ["--progress", "json"]


def test_crash_reports_exit_code_and_log_tail(logics, case2018, tmp_path):
    runner = CaseRunner(logics, work_root=tmp_path, process_factory=FakeFactory("crash"))
    runner.start(_selection(logics, case2018))
    _wait(runner)
    with pytest.raises(RuntimeError, match=r"exit code 3(.|\n)*log line 19"):
        runner.load_result()
    assert list(tmp_path.iterdir()) == []


def test_run_anyway_reaches_the_command_line(logics, case2018, tmp_path):
    factory = FakeFactory("ok", case2018.output_dir)
    runner = CaseRunner(logics, work_root=tmp_path, process_factory=factory)
    runner.start(_selection(logics, case2018), RunOptions(force=True))
    _wait(runner)
    assert factory.calls[0]["command"][-1] == "--force"
    runner.start(_selection(logics, case2018), RunOptions())
    _wait(runner)
    assert "--force" not in factory.calls[1]["command"]


def test_success_loads_the_named_folder_and_returns_the_last_events(logics, case2018, tmp_path):
    factory = FakeFactory("ok", case2018.output_dir)
    runner = CaseRunner(logics, work_root=tmp_path, process_factory=factory)
    runner.start(_selection(logics, case2018), RunOptions(region="ET"))
    _wait(runner, poll=False)  # as when the timer's last poll came before the final lines
    run, last = runner.load_result()
    assert run.output_dir == case2018.output_dir and run.uncertainty_region == "ET"
    assert len(run.rois) == len(run.boxes) > 0
    # The progress bar gets the final events the runner drained (review #15).
    assert [e.stage for e in last][-2:] == [PREDICT_STAGES[-1].name, "finished"]
    assert not (runner.run_dir / "input").exists()


def test_inputs_removed_while_running_are_refused(logics, case2018, tmp_path):
    selection = _selection(logics, case2018)
    runner = CaseRunner(logics, work_root=tmp_path,
                        process_factory=FakeFactory("ok", case2018.output_dir))
    runner.start(selection)
    _wait(runner)
    logics.scene.RemoveNode(selection.nodes["flair"])  # e.g. File > Close Scene (review #16)
    before = logics.scene.GetNumberOfNodes()
    with pytest.raises(RuntimeError, match="removed from the scene"):
        runner.load_result()
    assert logics.scene.GetNumberOfNodes() == before
    assert list(tmp_path.iterdir()) == []


def test_a_chosen_interpreter_gets_the_startup_environment(logics, tmp_path):
    startup = {"PATH": "/usr/bin", "HOME": "/home/user"}
    runner = CaseRunner(logics, work_root=tmp_path, startup_environment=lambda: dict(startup))
    runner.options = RunOptions(python="/opt/conda/bin/python")
    env = runner.environment()
    assert env["PATH"] == "/usr/bin" and env["PYTHONPATH"] == str(PACKAGE_DIR)
    assert set(env) == {"PATH", "HOME", "PYTHONPATH", "nnUNet_n_proc_DA"}
    runner.options = RunOptions()  # Slicer's own PythonSlicer: Slicer's environment
    assert runner.environment()["PATH"] == os.environ["PATH"]
