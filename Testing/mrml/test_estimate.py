"""The panel's time estimate (UncertaintySegLib.estimate): the real `expected-time`
command run as a run would be (CaseRunner's interpreter, environment and folder), its
JSON line read back; a failure becomes a sentence, not an exception."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from mrml_helpers import SLICER_CORE

slicer = pytest.importorskip("slicer", reason=SLICER_CORE)

from UncertaintySegLib.estimate import TimeEstimate, read_estimate  # noqa: E402
from UncertaintySegLib.runner import CaseRunner, RunOptions  # noqa: E402

PHANTOM = Path(__file__).resolve().parents[2] / "UncertaintySeg/Resources/Models/phantom"
SAME = {measure: {"ET": 0.8, "TC": 0.8, "WT": 0.8} for measure in ("dice", "auroc")}


def _finish(estimate: TimeEstimate, timeout: float = 300.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        sentence = estimate.poll()
        if sentence is not None:
            return sentence
        assert time.monotonic() < deadline, "expected-time did not finish"
        time.sleep(0.1)


def test_read_estimate_takes_the_last_json_line_with_a_message():
    lines = ["note: something", '{"stage": "x"}', '{"seconds": 12.0, "message": "about 12 s"}',
             "not json {"]
    assert read_estimate(lines)["message"] == "about 12 s"
    assert read_estimate(["error: no model"]) is None


def test_the_estimate_of_the_panels_options(tmp_path, monkeypatch):
    folder = tmp_path / "phantom"
    shutil.copytree(PHANTOM, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["projection_study"] = {"cpu": {
        "curve": {"8": {"cpu_s": 40.0, **SAME}, "16": {"cpu_s": 80.0, **SAME}},
        "cpu": "the study's CPU", "calibration": {"view_s": 1e-5}}}
    (folder / "model.json").write_text(json.dumps(meta))
    options = RunOptions({"model": str(folder), "projections": "16", "device": "cpu"})
    estimate = TimeEstimate(CaseRunner(None, work_root=tmp_path / "runs"))
    estimate.start(options)
    assert estimate.running() or estimate.process is not None
    sentence = _finish(estimate)
    # this computer's 2D view takes far longer than the study's 10 us: minutes, not seconds
    assert sentence.startswith("about ") and " min " in sentence, sentence
    assert "16 projections per slice" in sentence


def test_a_failed_estimate_says_why(tmp_path):
    options = RunOptions({"model": str(tmp_path / "no-such-model")})
    estimate = TimeEstimate(CaseRunner(None, work_root=tmp_path / "runs"))
    estimate.start(options)
    sentence = _finish(estimate)
    assert sentence.startswith("No time estimate: ") and "no-such-model" in sentence
