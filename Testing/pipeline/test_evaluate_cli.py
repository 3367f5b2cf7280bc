"""`uncertaintyseg evaluate` end to end on phantom cases with synthetic output folders
(written through the real contract), and its resumability and error handling."""

import csv
import json
import shutil
import subprocess

import numpy as np
import pytest
from scipy import ndimage, stats

from uncertaintyseg.commands.cli import main
from uncertaintyseg.files.contract import CaseResult, write_outputs
from uncertaintyseg.files.convert import label_file
from uncertaintyseg.files.io import load_case
from uncertaintyseg.stages.kernels import Box
from uncertaintyseg.files.label_maps import labels_to_regions, load_labels, regions_to_labels
from uncertaintyseg.evaluation.metrics import dice

pytestmark = pytest.mark.slow  # evaluate end to end on four phantom cases, the browser
SHAPE = (24, 48, 40)


def write_run(case_dir, results_root, erode: int, score: float):
    """An output folder whose fused WT is the reference eroded `erode` times and whose
    P2D is the reference dilated once; uncertainty is high on the reference's border."""
    case = load_case(case_dir=case_dir)
    labels, convention = load_labels(label_file(case_dir))
    regions = labels_to_regions(labels)
    fused = np.stack([ndimage.binary_erosion(r, iterations=erode) if erode else r
                      for r in regions])
    two_d = np.stack([ndimage.binary_dilation(r) for r in regions])
    border = np.stack([ndimage.binary_dilation(r, iterations=2) & ~ndimage.binary_erosion(
        r, iterations=2) for r in regions])
    result = CaseResult(
        reference=case.reference, labels=regions_to_labels(fused, convention),
        probabilities=np.where(fused, 0.9, 0.1).astype(np.float32),
        probabilities_2d=np.where(two_d, 0.8, 0.2).astype(np.float32),
        probabilities_3d=np.full(fused.shape, -1.0, np.float32),
        uncertainty=np.where(border, 0.8, 0.05).astype(np.float32),
        boxes=[Box("WT", 1, 10.0, (4, 8, 8), (8, 16, 16)), Box("ET", 1, 5.0, (8, 16, 12), (4, 8, 8))],
        report={"software": {"name": "uncertaintyseg"},
                "settings": {"min_component_fraction": None},
                "triage": {"score": score, "threshold": 0.25,
                           "flag": "review" if score >= 0.25 else "routine"}})
    write_outputs(result, results_root / case.case_id, snapshot=False)
    return fused, two_d, regions


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from uncertaintyseg.files.phantom import write_phantom_case

    root = tmp_path_factory.mktemp("study")
    cases, results = root / "cases", root / "results"
    truth = {}
    for seed, erode, score in ((1, 0, 0.1), (2, 1, 0.3), (3, 2, 0.5), (4, 1, 0.2)):
        case_dir = write_phantom_case(cases, seed=seed, shape=SHAPE)
        truth[case_dir.name] = write_run(case_dir, results, erode, score)
    return cases, results, truth


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_evaluate_scores_fused_and_2d_only_as_computed_directly(study, tmp_path):
    cases, results, truth = study
    out = tmp_path / "eval"
    assert main(["evaluate", "--cases", str(cases), "--results", str(results),
                 "--out", str(out), "--progress", "none", "--no-report"]) == 0
    rows = {(r["method"], r["case"], r["region"]): r for r in _rows(out / "per_case.csv")}
    for case_id, (fused, two_d, regions) in truth.items():
        assert float(rows[("fused", case_id, "WT")]["dice"]) == pytest.approx(
            dice(regions[2], fused[2]))
        assert float(rows[("2D-only", case_id, "ET")]["dice"]) == pytest.approx(
            dice(regions[0], two_d[0]))
    table = (out / "table1.md").read_text(encoding="utf-8")
    assert "fused" in table and "2D-only" in table and "Bonferroni" in table
    assert (out / "box_dice.png").read_bytes()[:4] == b"\x89PNG"
    unc = {(r["method"], r["region"]): r for r in _rows(out / "uncertainty.csv")}
    assert float(unc[("fused", "WT")]["auroc"]) == pytest.approx(
        np.nanmean([_auroc_on_brain(cases / c, truth[c][0][2], truth[c][2][2]) for c in truth]))
    assert float(unc[("fused", "WT")]["auroc_border"]) == pytest.approx(
        np.nanmean([_border_auroc_on_brain(cases / c, truth[c][0][2], truth[c][2][2])
                    for c in truth]))
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert "auroc_far" in summary["uncertainty_markdown"]
    far = [_far_on_brain(cases / c, truth[c][0][2], truth[c][2][2]) for c in truth]
    assert float(unc[("fused", "WT")]["auroc_far"]) == pytest.approx(
        np.nanmean([f[0] for f in far]))
    assert float(unc[("fused", "WT")]["error_share_far"]) == pytest.approx(
        np.nanmean([f[1] for f in far]))


