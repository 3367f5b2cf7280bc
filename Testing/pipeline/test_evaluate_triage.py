"""Triage evaluation: candidate scores, group statistics, the calibrated threshold."""

import json

import numpy as np
import pytest
from scipy import stats

from uncertaintyseg.evaluation import triage
from uncertaintyseg.evaluation.pairing import Output, Reference
from uncertaintyseg.files.io import InputError
from uncertaintyseg.files.label_maps import regions_to_labels
from uncertaintyseg.run.pipeline import triage as pipeline_triage


def _case(seed):
    rng = np.random.default_rng(seed)
    regions = np.zeros((3, 12, 20, 20), bool)
    regions[2, 3:9, 5:15, 5:15] = True
    regions[1, 4:8, 7:13, 7:13] = True
    regions[0, 5:7, 8:12, 8:12] = True
    brain = np.zeros((12, 20, 20), bool)
    brain[1:11, 2:18, 2:18] = True
    uncertainty = rng.random((3, 12, 20, 20)).astype(np.float32)
    reference = Reference("c", regions, brain, (1.0, 1.0, 1.0), None, None, "brats2018")
    return reference, Output(regions, None, uncertainty)


def test_candidate_score_recomputes_the_pipelines_triage_score():
    reference, output = _case(0)
    scores = triage.candidate_scores(reference, output)
    labels = regions_to_labels(output.regions, "brats2018")
    assert scores["dilated_wt_max"] == pytest.approx(
        pipeline_triage(output.uncertainty, labels)["score"], abs=1e-4)
    u_wt = output.uncertainty[2]
    assert scores["wt_mean"] == pytest.approx(u_wt[output.regions[2]].mean())
    assert scores["uncertain_ratio"] == pytest.approx(
        ((u_wt > 0.5) & reference.brain).sum() / output.regions[2].sum())


def _records(scores, dice, projections=16):
    return {f"c{i}": {"voxel": {"WT": {"dice": d}},
                      "report": {"triage": {"score": s, "threshold": 0.25,
                                            "flag": "review" if s >= 0.25 else "routine"},
                                 "settings": {"projections_per_slice_asked": projections}},
                      "case_scores": {"a": s, "b": -s}}
            for i, (s, d) in enumerate(zip(scores, dice))}


def test_summary_groups_and_tests_match_scipy():
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    dice = [0.95, 0.9, 0.92, 0.8, 0.7, 0.75]
    rows = triage.case_table(_records(scores, dice))
    summary = triage.triage_summary(rows)
    flagged = [d for s, d in zip(scores, dice) if s >= 0.25]
    routine = [d for s, d in zip(scores, dice) if s < 0.25]
    assert summary["flagged"] == 4
    assert summary["wt_dice_flagged"] == pytest.approx(np.median(flagged))
    assert summary["mann_whitney_p"] == pytest.approx(
        stats.mannwhitneyu(flagged, routine).pvalue)
    assert summary["spearman_rho"] == pytest.approx(stats.spearmanr(scores, dice).statistic)
    ranking = {r["score"]: r["spearman_rho"] for r in triage.score_ranking(_records(scores, dice))}
    assert ranking["a"] == pytest.approx(-ranking["b"]) and ranking["a"] < 0


def test_calibrate_flags_the_worst_quarter_and_writes_model_json(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"name": "m", "version": "3"}))
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    rows = triage.case_table(_records(scores, [0.9] * 8))
    stored = triage.calibrate(tmp_path, rows)
    assert stored["threshold"] == pytest.approx(np.quantile(scores, 0.75), abs=1e-4)
    assert sum(s >= stored["threshold"] for s in scores) == 2  # a quarter of 8
    model = json.loads((tmp_path / "model.json").read_text(encoding="utf-8"))
    assert model["triage"]["threshold"] == stored["threshold"] and model["version"] == "3"
    assert model["triage"]["projections"] == 16  # the count the threshold holds at
    assert not list(tmp_path.glob(".*tmp"))  # written through a temporary file
    with pytest.raises(InputError, match="model.json"):
        triage.calibrate(tmp_path / "missing", rows)


def test_spearman_p_is_exact_for_few_cases():
    rho, p = triage.spearman([0.1, 0.2, 0.3], [0.8, 0.85, 0.9])
    assert rho == 1.0 and p == pytest.approx(2 / 6)  # 2 of the 6 orders are as extreme
    x = np.arange(12.0)
    y = x + np.random.default_rng(0).normal(0, 3, 12)
    assert triage.spearman(x, y)[1] == pytest.approx(stats.spearmanr(x, y).pvalue)
