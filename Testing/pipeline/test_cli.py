"""The command line: predict, metrics, phantom, errors, JSON progress, no partial output."""

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from uncertaintyseg.commands import cli
from uncertaintyseg.files import contract
from uncertaintyseg.evaluation.pairing import Output, load_reference
from uncertaintyseg.evaluation.table import voxel_scores
from uncertaintyseg.files.label_maps import labels_to_regions
from uncertaintyseg.evaluation.metrics import case_metrics
from uncertaintyseg.files.phantom import write_phantom_case

SMALL = ["--model", "analytic", "--projections", "3", "--kernel-mm", "12", "12", "24",
         "--max-boxes", "2", "--batch-size", "3", "--no-snapshot"]


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    return write_phantom_case(tmp_path_factory.mktemp("case"), seed=5, shape=(20, 48, 40))


def test_help_explains_units(capsys):
    with pytest.raises(SystemExit):
        cli.main(["predict", "--help"])
    text = capsys.readouterr().out
    for phrase in ("mm", "pixels", "--projections", "preview", "paper", "--device"):
        assert phrase in text


def test_predict_writes_contract_with_input_geometry(case_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["predict", "--case", str(case_dir), "--out", str(out),
                     "--progress", "none", *SMALL]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"segmentation.nii.gz", "uncertainty.nii.gz", "report.json",
            "refinement_boxes.json", "probabilities_3d.nii.gz"} <= names
    seg = sitk.ReadImage(str(out / "segmentation.nii.gz"))
    flair = sitk.ReadImage(str(next(case_dir.glob("*_flair.nii.gz"))))
    assert seg.GetSize() == flair.GetSize() and seg.GetOrigin() == flair.GetOrigin()
    assert seg.GetSpacing() == flair.GetSpacing()
    assert "load" in json.loads((out / "report.json").read_text(encoding="utf-8"))["timings_s"]
    assert "  quality: " in capsys.readouterr().out


@pytest.mark.slow
def test_json_progress_on_stdout(case_dir, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "uncertaintyseg", "predict", "--case",
                           str(case_dir), "--out", str(out), "--progress", "json", *SMALL],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    stages = {line["stage"] for line in lines}
    assert {"uncertainty", "write", "finished"} <= stages
    assert lines[-1]["message"] == str(out.resolve())


def test_missing_modality_is_a_clear_error(case_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in case_dir.iterdir():
        if "_t1ce" not in path.name:
            (broken / path.name).write_bytes(path.read_bytes())
    code = cli.main(["predict", "--case", str(broken), "--out", str(tmp_path / "o"),
                     "--progress", "none", *SMALL])
    assert code == cli.EXIT_INPUT_ERROR
    assert "t1ce" in capsys.readouterr().err.lower()
    assert not (tmp_path / "o").exists()


def test_interrupted_run_leaves_no_output(case_dir, tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(contract, "_write_json", interrupt)
    code = cli.main(["predict", "--case", str(case_dir), "--out", str(tmp_path / "o"),
                     "--progress", "none", *SMALL])
    assert code == cli.EXIT_CANCELLED
    assert list(tmp_path.iterdir()) == []


def test_metrics_command_tables(case_dir, tmp_path, capsys):
    seg = next(case_dir.glob("*_seg.nii.gz"))
    image = sitk.ReadImage(str(seg))
    array = sitk.GetArrayFromImage(image)
    shifted = np.roll(array, 2, axis=2)
    pred = sitk.GetImageFromArray(shifted)
    pred.CopyInformation(image)
    sitk.WriteImage(pred, str(tmp_path / "pred.nii.gz"))
    assert cli.main(["metrics", "--ref", str(seg), "--pred", str(tmp_path / "pred.nii.gz"),
                     "--json", str(tmp_path / "m.json"), "--csv", str(tmp_path / "m.csv")]) == 0
    table = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert set(table) == {"ET", "TC", "WT"}
    assert 0 < table["WT"]["dice"] < 1 and table["WT"]["hd95"] > 0
    assert "WT" in capsys.readouterr().out and (tmp_path / "m.csv").read_text(encoding="utf-8").count("\n") >= 3
    # the case's images lie beside --ref: the brain mask is the voxel set, as evaluate's
    reference = load_reference(case_dir)
    output = Output(labels_to_regions(shifted))
    expected = voxel_scores(reference, output)
    for region, scores in expected.items():
        assert table[region] == pytest.approx(scores), region
    assert not reference.brain.all()  # the brain mask is not the whole grid
    assert table["WT"]["specificity"] != pytest.approx(case_metrics(array, shifted, (1, 1, 1))
                                                       ["WT"]["specificity"])


def test_metrics_grid_mismatch_says_resample_in_plain_numbers(case_dir, tmp_path, capsys):
    seg = next(case_dir.glob("*_seg.nii.gz"))
    moved = sitk.ReadImage(str(seg))
    moved.SetOrigin((0.0, 0.0, 7.5))
    sitk.WriteImage(moved, str(tmp_path / "pred.nii.gz"))
    assert cli.main(["metrics", "--ref", str(seg), "--pred", str(tmp_path / "pred.nii.gz")]) == 2
    message = capsys.readouterr().err
    assert "origin (" in message and "vs (0, 0, 7.5) mm" in message and "resample pred.nii.gz onto" in message
    assert "np.float64" not in message and "co-register" not in message


def test_phantom_command(tmp_path):
    assert cli.main(["phantom", "--out", str(tmp_path / "p"), "--seed", "2",
                     "--naming", "brats2023"]) == 0
    assert list((tmp_path / "p").rglob("*-t1c.nii.gz"))


def test_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    assert cli.main(["demo", "--out", str(tmp_path), *SMALL]) == cli.EXIT_INPUT_ERROR
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert "not made by" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs_the_phantom_model_end_to_end(tmp_path):
    # The README's first command, made cheap: few projections and boxes.
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--progress", "none", "--projections", "2",
                     "--max-boxes", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    report = json.loads((out / "result" / "report.json").read_text(encoding="utf-8"))
    assert report["model"]["name"] == "phantom" and report["model"]["trained"] is True
    assert metrics["WT"]["dice"] > 0.8
    # A good result on a model without a fitted quality section: no estimate, and no
    # limit of quality_model.DEFAULT_LIMITS passed; the signals are the run's own.
    quality = report["quality"]
    assert quality["flag"] == "routine" and quality["estimated_dice"] is None
    assert quality["signals"]["volume_ml"]["WT"] == pytest.approx(report["volumes_ml"]["WT"],
                                                                  rel=0.1)
    assert quality["signals"]["outside_brain"] < 0.01
    # The phantom model has no feature-distance fit: recorded as not available.
    assert quality["signals"]["feature_distance"] is None and "feature_distance" not in report
    assert (out / "result" / "snapshot.png").stat().st_size > 10_000
    pytest.importorskip("slicer")
    assert (out / "demo.mrb").stat().st_size > 10_000
