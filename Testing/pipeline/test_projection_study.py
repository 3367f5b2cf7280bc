"""`evaluate --projection-study`: per-count scoring, the resumable cache, the model.json
block and the card."""

import json
import shutil

import pytest

from uncertaintyseg.evaluation import projection_study as study
from uncertaintyseg.networks.models import MODELS_DIR
from uncertaintyseg.stages.projection_curve import STUDY_KEY, choose


def _model_folder(tmp_path, val, source="phantom"):
    """A copy of a bundled model whose validation cases are `val` (brats-mini: its
    model.json alone, enough for the card)."""
    folder = tmp_path / "model"
    if source == "phantom":
        shutil.copytree(MODELS_DIR / "phantom", folder)
    else:
        folder.mkdir()
        shutil.copy(MODELS_DIR / source / "model.json", folder)
    meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    # The phantom's model.json predates sections the card renders: brats-mini's, with
    # the phantom's networks.
    full = json.loads((MODELS_DIR / "brats-mini" / "model.json").read_text(encoding="utf-8"))
    own = ("name", "description", "networks", "fusion_weights", "radius", "kernel_mm",
           "error_map")
    full.pop("feature_distance", None)  # names a file of brats-mini's folder
    meta = {**full, **{k: meta[k] for k in own if k in meta},
            "split": {**meta["split"], "val": list(val)}}
    (folder / "model.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder


def _record(case, count, dice, auroc, *, estimate=0.8, review=False, cpu_s=1.0, triage=0.4):
    regions = ("ET", "TC", "WT")
    return {"version": study.RECORD_VERSION, "case": case, "count": count,
            "dice": dict.fromkeys(regions, dice), "hd95": dict.fromkeys(regions, 2.0),
            "auroc": dict.fromkeys(regions, auroc), "auroc_far": dict.fromkeys(regions, 0.7),
            "estimated_dice": estimate, "review": review, "cpu_s": cpu_s,
            "triage_score": triage, "triage_review": triage > 0.5}


def test_a_scored_run_gives_the_studys_numbers():
    voxel = {r: {"dice": d, "hd95": h} for r, d, h in (("ET", 0.7, 3.0), ("TC", 0.8, 2.0),
                                                        ("WT", 0.9, 1.0))}
    uncertainty = {r: {"auroc": 0.9, "auroc_far": 0.6} for r in ("ET", "TC", "WT")}
    report = {"quality": {"estimated_dice": 0.85, "flag": "review"},
              "timings_s": {"total": 12.0, "uncertainty": 8.0},
              "triage": {"score": 0.61, "flag": "review"}}
    row = study.summarise({"voxel": voxel, "uncertainty": uncertainty, "report": report},
                          cpu_s=10.04)
    assert row["dice"] == {"ET": 0.7, "TC": 0.8, "WT": 0.9}
    assert row["hd95"]["ET"] == 3.0 and row["auroc_far"]["WT"] == 0.6
    assert (row["estimated_dice"], row["review"], row["cpu_s"]) == (0.85, True, 10.04)
    assert (row["wall_s"], row["uncertainty_s"]) == (12.0, 8.0)
    assert (row["triage_score"], row["triage_review"]) == (0.61, True)


def test_the_curve_is_the_mean_over_cases_per_count():
    records = [_record("A", 2, 0.8, 0.8, estimate=0.9, review=True, cpu_s=2.0, triage=0.6),
               _record("B", 2, 0.6, 0.9, estimate=0.5, cpu_s=4.0, triage=0.2),
               _record("A", 4, 0.9, 0.9, estimate=None)]
    curve = study.mean_curve(records)
    assert list(curve) == ["2", "4"]
    assert curve["2"]["dice"]["WT"] == pytest.approx(0.7)
    assert curve["2"]["auroc"]["ET"] == pytest.approx(0.85)
    assert curve["2"]["cpu_s"] == pytest.approx(3.0)
    assert curve["2"]["quality_abs_error"] == pytest.approx(0.1)  # |0.9-0.8|, |0.5-0.6|
    assert curve["2"]["review_flags"] == 1
    assert curve["2"]["triage_score"] == pytest.approx(0.4)
    assert curve["2"]["triage_reviews"] == 1
    assert curve["4"]["quality_abs_error"] is None  # no estimate: nothing to compare
    assert curve["4"]["cases"] == ["A"]


def test_a_killed_study_resumes_where_it_stopped(tmp_path):
    model = _model_folder(tmp_path, ["A", "B"])
    for name in ("A", "B"):
        (tmp_path / "cases" / name).mkdir(parents=True)
    calls = []

    def runner(case_dir, count, _model, out, _values):
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed during the fourth run
        calls.append((case_dir.name, count))
        return _record(case_dir.name, count, 0.8, 0.9)

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        study.run_study(model, tmp_path / "cases", out, (2, 4), runner=runner)
    assert calls == [("A", 2), ("A", 4), ("B", 2)]
    calls.clear()
    records = study.run_study(model, tmp_path / "cases", out, (2, 4), runner=runner)
    assert calls == [("B", 4)]  # only the one not measured
    assert len(records) == 4
    # a study cut short is stored for the cases it finished
    only = study.run_study(model, tmp_path / "cases", out, (2, 4), runner=runner, only=["A"])
    assert {r["case"] for r in only} == {"A"} and len(only) == 2
    # records of other values, or of another version of the model, are measured again
    calls.clear()
    study.run_study(model, tmp_path / "cases", out, (2,), values={"method": "tta-2d"},
                    runner=runner,
                    only=["A"])
    assert calls == [("A", 2)]
    meta = json.loads((model / "model.json").read_text(encoding="utf-8"))
    (model / "model.json").write_text(json.dumps({**meta, "version": "99"}), encoding="utf-8")
    calls.clear()
    study.run_study(model, tmp_path / "cases", out, (2,), runner=runner, only=["A"])
    assert calls == [("A", 2)]


def test_missing_validation_cases_are_named(tmp_path):
    model = _model_folder(tmp_path, ["A", "B"])
    (tmp_path / "cases" / "A").mkdir(parents=True)
    with pytest.raises(ValueError, match="validation case.*B"):
        study.validation_cases(model, tmp_path / "cases")


def test_the_block_round_trips_through_model_json_and_the_card(tmp_path):
    model = _model_folder(tmp_path, ["A"], source="brats-mini")
    records = [_record("A", 2, 0.80, 0.85), _record("A", 4, 0.84, 0.90),
               _record("A", 8, 0.84, 0.901)]
    block = study.curve_block(records, "cpu", threads=1, backend="openvino")
    block["auto"] = 4
    study.store_curve(model, block, figure=b"png")
    study.store_curve(model, {**block, "device": "cuda"})  # another device: both kept
    stored = json.loads((model / "model.json").read_text(encoding="utf-8"))[STUDY_KEY]
    assert set(stored) == {"cpu", "cuda"}
    assert stored["cpu"] == json.loads(json.dumps(block))
    meta = type("Model", (), {"folder": model, "name": "phantom"})
    assert choose(meta, "cpu", "preview")[0] == 4
    card = (model / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## Projections per slice" in card and "![projection curve]" in card
    assert "| 4 | 0.840 / 0.840 / 0.840 |" in card
    assert "| 0.400 (0) | 1.0 |" in card  # triage score (reviews), CPU-seconds
    assert "`--projections auto` on cpu: 4 (the smallest count within 0.005" in card
    block.update(auto="preview", nearest=8, auto_shortfall=0.012)
    study.store_curve(model, block)
    card = (model / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "auto` on cpu: preview (no count is within 0.005" in card
    assert "the nearest, 8, falls 0.012 short" in card
    assert (model / study.FIGURE).read_bytes() == b"png"


@pytest.mark.slow
def test_the_study_runs_the_real_pipeline(tmp_path):
    from uncertaintyseg.files.phantom import write_phantom_case

    case = write_phantom_case(tmp_path / "cases", seed=2, shape=(32, 64, 56))
    model = _model_folder(tmp_path, [case.name])
    block = study.write_projection_study(model, tmp_path / "cases", tmp_path / "out",
                                         values={"threads": 1, "device": "cpu"},
                                         counts=(2, 4))
    assert block["counts"] == [2, 4] and block["device"] == "cpu"
    for row in block["curve"].values():
        assert 0.0 <= row["dice"]["WT"] <= 1.0 and row["cpu_s"] > 0
        assert row["auroc"]["WT"] is not None
    assert (model / study.FIGURE).read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "out" / study.STUDY_FOLDER / "runs" / "p2" / case.name).exists()
    # `auto` now takes the curve's count, and report.json says so
    from uncertaintyseg.run.predict import run

    result, _ = run(case, {"projections": "auto", "threads": 1, "device": "cpu",
                           "model": str(model)})
    settings = result.report["settings"]
    assert settings["projections"] == block["auto"] in (2, 4)
    assert settings["projections_auto"]["from_curve"] is True
    assert settings["projections_per_slice_asked"] == block["auto"]


def test_evaluate_needs_results_or_a_study(tmp_path, capsys):
    from uncertaintyseg.commands.cli import main

    (tmp_path / "cases").mkdir()
    code = main(["evaluate", "--cases", str(tmp_path / "cases"), "--out", str(tmp_path / "o"),
                 "--progress", "none"])
    assert code == 2
    assert "--projection-study MODEL_DIR" in capsys.readouterr().err
    code = main(["evaluate", "--cases", str(tmp_path / "cases"), "--out", str(tmp_path / "o"),
                 "--progress", "none", "--projection-study", str(tmp_path / "none")])
    assert code == 2
    assert "model.json: not found" in capsys.readouterr().err
