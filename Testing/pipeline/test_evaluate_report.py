"""report.html names what was evaluated (each run's model, version and settings, the
cases), has a per-case table, and with too few cases says so instead of a p or a box."""

import math
from pathlib import Path

from uncertaintyseg import REGIONS
from uncertaintyseg.evaluation import triage
from uncertaintyseg.evaluation.pairing import Method
from uncertaintyseg.evaluation.report import write_report
from uncertaintyseg.evaluation.runner import CaseScores, Evaluation
from uncertaintyseg.evaluation.summary import write_voxel_tables
from uncertaintyseg.evaluation.table import MIN_WILCOXON_PAIRS, table1

RUN_REPORT = {"model": {"name": "brats-mini", "version": 4, "trained": True},
              "software": {"name": "uncertaintyseg", "version": "0.1.0"},
              "settings": {"method": "hybrid", "projections": "preview"},
              "triage": {"score": 0.2, "threshold": 0.25, "flag": "routine"}}


def _record(dice: float, report: dict | None) -> dict:
    voxel = {r: {"dice": dice, "hd95": 2.0, "sensitivity": dice, "specificity": 0.99,
                 "accuracy": 0.98} for r in REGIONS}
    return {"voxel": voxel, "report": report or {}}


def _evaluation(n_cases: int) -> Evaluation:
    methods = [Method("fused", Path("/runs")), Method("other", Path("/other"), "labels")]
    evaluation = Evaluation(methods, {m.name: {} for m in methods})
    for index in range(n_cases):
        case = CaseScores(f"Case_{index:02d}")
        case.records = {"fused": _record(0.8 + 0.01 * index, RUN_REPORT),
                        "other": _record(0.7 + 0.02 * index, None)}
        evaluation.add(case)
    return evaluation


def test_few_cases_are_said_not_tested_nor_plotted(tmp_path):
    evaluation = _evaluation(2)
    table = write_voxel_tables(evaluation, tmp_path)
    assert "No Wilcoxon test: 2 case(s)" in table["markdown"]
    assert "not tested" in table["markdown"] and "nan" not in table["markdown"]
    assert "No box plot for fused (2), other (2)" in table["markdown"]
    assert table["figures"] == {} and not list(tmp_path.glob("box_*.png"))
    rows = triage.case_table(evaluation.records["fused"])
    sections = {"table1": table, "triage": {"rows": rows, "as_run": triage.triage_summary(rows)}}
    page = write_report(tmp_path / "report.html", evaluation, sections, "").read_text("utf-8")
    assert "p nan" not in page and "rho(score, WT Dice) n/a (too few cases)" in page


def test_enough_cases_are_tested_and_plotted(tmp_path):
    evaluation = _evaluation(MIN_WILCOXON_PAIRS)
    table = write_voxel_tables(evaluation, tmp_path)
    assert "Two-sided Wilcoxon" in table["markdown"] and "No box plot" not in table["markdown"]
    assert set(table["figures"]) == {"box_dice.png", "box_hd95.png"}
    scores = {m: {c: r["voxel"] for c, r in cases.items()}
              for m, cases in evaluation.records.items()}
    assert not math.isnan(table1(scores, metrics=("dice",))[0]["p fused vs other"])


def test_report_names_the_model_settings_and_cases_with_a_per_case_table(tmp_path):
    evaluation = _evaluation(2)
    sections = {"table1": write_voxel_tables(evaluation, tmp_path)}
    page = write_report(tmp_path / "report.html", evaluation, sections, "").read_text("utf-8")
    assert "model brats-mini version 4 (trained); uncertaintyseg 0.1.0" in page
    assert "settings: method hybrid, projections preview" in page
    assert "other: /other (no model recorded" in page
    assert "Cases scored (2): Case_00, Case_01" in page
    # the per-case table: ET / TC / WT Dice of each method
    assert "<td>Case_01</td><td>0.810 / 0.810 / 0.810</td><td>0.720 / 0.720 / 0.720</td>" in page
