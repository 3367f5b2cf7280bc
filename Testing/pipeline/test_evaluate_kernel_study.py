"""`evaluate --kernel-study` on a real predict run (phantom model on a phantom)."""

import csv

import pytest

from uncertaintyseg.commands.cli import main
from uncertaintyseg.files.phantom import write_phantom_case


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_kernel_study_reproduces_the_run_at_the_models_setting(tmp_path):
    cases = tmp_path / "cases"
    case_dir = write_phantom_case(cases, seed=4, shape=(32, 64, 56))
    results = tmp_path / "results"
    assert main(["predict", "--case", str(case_dir), "--out", str(results / case_dir.name),
                 "--model", "phantom", "--projections", "preview", "--threads", "1",
                 "--uncertainty-map", "binned", "--progress", "none"]) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", "--cases", str(cases), "--results", str(results), "--out",
                 str(out), "--progress", "none", "--no-report", "--no-uncertainty",
                 "--kernel-study"]) == 0
    rows = _rows(out / "kernel_study.csv")
    assert len(rows) == 3 * 3 + 1
    fused = {r["region"]: float(r["dice"]) for r in _rows(out / "per_case.csv")
             if r["method"] == "fused"}
    own = [r for r in rows if r["side_mm"].count("/") == 2][0]
    for region in ("ET", "TC", "WT"):
        assert float(own[f"{region} dice"]) == pytest.approx(fused[region], abs=2e-3)
    # larger overlaps never keep fewer cubes at the same side
    for side in ("16", "32", "64"):
        cubes = [int(r["cubes"]) for r in rows if r["side_mm"] == side]
        assert cubes == sorted(cubes)
