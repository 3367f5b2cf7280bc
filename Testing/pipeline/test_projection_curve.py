"""`--projections auto` from a measured curve (projection_curve, predict)."""

import json
from types import SimpleNamespace

import pytest

from uncertaintyseg.networks.devices import resolve_run, with_model_curve
from uncertaintyseg.stages.projection_curve import STUDY_KEY, TOLERANCE, choose, pick, smallest_within


def _row(dice, auroc, et_dice=None):
    """A curve row: the same Dice and AUROC on every region (ET's Dice may differ)."""
    return {"dice": {"ET": dice if et_dice is None else et_dice, "TC": dice, "WT": dice},
            "auroc": {"ET": auroc, "TC": auroc, "WT": auroc}}


CURVE = {"2": _row(0.80, 0.850), "4": _row(0.84, 0.857), "8": _row(0.84, 0.880),
         "16": _row(0.84, 0.892), "32": _row(0.84, 0.903)}


def test_auroc_without_a_knee_takes_the_largest_count():
    # the measurement: Dice is flat from 4, the AUROC still rises at 32
    assert smallest_within(CURVE) == 32


def test_the_smallest_count_within_the_tolerance_wins():
    curve = {**CURVE, "16": _row(0.84, 0.903 - TOLERANCE)}  # exactly at the tolerance
    assert smallest_within(curve) == 16
    curve["8"] = _row(0.84, 0.903 - TOLERANCE - 0.001)  # just beyond it
    assert smallest_within(curve) == 16


def test_ties_take_the_smaller_count():
    curve = {"4": _row(0.84, 0.9), "8": _row(0.84, 0.9), "16": _row(0.84, 0.9)}
    assert smallest_within(curve) == 4


def test_one_region_beyond_the_tolerance_rules_a_count_out():
    curve = {"4": _row(0.84, 0.9, et_dice=0.83), "8": _row(0.84, 0.9)}
    assert smallest_within(curve) == 8


def test_a_missing_count_or_value_is_not_chosen():
    curve = {"2": _row(0.84, 0.9), "16": _row(0.84, 0.9)}  # 4 and 8 never measured
    curve["2"]["auroc"]["WT"] = None  # no AUROC: cannot be shown within the tolerance
    assert smallest_within(curve) == 16
    assert smallest_within({}) is None


def test_no_count_within_takes_the_least_shortfall():
    # the best Dice at 8, the best AUROC at 32, and 32's Dice 0.023 below 8's (a case
    # whose WT Dice drops as the AUROC rises); 8's AUROC is just within (0.005 short)
    curve = {"4": _row(0.827, 0.921), "8": _row(0.830, 0.927), "16": _row(0.807, 0.931),
             "32": _row(0.807, 0.932)}
    assert pick(curve) == (8, pytest.approx(0.005))
    # now no count is within: 4 falls 0.011 short (AUROC), 8 0.012, 16 and 32 0.023 (Dice)
    curve["8"] = _row(0.830, 0.920)
    assert pick(curve) == (4, pytest.approx(0.011))


def test_auto_keeps_the_fixed_rule_where_no_count_is_within(tmp_path):
    """Trust over speed (DECISIONS #25): the nearest count falls short somewhere, and the
    model's fits were made at the fixed rule's count."""
    curve = {"4": _row(0.827, 0.921), "8": _row(0.830, 0.920), "16": _row(0.807, 0.931),
             "32": _row(0.807, 0.932)}
    model = _model(tmp_path, {"cpu": {"curve": curve, "measured": "2026-12-07"}})
    count, record = choose(model, "cpu", "preview")
    assert count == "preview" and record["chosen"] == "preview" and record["from_curve"]
    assert "the nearest, 4, falls 0.011 short" in record["why"]


def _model(tmp_path, curves):
    (tmp_path / "model.json").write_text(json.dumps({STUDY_KEY: curves}), encoding="utf-8")
    return SimpleNamespace(folder=tmp_path, name="m")


def test_the_curve_of_the_runs_device_is_used(tmp_path):
    model = _model(tmp_path, {"cpu": {"curve": CURVE, "measured": "2026-12-07",
                                      "counts": [2, 4, 8, 16, 32]}})
    count, record = choose(model, "cpu", "preview")
    assert count == 32 and record["from_curve"] and record["chosen"] == 32
    # no curve measured on a GPU: the fixed rule, and the report says why
    count, record = choose(model, "cuda", "paper")
    assert count == "paper" and not record["from_curve"]
    assert "no projection curve measured on cuda" in record["why"]


def test_a_model_without_a_folder_keeps_the_fixed_rule():
    count, record = choose(SimpleNamespace(folder=None, name="analytic"), "cpu", "preview")
    assert (count, record["from_curve"]) == ("preview", False)


@pytest.mark.parametrize("asked, expected", [("auto", 32), (8, 8), ("preview", "preview")])
def test_predict_resolves_auto_once_the_model_is_known(tmp_path, asked, expected):
    from uncertaintyseg.run.predict import settings_from

    model = _model(tmp_path, {"cpu": {"curve": CURVE}})
    settings = settings_from({"projections": asked, "device": "cpu"})
    resolved, record = with_model_curve(resolve_run(settings), settings, model)
    assert resolved.projections == expected
    assert resolved.projections_per_slice == (16 if expected == "preview" else expected)
    assert (record is None) == (asked != "auto")


def test_fits_note_names_the_fits_made_at_another_count():
    from uncertaintyseg.stages.projection_curve import fits_note, fitted_count

    meta = {"error_map": {"projections": 4}, "quality": {"projections": 4},
            "triage": {"threshold": 0.5}}  # an older triage block: no count recorded
    assert fits_note(meta, 4) is None
    note = fits_note(meta, 16)
    assert "16 projections" in note and "error map at 4" in note and "quality at 4" in note
    assert "triage at" not in note
    assert fitted_count([4, 4, 4]) == 4 and fitted_count([4, 16]) is None


def test_the_auroc_beyond_the_border_rules_a_count_out():
    # Dice and AUROC alike, but 4 loses what the views add away from the border
    curve = {c: {**_row(0.84, 0.95), "auroc_far": {"ET": 0.82, "TC": 0.84, "WT": 0.83}}
             for c in ("4", "8", "16")}
    curve["4"]["auroc_far"] = {"ET": 0.80, "TC": 0.84, "WT": 0.83}
    assert pick(curve) == (8, pytest.approx(0.0))


def test_fewer_than_min_auto_views_are_never_taken():
    from uncertaintyseg.stages.projection_curve import MIN_AUTO

    curve = {"2": _row(0.84, 0.9), "4": _row(0.84, 0.9), "8": _row(0.84, 0.9)}
    assert MIN_AUTO == 4 and smallest_within(curve) == 4  # 2 is as good, and still not taken
    assert smallest_within({"2": _row(0.84, 0.9)}) == 2  # a curve of nothing else
