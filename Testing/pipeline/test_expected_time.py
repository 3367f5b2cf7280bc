"""`expected-time`: the model's measured curve scaled by a calibration of this computer
(run.expected_time, issue 19 item 6)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from uncertaintyseg.networks.models import load_model
from uncertaintyseg.run import expected_time as et
from uncertaintyseg.stages.projection_curve import STUDY_KEY

PHANTOM = Path(__file__).resolve().parents[2] / "UncertaintySeg/Resources/Models/phantom"
SAME = {measure: {"ET": 0.8, "TC": 0.8, "WT": 0.8} for measure in ("dice", "auroc")}
CURVE = {"2": {"cpu_s": 20.0, **SAME}, "4": {"cpu_s": 30.0, **SAME},
         "8": {"cpu_s": 50.0, **SAME}, "16": {"cpu_s": 90.0, **SAME}}


def test_curve_seconds_interpolates_and_extrapolates_linearly():
    assert et.curve_seconds(CURVE, 8) == 50.0
    assert et.curve_seconds(CURVE, 12) == pytest.approx(70.0)  # half-way from 8 to 16
    assert et.curve_seconds(CURVE, 32) == pytest.approx(170.0)  # 16's slope: 5 s a view
    assert et.curve_seconds(CURVE, 1) == pytest.approx(15.0)  # 2 and 4's slope
    assert et.curve_seconds(CURVE, None) is None  # every grid origin: beyond any curve
    assert et.curve_seconds({}, 16) is None


def test_format_seconds_reads_as_a_person_would():
    assert et.format_seconds(42.4) == "42 s"
    assert et.format_seconds(125) == "2 min 5 s"


@pytest.fixture
def model_folder(tmp_path):
    """The phantom model with a CPU curve whose calibration says 0.04 s per view."""
    folder = tmp_path / "phantom"
    shutil.copytree(PHANTOM, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta[STUDY_KEY] = {"cpu": {"curve": CURVE, "cpu": "the study's CPU", "threads": 1,
                               et.CALIBRATION_KEY: {"view_s": 0.04}}}
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


def test_the_curve_is_scaled_by_this_computers_calibration(model_folder, tmp_path,
                                                          monkeypatch):
    monkeypatch.setenv(et.CACHE_ENV, str(tmp_path / "calibration.json"))
    model = load_model(str(model_folder))
    values = {"projections": "12", "threads": "1", "backend": "torch", "device": "cpu"}
    key = et.calibration_key(model, "torch", 1, "fp32")
    # this computer twice as fast per view as the study's: half the curve's 70 s
    monkeypatch.setattr(et, "_load", lambda: 0.0)  # as quiet as when it was timed
    (tmp_path / "calibration.json").write_text(json.dumps({key: {"view_s": 0.02, "load": 0.0}}))
    result = et.estimate(model, values)
    assert result["seconds"] == pytest.approx(35.0)
    assert result["projections"] == 12 and result["threads"] == 1
    assert "35 s" in result["message"]
    # two threads twice as fast again per view: the views' part (the curve's slope)
    # takes the two-thread ratio, the rest the one-thread ratio
    two = et.calibration_key(model, "torch", 2, "fp32")
    (tmp_path / "calibration.json").write_text(json.dumps(
        {key: {"view_s": 0.02, "load": 0.0}, two: {"view_s": 0.01, "load": 0.0}}))
    slope = et.view_slope(CURVE)
    assert 0 < slope < 70 / 12
    result = et.estimate(model, {**values, "threads": "2"})
    views = slope * 12
    assert result["seconds"] == pytest.approx((70 - views) * 0.5 + views * 0.25, abs=0.05)


def test_the_calibration_is_measured_once_and_cached(model_folder, tmp_path, monkeypatch):
    cache = tmp_path / "calibration.json"
    monkeypatch.setenv(et.CACHE_ENV, str(cache))
    monkeypatch.setattr(et, "_load", lambda: 3.0)  # a load average of 3, as measured
    model = load_model(str(model_folder))
    seconds, cached = et.cached_view_seconds(model, "torch", 1, "fp32")
    assert seconds > 0 and not cached
    stored = json.loads(cache.read_text())
    assert stored[et.calibration_key(model, "torch", 1, "fp32")]["view_s"] == seconds
    assert et.cached_view_seconds(model, "torch", 1, "fp32") == (seconds, True)
    # timed beside other jobs (a load of 5), then the computer is quiet: timed again,
    # and the faster of the two kept
    key = et.calibration_key(model, "torch", 1, "fp32")
    cache.write_text(json.dumps({key: {"view_s": 10.0, "load": 5.0}}))
    again, cached = et.cached_view_seconds(model, "torch", 1, "fp32")
    assert not cached and again < 10.0
    assert json.loads(cache.read_text())[key]["load"] == 3.0
    # an entry written before the load was recorded is timed again
    cache.write_text(json.dumps({key: {"view_s": 10.0}}))
    assert not et.cached_view_seconds(model, "torch", 1, "fp32")[1]
    # other weights are another model: measured anew
    (model_folder / "2d" / "checkpoint.pth").write_bytes(b"other weights")
    assert et.calibration_key(model, "torch", 1, "fp32") not in stored


def test_no_estimate_says_why(model_folder):
    model = load_model(str(model_folder))
    base = {"threads": "1", "backend": "torch", "device": "cpu"}
    other = et.estimate(model, {**base, "method": "mc-dropout"})
    assert other["seconds"] is None and "--method mc-dropout" in other["message"]
    paper = et.estimate(model, {**base, "projections": "paper"})
    assert paper["seconds"] is None and "every grid origin" in paper["message"]
    meta = json.loads((model_folder / "model.json").read_text())
    del meta[STUDY_KEY]["cpu"][et.CALIBRATION_KEY]
    (model_folder / "model.json").write_text(json.dumps(meta))
    stale = et.estimate(load_model(str(model_folder)), base)
    assert stale["seconds"] is None and "no calibration" in stale["message"]
    missing = et.estimate(load_model(str(PHANTOM)), base)
    assert missing["seconds"] is None and "no projection curve" in missing["message"]


def test_the_command_prints_the_estimate_as_json(model_folder):
    out = subprocess.run([sys.executable, "-m", "uncertaintyseg", "expected-time",
                          "--model", str(model_folder), "--threads", "1", "--device", "cpu",
                          "--projections", "8", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["projections"] == 8 and result["seconds"] > 0
    assert result["message"].startswith("about ")