def _far_on_brain(case_dir, pred, ref):
    """(AUROC of the written uncertainty, share of the errors) over the brain voxels
    more than 2 mm from pred's border."""
    case = load_case(case_dir=case_dir)
    brain = np.any(case.image != 0, axis=0)
    distance = np.where(pred, ndimage.distance_transform_edt(pred, sampling=case.spacing),
                        ndimage.distance_transform_edt(~pred, sampling=case.spacing))
    far = brain & (distance > 2.0)
    error = pred != ref
    border = ndimage.binary_dilation(ref, iterations=2) & ~ndimage.binary_erosion(
        ref, iterations=2)
    u, wrong = np.where(border, 0.8, 0.05)[far], error[far]
    share = wrong.sum() / error[brain].sum() if error[brain].any() else np.nan
    if not wrong.any() or wrong.all():
        return np.nan, share
    return (stats.mannwhitneyu(u[wrong], u[~wrong]).statistic
            / (wrong.sum() * (~wrong).sum()), share)


def _border_auroc_on_brain(case_dir, pred, ref):
    """The border baseline on the whole grid: 1 / (1 + mm to the other side of pred)."""
    case = load_case(case_dir=case_dir)
    brain = np.any(case.image != 0, axis=0)
    distance = np.where(pred, ndimage.distance_transform_edt(pred, sampling=case.spacing),
                        ndimage.distance_transform_edt(~pred, sampling=case.spacing))
    error = (pred != ref)[brain]
    if not error.any():
        return np.nan
    score = (1 / (1 + distance))[brain]
    return stats.mannwhitneyu(score[error], score[~error]).statistic / (
        error.sum() * (~error).sum())


def _auroc_on_brain(case_dir, pred, ref):
    """Mann-Whitney U / (n_err n_ok) of the written uncertainty over the brain mask."""
    case = load_case(case_dir=case_dir)
    brain = np.any(case.image != 0, axis=0)
    border = ndimage.binary_dilation(ref, iterations=2) & ~ndimage.binary_erosion(
        ref, iterations=2)
    u = np.where(border, 0.8, 0.05)[brain]
    error = (pred != ref)[brain]
    if not error.any():
        return np.nan  # nothing to detect: the evaluator skips the case as well
    u_statistic = stats.mannwhitneyu(u[error], u[~error]).statistic
    return u_statistic / (error.sum() * (~error).sum())


def test_evaluate_reuses_cached_cases_and_reports_missing_ones(study, tmp_path, capsys):
    cases, results, truth = study
    out = tmp_path / "eval"
    args = ["evaluate", "--cases", str(cases), "--results", str(results), "--out", str(out),
            "--progress", "none", "--no-report", "--no-uncertainty"]
    assert main(args) == 0
    cached = out / "cases" / "fused" / f"{sorted(truth)[0]}.json"
    stamp = cached.stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    assert "0 pair(s) scored, 8 reused" in capsys.readouterr().err
    assert cached.stat().st_mtime_ns == stamp
    # a broken result is reported, the other cases go on
    broken = results.parent / "broken"
    broken.mkdir()
    for case_id in sorted(truth)[1:]:
        (broken / case_id).symlink_to(results / case_id)
    (broken / sorted(truth)[0]).mkdir()
    (broken / sorted(truth)[0] / "segmentation.nii.gz").write_bytes(b"not a nifti")
    out2 = tmp_path / "eval2"
    assert main(["evaluate", "--cases", str(cases), "--results", str(broken), "--out",
                 str(out2), "--progress", "none", "--no-report", "--no-uncertainty"]) == 0
    problems = (out2 / "problems.txt").read_text(encoding="utf-8")
    assert sorted(truth)[0] in problems and "segmentation.nii.gz" in problems
    assert len(_rows(out2 / "per_case.csv")) == 2 * 3 * (len(truth) - 1)


