"""The start-up check (disk and memory, before any work) and the dry run's calibrated
time estimate."""

import re
import shutil
from collections import namedtuple


from uncertaintyseg.commands.cli import main
from uncertaintyseg.training import budget

Usage = namedtuple("Usage", "total used free")


def _train(tmp_path, *extra):
    return main(["train", "--phantoms", "2", "--preset", "tiny", "--device", "cpu",
                 "--out", str(tmp_path / "model"), "--work", str(tmp_path / "work"), *extra])


def test_too_little_disk_stops_the_run_naming_the_folder_and_the_numbers(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 ** 12, 10 ** 12, 1000))
    assert _train(tmp_path) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path}: the run needs about" in error and "GB of disk" in error
    assert "0.00 GB are free" in error and "--work" in error
    assert not (tmp_path / "work").exists() and not (tmp_path / "model").exists()


def test_too_little_memory_stops_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(budget, "available_memory", lambda: 1e6)
    assert _train(tmp_path) == 2
    error = capsys.readouterr().err
    assert "GB of memory" in error and "nnUNet_n_proc_DA" in error
    assert not (tmp_path / "work").exists()


def test_the_disk_estimate_grows_with_the_cases_and_counts_what_is_written(tmp_path):
    one = budget.Cases([1000], 10, (10, 10))
    two = budget.Cases([1000, 1000], 20, (10, 10))
    params = {"net2d": 100}
    assert sum(budget.disk_needed(two, params).values()) > sum(
        budget.disk_needed(one, params).values())
    # float32 image channels and a one-byte label per voxel, Adam's moments per weight
    assert budget.disk_needed(one, params)["preprocessed (float32)"] == 1000 * 17
    assert budget.disk_needed(one, params)["checkpoints"] == 100 * 16
    (tmp_path / "old.bin").write_bytes(b"x" * 500)
    assert budget.written_bytes(tmp_path) == 500


def test_a_dry_run_prints_the_check_and_a_calibrated_time(tmp_path, capsys):
    assert _train(tmp_path, "--dry-run", "--calibration-steps", "1",
                  "--estimators", "full-3d") == 0
    plan = capsys.readouterr().out
    assert re.search(r"^disk: about [\d.]+ GB more in ", plan, re.M)
    assert re.search(r"^memory: about [\d.]+ GB", plan, re.M)
    for net in ("net2d", "net3d", "net_full3d"):
        assert re.search(rf"^  {net}: [\d.]+ (s|min|h|days) per iteration at batch \d+, "
                         r"[\d.]+ (s|min|h|days) per epoch of 250", plan, re.M), net
    assert re.search(r"all networks' iterations: about [\d.]+ (s|min|h|days)$", plan, re.M)
    assert "net_dropout" not in plan.split("time (")[1]
    assert not (tmp_path / "work").exists()


def test_no_calibration_says_so(tmp_path, capsys):
    assert _train(tmp_path, "--dry-run", "--calibration-steps", "0") == 0
    assert "time: not estimated (--calibration-steps 0)" in capsys.readouterr().out
