"""Cohorts: a real LocalCluster of 2 worker processes on tiny phantoms (analytic model).

A worker killed while it writes a case's output (its process gets SIGKILL) leads to a
retry and a complete, valid output; a case with a missing file is reported while the
others go on; a rerun skips finished cases; job-array shards share that logic.
"""

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import pytest

from uncertaintyseg.commands import cohort_cli
from uncertaintyseg.commands.cli import build_parser, main
from uncertaintyseg.cohorts.cohort import (list_cases, parts_from_environment, process_case,
                                           run_cohort, shard)
from uncertaintyseg.cohorts.cohort_table import (COHORT_COLUMNS, INPUT_ERROR, PENDING, SKIPPED,
                                                 TABLE_CSV, TABLE_MARKDOWN, is_complete, read_table)
from uncertaintyseg.files.contract import read_outputs
from uncertaintyseg.files.phantom import write_phantom_case

SHAPE = (16, 40, 36)
VALUES = {"model": "analytic", "device": "cpu", "projections": 2, "max_boxes": 2,
          "kernel_mm": (12.0, 12.0, 24.0), "batch_size_2d": 4, "threads": 1}
HANG_CASE = "Phantom_0002"
# Workers unpickle the wrapped task by value: this test module is not importable there.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _hang_while_writing(case_dir, out_dir, *arguments):
    """process_case; on HANG_CASE's first attempt the worker writes the images into its
    partial folder, records its process id and waits there until it is killed."""
    attempts = Path(out_dir).parent / ".attempts"
    with open(attempts, "a", encoding="utf-8") as handle:
        handle.write(f"{Path(case_dir).name} {os.getpid()}\n")
    marker = Path(out_dir).parent / ".hang-pid"
    if Path(case_dir).name == HANG_CASE and not marker.exists():
        from uncertaintyseg.files import contract

        original = contract._write_maps

        def write_then_hang(*args, **kwargs):
            original(*args, **kwargs)
            marker.write_text(str(os.getpid()), encoding="utf-8")
            time.sleep(600)

        contract._write_maps = write_then_hang
    return process_case(case_dir, out_dir, *arguments)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort") / "cases"
    for seed in (1, 2, 3):
        write_phantom_case(root, seed=seed, shape=SHAPE, spacing=(3.0, 2.0, 2.0))
    broken = root / "Broken_0009"
    shutil.copytree(root / "Phantom_0003", broken)
    for path in broken.iterdir():
        path.rename(broken / path.name.replace("Phantom_0003", "Broken_0009"))
    (broken / "Broken_0009_t2.nii.gz").unlink()
    return root


@pytest.mark.slow
def test_local_workers_run_one_case_at_a_time(cluster):
    from distributed import Client

    with Client(cluster) as client:
        assert list(client.nthreads().values()) == [1, 1]


@pytest.fixture(scope="module")
def first_run(cases, cluster, tmp_path_factory, kill_when_hanging):
    from distributed import Client

    out = tmp_path_factory.mktemp("out") / "cohort"
    out.mkdir()
    killed = []
    killer = threading.Thread(target=kill_when_hanging, args=(out / ".hang-pid", killed))
    killer.start()
    with Client(cluster) as client:
        rows, table = run_cohort(list_cases(cases), out, VALUES, client=client,
                                 task=_hang_while_writing)
    killer.join()
    return out, rows, table, killed


@pytest.mark.slow
def test_lost_worker_is_retried_into_a_complete_output(first_run):
    out, rows, _, killed = first_run
    assert len(killed) == 1, "the hanging case's worker was never killed"
    attempts = (out / ".attempts").read_text(encoding="utf-8").split("\n")
    hang_pids = [line.split()[1] for line in attempts if line.startswith(HANG_CASE)]
    assert len(hang_pids) == 2 and hang_pids[0] == str(killed[0])
    status = {row["case"]: row["status"] for row in rows}
    assert status == {"Phantom_0001": "done", HANG_CASE: "done", "Phantom_0003": "done",
                      "Broken_0009": INPUT_ERROR}
    outputs = read_outputs(out / HANG_CASE)
    assert outputs["labels"].shape == SHAPE and outputs["report"]["input"]["case_id"] == HANG_CASE
    # The killed worker's partial folder is gone: the retry's write removed it.
    assert not [p.name for p in out.iterdir() if ".partial-" in p.name]