def test_evaluate_pairs_single_predict_outputs_by_their_report(study, tmp_path, capsys):
    # `predict --case C --out runs/anything` for two cases: paired by report.json's case,
    # and the cases without a result said in one line.
    cases, results, truth = study
    gathered = tmp_path / "runs"
    paired = sorted(truth)[:2]
    for index, case_id in enumerate(paired):
        folder = gathered / f"run{index}"
        shutil.copytree(results / case_id, folder)
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        (folder / "report.json").write_text(json.dumps({**report, "input": {"case_id": case_id}}),
                                            encoding="utf-8")
    out = tmp_path / "eval"
    assert main(["evaluate", "--cases", str(cases), "--results", str(gathered), "--out",
                 str(out), "--progress", "none", "--no-report", "--no-uncertainty"]) == 0
    assert {r["case"] for r in _rows(out / "per_case.csv")} == set(paired)
    problems = [line for line in capsys.readouterr().err.splitlines() if "problem" in line]
    missing = sorted(truth)[2:]
    assert len(problems) == 1 and f"{len(missing)} of {len(truth)} case(s)" in problems[0]
    assert all(case_id in problems[0] for case_id in missing)
    assert "fused, 2D-only" in problems[0] and str(gathered) in problems[0]
    # one case's output folder instead of the folder of them: said, with the fix
    assert main(["evaluate", "--cases", str(cases), "--results", str(gathered / "run0"),
                 "--out", str(tmp_path / "eval2"), "--progress", "none"]) == 2
    assert f"here {gathered}" in capsys.readouterr().err


def test_evaluate_compares_named_methods_and_calibrates_triage(study, tmp_path, capsys):
    cases, results, truth = study
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text(json.dumps({"name": "m", "fusion_weights": [[1, 1, 0]]}))
    out = tmp_path / "eval"
    pytest.importorskip("panoptica")
    assert main(["evaluate", "--cases", str(cases), "--results", f"ours={results}",
                 "--results", f"again={results}", "--out", str(out), "--progress", "none",
                 "--no-report", "--calibrate-triage", str(model), "--lesionwise",
                 "--correction"]) == 0
    corrected = [r for r in _rows(out / "correction.csv") if r["region"] == "WT"]
    assert {r["strategy"] for r in corrected} == {"top-k refinement boxes",
                                                  "random on predicted region",
                                                  "random in brain"}
    assert all(float(r["dice_gain"]) >= 0 for r in corrected)  # pasting the truth never hurts
    lesionwise = _rows(out / "lesionwise.csv")
    assert {r["definition"] for r in lesionwise} == {"brats2023_lesionwise",
                                                     "brats2024_lesionwise"}
    rows = _rows(out / "table1.csv")
    assert {"p ours vs ours 2D-only", "p_bonferroni ours vs again"} <= set(rows[0])
    same = [r for r in rows if r["metric"] == "dice"][0]
    assert same["p ours vs again"] == "nan"  # 4 cases: too few pairs to test, and said
    assert "No Wilcoxon test: 4 case(s)" in (out / "table1.md").read_text(encoding="utf-8")
    stored = json.loads((model / "model.json").read_text(encoding="utf-8"))
    scores = [0.1, 0.3, 0.5, 0.2]
    assert stored["triage"]["threshold"] == pytest.approx(np.quantile(scores, 0.75))
    assert stored["name"] == "m"  # the rest of model.json is kept
    # writing into the model folder is said, with the file
    assert f"triage threshold {stored['triage']['threshold']} written to {model / 'model.json'}" \
        in capsys.readouterr().err
    triage = json.loads((out / "triage.json").read_text(encoding="utf-8"))
    assert triage["as_calibrated"]["flagged"] == 1


def test_evaluate_refuses_a_missing_results_folder(study, tmp_path, capsys):
    cases, _, _ = study
    code = main(["evaluate", "--cases", str(cases), "--results", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "o"), "--progress", "none"])
    assert code == 2
    assert "results folder not found" in capsys.readouterr().err


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("headless Chromium is not installed (apt-get install chromium): the "
                "report's rendering is not checked")


def _near(pixels, rgb, tolerance=8):
    return np.all(np.abs(pixels[..., :3].astype(int) - np.array(rgb)) <= tolerance, axis=-1)


def test_report_renders_in_headless_chromium(study, tmp_path):
    import matplotlib.image

    cases, results, truth = study
    out = tmp_path / "eval"
    assert main(["evaluate", "--cases", str(cases), "--results", str(results),
                 "--out", str(out), "--progress", "none",
                 "--explain-case", str(cases / sorted(truth)[0])]) == 0
    report = out / "report.html"
    html = report.read_text(encoding="utf-8")
    assert "src='data:image/png;base64," in html
    assert "alt='01_projections.png'" in html and "alt='case_best_" in html
    moved = tmp_path / "alone.html"  # self-contained: nothing beside it is needed
    shutil.copy(report, moved)
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", "--window-size=1200,2400", f"--screenshot={shot}",
                    moved.as_uri()], check=True, capture_output=True, timeout=120)
    pixels = (matplotlib.image.imread(shot) * 255).round().astype(np.uint8)
    # the heading's rule (#1f77b4) runs across the page: the HTML and its style rendered
    rule = _near(pixels, (31, 119, 180), 3)
    assert rule.sum(axis=1).max() > 800
    # the first method's boxes (#1b9e77 at alpha 0.75 on white) from an embedded PNG
    assert _near(pixels, (84, 182, 153)).sum() > 500


