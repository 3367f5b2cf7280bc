"""`evaluate` on Dask: a real LocalCluster of 2 worker processes scores phantom outputs
one case per task through the cohort engine of `predict --cases`, with the same
numbers as the in-turn run, and a rerun scores nothing again."""

import json
import os
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
from scipy import ndimage

from uncertaintyseg.commands import cohort_cli
from uncertaintyseg.commands.cli import main
from uncertaintyseg.files.contract import CaseResult, write_outputs
from uncertaintyseg.files.convert import label_file
from uncertaintyseg.evaluation import job
from uncertaintyseg.evaluation.pairing import parse_results
from uncertaintyseg.evaluation.runner import evaluate_cases, score_case
from uncertaintyseg.files.io import load_case
from uncertaintyseg.stages.kernels import Box
from uncertaintyseg.files.label_maps import labels_to_regions, load_labels, regions_to_labels
from uncertaintyseg.files.phantom import write_phantom_case

pytest.importorskip("distributed", reason="evaluate on Dask needs the cohort extra")

pytestmark = pytest.mark.slow  # a Dask LocalCluster of worker processes, one killed
SHAPE = (20, 40, 36)
PARTS = {"voxel", "uncertainty", "correction"}
MISSING = "Phantom_0003"  # the second method has no result for this case
DYING = "Phantom_0002"  # its first worker is killed after it cached one pair
# Workers unpickle the wrapped task by value: this test module is not importable there.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _write(case_dir, root, erode: int, boxes: list):
    case = load_case(case_dir=case_dir)
    labels, convention = load_labels(label_file(case_dir))
    regions = labels_to_regions(labels)
    predicted = np.stack([ndimage.binary_erosion(r, iterations=erode) for r in regions])
    border = np.stack([r ^ ndimage.binary_erosion(r, iterations=erode + 1) for r in regions])
    write_outputs(CaseResult(
        reference=case.reference, labels=regions_to_labels(predicted, convention),
        probabilities=np.where(predicted, 0.9, 0.1).astype(np.float32),
        probabilities_2d=np.where(regions, 0.8, 0.2).astype(np.float32),
        probabilities_3d=np.full(regions.shape, -1.0, np.float32),
        uncertainty=np.where(border, 0.8, 0.05).astype(np.float32), boxes=boxes,
        report={"settings": {"min_component_fraction": None},
                "triage": {"score": 0.1 * erode, "threshold": 0.25, "flag": "routine"}}),
        root / case.case_id, snapshot=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask_study")
    own = [Box("WT", 1, 9.0, (2, 4, 4), (6, 8, 8)), Box("WT", 2, 8.0, (10, 20, 20), (6, 8, 8))]
    for seed in (1, 2, 3):
        case_dir = write_phantom_case(root / "cases", seed=seed, shape=SHAPE)
        _write(case_dir, root / "ours", 1, own)
        if case_dir.name != MISSING:
            _write(case_dir, root / "other", 2, [])  # no boxes: ranked by kernel search
    results = [f"ours={root / 'ours'}", f"other={root / 'other'}"]
    in_turn = root / "in_turn"
    job.run(root / "cases", parse_results(results), in_turn, PARTS, html=False)
    return root, results, in_turn


def _read(path):
    return path.read_text(encoding="utf-8")


def _arguments(root, results, out):
    return ["evaluate", "--cases", str(root / "cases"), "--results", results[0],
            "--results", results[1], "--out", str(out), "--correction", "--no-report",
            "--progress", "none"]


def test_scheduler_run_scores_as_in_turn_and_a_rerun_scores_nothing(study, cluster, tmp_path):
    from distributed import Client, get_task_stream

    root, results, in_turn = study
    out = tmp_path / "on_dask"
    assert main([*_arguments(root, results, out), "--scheduler",
                 cluster.scheduler_address]) == 0
    for name in ("per_case.csv", "uncertainty.csv", "correction.csv", "problems.txt"):
        assert _read(out / name) == _read(in_turn / name), name
    assert MISSING in _read(out / "problems.txt")
    correction = _read(out / "correction.csv")
    assert "boxes ranked by other" in correction and "top-k refinement boxes" in correction
    # every scored pair and ranking is cached: 3 + 3 (2D-only twin) + 2, and 2 rankings
    cached = sorted(p.relative_to(out / "cases").as_posix() for p in out.glob("cases/*/*.json"))
    assert len(cached) == 10 and sum("ranked_by_other" in p for p in cached) == 2
    times = {p: p.stat().st_mtime_ns for p in out.glob("cases/*/*.json")}
    with Client(cluster) as client, get_task_stream(client) as stream:
        summary = job.run(root / "cases", parse_results(results), out, PARTS, html=False,
                          client=client)
    keys = [task["key"] for task in stream.data]
    assert len(keys) == 3 and all(k.startswith("uncertaintyseg-evaluate-") for k in keys)
    assert (summary["scored"], summary["reused"]) == (0, 8)
    assert {p: p.stat().st_mtime_ns for p in out.glob("cases/*/*.json")} == times


def test_workers_option_starts_a_local_cluster(study, tmp_path, monkeypatch):
    root, results, in_turn = study
    started = []
    real = cohort_cli.local_cluster

    def recording(workers, gpus):
        started.append((workers, gpus))
        return real(workers, gpus)

    monkeypatch.setattr(cohort_cli, "local_cluster", recording)
    out = tmp_path / "local"
    assert main([*_arguments(root, results, out), "--workers", "2"]) == 0
    assert started == [(2, 0)]
    assert _read(out / "per_case.csv") == _read(in_turn / "per_case.csv")
    assert json.loads(_read(out / "summary.json"))["scored"] == 8


def _die_after_one_pair(case_dir, methods, out_dir, *arguments):
    """score_case; on DYING's first attempt the worker caches its first pair, records
    its process id and waits there until it is killed."""
    marker = Path(out_dir) / ".dying-pid"
    if Path(case_dir).name == DYING and not marker.exists():
        from uncertaintyseg.evaluation import store

        original = store.write_cached

        def write_then_hang(*args, **kwargs):
            path = original(*args, **kwargs)
            marker.write_text(str(os.getpid()), encoding="utf-8")
            time.sleep(600)
            return path

        store.write_cached = write_then_hang
    return score_case(case_dir, methods, out_dir, *arguments)




def test_a_lost_workers_case_is_retried_and_its_cached_pair_kept(study, cluster, tmp_path,
                                                                kill_when_hanging):
    from distributed import Client

    root, results, in_turn = study
    out = tmp_path / "lost"
    out.mkdir()
    killed = []
    killer = threading.Thread(target=kill_when_hanging, args=(out / ".dying-pid", killed))
    killer.start()
    with Client(cluster) as client:
        evaluation = evaluate_cases(root / "cases", parse_results(results), out, PARTS,
                                    client=client, task=_die_after_one_pair)
    killer.join()
    assert len(killed) == 1, "the dying case's worker was never killed"
    # The pair cached before the worker died is reused by the retry, the rest scored.
    assert (evaluation.scored, evaluation.reused) == (7, 1)
    assert all(len(cases) == (2 if name == "other" else 3)
               for name, cases in evaluation.records.items())
    assert sorted(evaluation.rankings["other"]) == ["Phantom_0001", DYING]
    assert evaluation.problem_lines() == [line for line in
                                   _read(in_turn / "problems.txt").splitlines() if line]