@pytest.mark.slow
def test_broken_case_is_reported_and_the_table_ranked(first_run):
    out, rows, table, _ = first_run
    broken = next(row for row in rows if row["case"] == "Broken_0009")
    assert "Broken_0009" in broken["message"] and "t2" in broken["message"]
    assert not (out / "Broken_0009").exists()
    lines = table.read_text(encoding="utf-8").splitlines()
    assert tuple(lines[0].split(",")) == COHORT_COLUMNS
    table_rows = read_table(table)
    assert [r["case"] for r in table_rows][-1] == "Broken_0009"
    # Worst first: flagged cases, then the lowest estimated Dice, then the triage score.
    keys = [(r["quality_flag"] != "review", float(r["estimated_dice"] or 2.0),
             -float(r["triage_score"])) for r in table_rows[:-1]]
    assert keys == sorted(keys)
    assert [r["rank"] for r in table_rows] == ["1", "2", "3", ""]
    for row in table_rows[:-1]:
        report = json.loads((out / row["case"] / "report.json").read_text("utf-8"))
        assert float(row["triage_score"]) == pytest.approx(report["triage"]["score"], abs=1e-4)
        assert row["quality_flag"] == report["quality"]["flag"]
        assert row["quality_reason"] == report["quality"]["reasons"][0]
        assert float(row["WT_ml"]) == pytest.approx(report["volumes_ml"]["WT"], rel=1e-3)
    markdown = (out / TABLE_MARKDOWN).read_text(encoding="utf-8")
    assert markdown.count("\n") == 2 + len(table_rows) and "input error" in markdown


@pytest.mark.slow
def test_rerun_skips_finished_cases(first_run, cases, cluster):
    from distributed import Client

    out = first_run[0]
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("Phantom_*/report.json")}
    with Client(cluster) as client:
        rows, _ = run_cohort(list_cases(cases), out, VALUES, client=client)
    status = {row["case"]: row["status"] for row in rows}
    assert status == {"Phantom_0001": SKIPPED, HANG_CASE: SKIPPED, "Phantom_0003": SKIPPED,
                      "Broken_0009": INPUT_ERROR}
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("Phantom_*/report.json")}
    assert after == before


@pytest.mark.slow
def test_cli_on_a_running_scheduler(cases, cluster, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["predict", "--cases", str(cases), "--out", str(out), "--scheduler",
                 cluster.scheduler_address, "--model", "analytic", "--device", "cpu",
                 "--projections", "2", "--max-boxes", "1", "--no-snapshot",
                 "--progress", "json"])
    assert code == 2  # one case had bad input
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    cohort = [line for line in lines if line["stage"] == "cohort"]
    assert cohort[-1]["done"] == cohort[-1]["total"] == 4
    assert lines[-1] == {"stage": "finished", "done": 1, "total": 1, "message": str(out)}
    assert all(is_complete(out / f"Phantom_000{seed}") for seed in (1, 2, 3))


