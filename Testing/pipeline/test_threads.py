"""`--threads auto`: the free cores (affinity mask less the 1-minute load), resolved once."""

import os

import pytest
import torch

from uncertaintyseg.commands import cli
from uncertaintyseg.cohorts import cohort
from uncertaintyseg.runtime import cores
from uncertaintyseg import options
from uncertaintyseg.networks.devices import resolve_run
from uncertaintyseg.errors import InputError
from uncertaintyseg.files.phantom import write_phantom_case
from uncertaintyseg.run.pipeline import Settings
from uncertaintyseg.run.predict import run


def _machine(monkeypatch, allowed, total, load):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(allowed)),
                        raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: total)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))


@pytest.mark.parametrize("allowed,total,load,free", [
    (4, 8, 0.2, 4),   # idle machine: every allowed CPU
    (4, 8, 5.4, 3),   # 5 CPUs busy elsewhere: 3 left of the 8, fewer than allowed
    (1, 2, 1.0, 1),   # taskset -c 1 beside one busy core (the development box)
    (2, 2, 1.0, 1),   # both cores allowed, one busy
    (4, 8, 7.6, 1),   # overloaded: still one thread
    (16, 16, 0.0, 16)])
def test_free_cores_from_affinity_and_load(monkeypatch, allowed, total, load, free):
    _machine(monkeypatch, allowed, total, load)
    assert cores.free_cores() == free


def test_missing_load_average_counts_as_idle(monkeypatch):
    _machine(monkeypatch, 3, 4, 0.0)

    def no_load():
        raise OSError("no load average")

    monkeypatch.setattr(os, "getloadavg", no_load)
    assert cores.free_cores() == 3


def test_resolve_run_makes_auto_the_free_cores_and_keeps_a_number(monkeypatch):
    _machine(monkeypatch, 4, 8, 5.4)
    assert Settings().threads == "auto"  # the default, kept as asked
    assert resolve_run(Settings()).threads == 3
    assert resolve_run(Settings(threads="auto")).threads == 3
    assert resolve_run(Settings(threads=2)).threads == 2
    assert resolve_run(Settings(threads="6")).threads == 6
    for bad in (0, 513, "many"):
        with pytest.raises(InputError, match="--threads"):
            Settings(threads=bad)


def test_cli_default_is_auto_and_to_argv_sends_only_a_number():
    parser = cli.build_parser()
    base = ["predict", "--case", "c", "--out", "o"]
    assert parser.parse_args(base).threads == "auto"
    assert options.to_argv({"threads": "auto"}) == []
    argv = options.to_argv({"threads": 3})
    assert argv == ["--threads", "3"]
    assert options.check("threads", parser.parse_args(base + argv).threads) == 3


def test_report_records_the_resolved_threads(tmp_path, monkeypatch):
    _machine(monkeypatch, 1, 2, 1.0)  # resolves to 1: the tests' own thread count
    case = write_phantom_case(tmp_path, shape=(12, 40, 40))
    result, settings = run(case, {"model": "analytic", "device": "cpu", "projections": 2,
                                  "kernel_mm": (8.0, 8.0, 16.0), "max_boxes": 1})
    assert settings.threads == "auto" and torch.get_num_threads() == 1  # asked, resolved
    assert result.report["settings"]["threads"] == 1
    assert result.report["device"]["threads"] == 1


def test_cohort_task_takes_slurm_cpus_when_threads_are_auto(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert cohort._threads({"threads": "auto"})["threads"] == 6
    assert cohort._threads({})["threads"] == 6
    assert cohort._threads({"threads": 2})["threads"] == 2
