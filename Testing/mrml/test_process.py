"""The background-process runner against a small fake process (fake_pipeline.py).

Pure Python: no slicer-core needed. The fake prints the CLI's JSON-lines protocol; these
tests check parsing, the final folder, error messages and that cancel ends the whole
process tree, grandchildren included.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from UncertaintySegLib.process import (PipelineProcess, ProgressEvent, overall_fraction,
                                       parse_progress_line, predict_command)
from uncertaintyseg_shared.stages import PREDICT_STAGES

FAKE = str(Path(__file__).with_name("fake_pipeline.py"))


def run_to_end(process: PipelineProcess, timeout: float = 20.0) -> list[ProgressEvent]:
    process.start()
    events, deadline = [], time.monotonic() + timeout
    while not process.finished():
        events += process.poll()
        assert time.monotonic() < deadline, "the fake process did not finish"
        time.sleep(0.02)
    return events + process.poll()


def test_parse_progress_line_accepts_protocol_and_rejects_other_text():
    event = parse_progress_line('{"stage": "refine", "done": 3, "total": 4, "message": "cube 3"}')
    assert event == ProgressEvent("refine", 3, 4, "cube 3")
    assert event.fraction == 0.75
    for line in ("plain log text", "{not json", '{"done": 1}', "[1, 2]",
                 '{"stage": "x", "done": "many"}'):
        assert parse_progress_line(line) is None


def test_overall_fraction_counts_earlier_stages_as_done():
    start_refine = overall_fraction(ProgressEvent("refine", 0, 10))
    mid_refine = overall_fraction(ProgressEvent("refine", 5, 10))
    end_write = overall_fraction(ProgressEvent("write", 1, 1))
    assert 0.5 < start_refine < mid_refine < end_write <= 1.0
    assert overall_fraction(ProgressEvent(PREDICT_STAGES[0].name, 0, 1)) == 0.0
    assert overall_fraction(ProgressEvent("not-a-stage", 1, 1)) == 0.0
    assert overall_fraction(ProgressEvent("finished", 1, 1)) == 1.0


def test_successful_run_streams_events_and_names_output(tmp_path):
    process = PipelineProcess([sys.executable, FAKE, "ok", str(tmp_path / "out")])
    events = run_to_end(process)
    first = PREDICT_STAGES[0].name
    assert [e.stage for e in events][:2] == [first, first]
    assert events[-1] == ProgressEvent("finished", 1, 1, str(tmp_path / "out"))
    assert process.returncode == 0
    assert process.output_folder() == tmp_path / "out"
    assert process.error_message() is None
    assert process.log == ["a line for the log, not JSON"]


def test_error_line_becomes_the_message():
    process = PipelineProcess([sys.executable, FAKE, "error"])
    run_to_end(process)
    assert process.returncode == 2
    assert process.output_folder() is None
    assert process.error_message() == "error: FLAIR file is empty: case_flair.nii.gz"
    assert any("Traceback" in line for line in process.log)


def test_input_check_refusal_names_the_panels_checkbox_not_the_flag():
    from UncertaintySegLib.process import PANEL_FORCE_HINT

    process = PipelineProcess([sys.executable, FAKE, "unprepared"],
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    run_to_end(process)
    message = process.error_message()
    assert message.startswith("error: the non-zero region is 3900 ml: skull-strip the case.")
    assert message.endswith(PANEL_FORCE_HINT) and "--force" not in message


def test_crash_without_error_line_reports_exit_code_and_log_tail():
    process = PipelineProcess([sys.executable, FAKE, "crash"])
    run_to_end(process)
    message = process.error_message()
    assert "exit code 3" in message
    assert "log line 19" in message and "log line 0\n" not in message


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as ended.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text(encoding="utf-8"))


@pytest.mark.skipif(os.name == "nt", reason="POSIX process groups; Windows uses taskkill /T")
def test_cancel_kills_the_child_of_the_child(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    process = PipelineProcess([sys.executable, FAKE, "hang", str(pid_file)])
    process.start()
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text(encoding="utf-8")):
        assert time.monotonic() < deadline and process.running(), "the fake did not start"
        time.sleep(0.05)
    grandchild = int(pid_file.read_text(encoding="utf-8"))
    assert _alive(grandchild)
    process.cancel(grace_s=0.5)
    process.wait(timeout=10)
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild), "the grandchild survived cancel"
    assert not process.running()
    assert process.error_message().startswith("Cancelled")


def test_predict_command_passes_only_what_differs_from_the_defaults(tmp_path):
    values = {"model": "phantom", "device": "cpu", "projections": "preview",
              "kernel_mm": (32.0, 32.0, 64.0), "max_overlap": 0.4, "min_score_fraction": 0.2,
              "max_boxes": 8}
    command = predict_command("python", tmp_path / "case", tmp_path / "out", values)
    assert command[:4] == ["python", "-m", "uncertaintyseg", "predict"]
    text = " ".join(command)
    for part in ("--case", "--out", "--progress json", "--model phantom", "--device cpu",
                 "--projections preview", "--kernel-mm 32 32 64", "--min-score-fraction 0.2"):
        assert part in text
    # 0.4 and 8 are the options' defaults: left to the pipeline (and the model).
    assert "--max-overlap" not in text and "--max-boxes" not in text
    cli = pytest.importorskip("uncertaintyseg.commands.cli", reason="the pipeline's CLI is not importable")
    args = cli.build_parser().parse_args(command[3:])
    assert args.projections == "preview" and args.kernel_mm == [32.0, 32.0, 64.0]
    assert args.progress == "json" and args.min_score_fraction == 0.2


def test_run_options_from_the_parameter_node():
    from types import SimpleNamespace

    from UncertaintySegLib.runner import RunOptions

    parameters = SimpleNamespace(modelName="default", modelFolder="", device="auto",
                                 projections="auto", method="hybrid", outputs="standard",
                                 useModelKernels=True,
                                 kernelEt=30.0,
                                 kernelTc=31.0, kernelWt=60.0, maxOverlap=0.4,
                                 minScoreFraction=0.1, maxBoxes=4, region="TC", python="",
                                 force=False)
    options = RunOptions.from_parameters(parameters)
    assert options.python is None and options.region == "TC" and not options.force
    # The model's own cube sizes unless the user unticks the box; defaults are not sent.
    assert predict_command("py", "c", "o", options.values)[10:] == ["--max-boxes", "4"]
    parameters.useModelKernels = False
    assert RunOptions.from_parameters(parameters).values["kernel_mm"] == (30.0, 31.0, 60.0)
    parameters.modelName, parameters.modelFolder = "phantom", "/models/mine"
    assert RunOptions.from_parameters(parameters).values["model"] == "/models/mine"
    parameters.modelFolder = ""
    assert RunOptions.from_parameters(parameters).values["model"] == "phantom"
    parameters.method = "tta-2d"
    assert "--method" in predict_command("py", "c", "o",
                                         RunOptions.from_parameters(parameters).values)
    parameters.outputs = "minimal"   # a large volume: the least memory and disk
    command = predict_command("py", "c", "o", RunOptions.from_parameters(parameters).values)
    assert command[command.index("--outputs") + 1] == "minimal" and "--force" not in command
    parameters.force = True  # "Run even if the inputs look unprepared"
    options = RunOptions.from_parameters(parameters)
    command = predict_command("py", "c", "o", options.values, force=options.force)
    assert command[-1] == "--force"
    cli = pytest.importorskip("uncertaintyseg.commands.cli", reason="the pipeline's CLI is not importable")
    assert cli.build_parser().parse_args(command[3:]).force is True