@pytest.mark.slow
def test_one_shard_runs_in_turn_and_lists_the_rest_as_pending(cases, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    out = tmp_path / "out"
    code = main(["predict", "--cases", str(cases), "--out", str(out), "--model", "analytic",
                 "--device", "cpu", "--projections", "2", "--max-boxes", "1",
                 "--no-snapshot", "--progress", "none"])
    assert code == 0
    # Shard 1 of [Broken_0009, Phantom_0001, Phantom_0002, Phantom_0003]: 0001 and 0003.
    status = {row["case"]: row["status"] for row in read_table(out / TABLE_CSV)}
    assert status == {"Phantom_0001": "done", "Phantom_0003": "done",
                      "Phantom_0002": PENDING, "Broken_0009": PENDING}


def test_case_list_file_and_shards(cases, tmp_path):
    listing = tmp_path / "cases.txt"
    listing.write_text(f"# cohort\n{cases / 'Phantom_0002'}\n\n{cases}/Phantom_0001  # b\n",
                       encoding="utf-8")
    assert [p.name for p in list_cases(listing)] == ["Phantom_0002", "Phantom_0001"]
    (tmp_path / "cases2.txt").write_text(f"{cases}/Phantom_0001\n{tmp_path}/Phantom_0001\n")
    with pytest.raises(ValueError, match="two cases named Phantom_0001"):
        list_cases(tmp_path / "cases2.txt")
    with pytest.raises(ValueError, match="not case folders"):
        list_cases(cases / "Phantom_0001")
    # An output folder inside the cohort's folder is not a case of it.
    assert "Phantom_0001" not in [p.name for p in list_cases(cases, exclude=cases / "Phantom_0001")]
    assert [p.name for p in shard(list_cases(cases), 3, 2)] == ["Phantom_0002"]
    with pytest.raises(ValueError, match="part-id"):
        shard(list_cases(cases), 2, 2)
    assert parts_from_environment({}) == (1, 0)
    assert parts_from_environment({"SLURM_ARRAY_TASK_COUNT": "4",
                                   "SLURM_ARRAY_TASK_ID": "3"}) == (4, 3)


def test_slurm_job_script():
    args = build_parser().parse_args(
        ["predict", "--cases", "c", "--out", "o", "--slurm", "--slurm-queue", "gpu",
         "--slurm-time", "01:30:00", "--slurm-cpus", "8", "--slurm-memory", "32GB",
         "--slurm-gpus", "1", "--slurm-account", "lab", "--slurm-prologue",
         "module load cuda"])
    with cohort_cli.slurm_cluster(args) as cluster:
        script = cluster.job_script()
    for line in ("#SBATCH -p gpu", "#SBATCH -A lab", "#SBATCH --cpus-per-task=8",
                 "#SBATCH -t 01:30:00", "#SBATCH --gres=gpu:1", "module load cuda"):
        assert line in script.splitlines(), line
    assert "--nthreads 1" in script and sys.executable in script


def test_local_plan_and_gpu_workers():
    workers, threads, gpus = cohort_cli.local_plan(1, None, "cpu")
    assert (workers, gpus) == (1, 0) and 1 <= threads <= os.cpu_count()
    assert cohort_cli.local_plan(10, 3, "cpu")[0] == 3
    specs = cohort_cli.gpu_worker_specs(3, 2, {"nthreads": 1})
    assert [s["options"]["env"]["CUDA_VISIBLE_DEVICES"] for s in specs.values()] == ["0", "1", "0"]
    assert all(s["options"]["nthreads"] == 1 for s in specs.values())


def test_train_runs_its_passes_where_the_options_say(tmp_path):
    from uncertaintyseg.commands.train_cli import pass_engine

    source = tmp_path / "cases"
    for name in ("Case_1", "Case_2", "Case_3"):
        (source / name).mkdir(parents=True)
    train = ["train", str(source), "--out", str(tmp_path / "model")]
    with pass_engine(build_parser().parse_args(train), source) as engine:
        assert engine == (None, None)  # the default: in this process, no Dask
    args = build_parser().parse_args([*train, "--workers", "2"])
    with pass_engine(args, source) as (client, threads):
        client.wait_for_workers(2, timeout=60)
        assert len(client.scheduler_info()["workers"]) == 2 and threads >= 1
    slurm = build_parser().parse_args([*train, "--slurm", "--slurm-cpus", "6"])
    with cohort_cli.slurm_cluster(slurm) as cluster:
        assert "#SBATCH --cpus-per-task=6" in cluster.job_script().splitlines()


def _square_unless_b(job, case_id):
    if case_id == "b":
        raise ValueError(f"{case_id}: no such preprocessed case")
    return (job * len(case_id)) ** 2


@pytest.mark.slow
def test_train_pass_results_in_case_order_and_a_failed_case_named(cluster):
    from distributed import Client

    from uncertaintyseg.training.passes import run_pass

    seen = []
    here = run_pass(_square_unless_b, 3, ["aa", "c"], progress=lambda *a: seen.append(a[1:3]))
    assert here == {"aa": 36, "c": 9} and seen == [(1, 2), (2, 2)]
    with Client(cluster) as client:
        on_cluster = run_pass(_square_unless_b, 3, ["c", "aa"], client)
        assert list(on_cluster.items()) == [("c", 9), ("aa", 36)]  # the cases' order
        with pytest.raises(RuntimeError, match="refine: case b failed on the") as caught:
            run_pass(_square_unless_b, 3, ["aa", "b"], client, retries=0, stage="refine")
    assert "no such preprocessed case" in str(caught.value)