def test_qubrats_export_writes_uint8_maps_0_to_100(study, tmp_path):
    import SimpleITK as sitk

    cases, results, truth = study
    out = tmp_path / "eval"
    assert main(["evaluate", "--cases", str(cases), "--results", str(results), "--out",
                 str(out), "--progress", "none", "--no-report", "--qubrats"]) == 0
    case_id = sorted(truth)[0]
    folder = out / "qubrats" / "fused"
    whole = sitk.ReadImage(str(folder / f"{case_id}_unc_whole.nii.gz"))
    assert whole.GetPixelID() == sitk.sitkUInt8
    written = sitk.GetArrayFromImage(whole)
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(results / case_id /
                                                         "uncertainty.nii.gz")))[2]
    np.testing.assert_array_equal(written, np.rint(expected * 100).astype(np.uint8))
    assert set(np.unique(written)) == {5, 80}
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case_id}.nii.gz")))
    np.testing.assert_array_equal(labels_to_regions(labels), truth[case_id][0])
    assert (folder / f"{case_id}_unc_enhance.nii.gz").is_file()


def test_model_card_gets_each_methods_numbers_and_the_fused_differences(study, tmp_path):
    from uncertaintyseg.networks.models import MODELS_DIR

    cases, results, truth = study
    model = tmp_path / "model"
    model.mkdir()
    shutil.copyfile(MODELS_DIR / "brats-mini" / "model.json", model / "model.json")
    out = tmp_path / "eval"
    assert main(["evaluate", "--cases", str(cases), "--results", f"ours={results}",
                 "--out", str(out), "--progress", "none", "--no-report",
                 "--model-card", str(model)]) == 0
    stored = json.loads((model / "model.json").read_text(encoding="utf-8"))
    record = stored["estimators_validation"]
    assert record["fused"] == "ours" and record["cases"] == sorted(truth)
    for index, region in enumerate(("ET", "TC", "WT")):
        fused = np.mean([dice(t[2][index], t[0][index]) for t in truth.values()])
        two_d = np.mean([dice(t[2][index], t[1][index]) for t in truth.values()])
        assert record["methods"]["ours"]["dice"][region] == pytest.approx(fused)
        assert record["fused_minus"]["ours 2D-only"]["dice"][region] == pytest.approx(
            fused - two_d)
        assert 0 <= record["methods"]["ours"]["auroc"][region] <= 1
        assert 0 <= record["methods"]["ours"]["auroc_border"][region] <= 1
        assert 0 <= record["methods"]["ours"]["error_share_far"][region] <= 1
    card = (model / "MODEL_CARD.md").read_text(encoding="utf-8")
    wt = record["methods"]["ours"]["dice"]["WT"]
    assert "## Estimators on the validation cases" in card and "border AUROC" in card
    assert "AUROC beyond 2 mm" in card
    assert "| ours | " in card and f"{wt:.3f} |" in card
    assert stored["name"] == "brats-mini"  # the rest of model.json is kept


def test_the_voxel_map_study_gets_its_own_card_section(tmp_path):
    from uncertaintyseg.evaluation.model_card import store_voxel_maps
    from uncertaintyseg.networks.models import MODELS_DIR

    shutil.copyfile(MODELS_DIR / "brats-mini" / "model.json", tmp_path / "model.json")
    regions = lambda *v: dict(zip(("ET", "TC", "WT"), v))  # noqa: E731
    record = {"measured": "2026-12-07", "cases": ["a", "b"], "far_mm": 2.0,
              "command": "bench", "machine": "cpu",
              "maps": {"binned": {"auroc": regions(0.9, 0.8, None),
                                  "auroc_far": regions(0.55, 0.6, 0.65)}},
              "border": {"auroc": regions(0.99, 0.98, 0.97),
                         "auroc_far": regions(0.7, 0.71, 0.72),
                         "error_share_far": regions(0.1, 0.2, 0.3)}}
    store_voxel_maps(tmp_path, record)
    card = (tmp_path / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## Voxel uncertainty maps beyond the border (measured 2026-12-07)" in card
    assert "| binned | 0.900 / 0.800 / n/a | 0.550 / 0.600 / 0.650 |" in card
    assert ("| border baseline 1 / (1 + mm) | 0.990 / 0.980 / 0.970 | "
            "0.700 / 0.710 / 0.720 |") in card
    assert "beyond 2 mm (ET / TC / WT): 0.100 / 0.200 / 0.300" in card
    stored = json.loads((tmp_path / "model.json").read_text(encoding="utf-8"))
    assert stored["voxel_maps_validation"]["maps"]["binned"]["auroc"]["WT"] is None
