"""`predict --cases`: where a cohort runs (a LocalCluster, a running Dask scheduler, a
Slurm cluster through dask-jobqueue, or one shard of a job array in turn) and the
command itself. docs/COHORTS.md shows each way.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path

from ..runtime.cores import free_cores, is_auto
from ..errors import InputError

# A BraTS case (4 x 240 x 240 x 155) at its peak on the CPU, with headroom: how many
# cases a machine's memory holds at once.
CASE_MEMORY_BYTES = 4 * 1024 ** 3
EXIT_FAILED = 1
EXIT_INPUT_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The cohort options of `predict` (with --cases)."""
    group = parser.add_argument_group(
        "cohorts (--cases; docs/COHORTS.md)",
        "one task per case on Dask; OUT/<case>/ per case, complete outputs skipped, "
        "cohort.csv and cohort.md in OUT")
    group.add_argument("--cases", type=Path, metavar="DIR_OR_LIST",
                       help="a folder of case folders, or a text file of case folders")
    add_engine_arguments(group, "LocalCluster workers (default: from the free cores and "
                                "memory; one per GPU with CUDA)",
                         "other than bad input")
    group.add_argument("--num-parts", type=int, help="split the cohort into N shards and "
                       "run one in turn, without Dask (default: SLURM_ARRAY_TASK_COUNT)")
    group.add_argument("--part-id", type=int, help="the shard to run, 0 to N-1 (default: "
                       "SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN)")
    add_slurm_arguments(parser)


def add_engine_arguments(group, workers_help: str, retried: str = "") -> None:
    """--workers, --scheduler, --retries: where `cohort_client` runs the tasks (predict
    --cases, and train's per-case passes)."""
    group.add_argument("--workers", type=int, help=workers_help)
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="a running Dask scheduler, e.g. tcp://head:8786")
    group.add_argument("--retries", type=int, default=2,
                       help="times a case is retried after a lost worker or an error "
                            f"{retried + ' ' if retried else ''}(default 2)")


def add_slurm_arguments(parser: argparse.ArgumentParser) -> None:
    """The --slurm options `slurm_cluster` reads."""
    slurm = parser.add_argument_group("Slurm (dask-jobqueue)")
    slurm.add_argument("--slurm", action="store_true",
                       help="start Dask workers as Slurm jobs (one case at a time each)")
    slurm.add_argument("--slurm-queue", help="partition (sbatch -p)")
    slurm.add_argument("--slurm-account", help="account (sbatch -A)")
    slurm.add_argument("--slurm-time", default="02:00:00", help="walltime per worker job")
    slurm.add_argument("--slurm-cpus", type=int, default=4, help="CPUs per worker job")
    slurm.add_argument("--slurm-memory", default="16GB", help="memory per worker job")
    slurm.add_argument("--slurm-gpus", type=int, default=0, help="GPUs per worker job")
    slurm.add_argument("--slurm-jobs", type=int, default=4, help="worker jobs at most")
    slurm.add_argument("--slurm-prologue", action="append", default=[], metavar="LINE",
                       help="a line run before the worker starts (e.g. 'module load "
                            "cuda'); repeatable")


def local_plan(n_cases: int, workers: int | None, device: str) -> tuple[int, int, int]:
    """(workers, torch threads per worker, GPUs) for a LocalCluster."""
    import psutil

    gpus = _gpu_count(device)
    cores = free_cores()
    if gpus:
        count = workers or gpus
    else:
        by_memory = max(1, psutil.virtual_memory().available // CASE_MEMORY_BYTES)
        count = workers or min(cores, by_memory)
    count = max(1, min(count, n_cases))
    return count, max(1, cores // count), gpus


def _gpu_count(device: str) -> int:
    if device == "cpu":
        return 0
    import torch

    return torch.cuda.device_count()


def local_cluster(workers: int, gpus: int):
    """Worker processes running one case at a time; with GPUs, one per GPU."""
    from distributed import LocalCluster, Scheduler, SpecCluster

    # No memory limit: the nanny's kill at 95 % of an even share would end a large case
    # the machine can hold; a worker the system kills counts as lost and is retried.
    if not gpus:
        # threads_per_worker, not nthreads: LocalCluster sets nthreads from it.
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                            dashboard_address=None, memory_limit=0)
    specs = gpu_worker_specs(workers, gpus, {"nthreads": 1, "memory_limit": 0})
    return SpecCluster(workers=specs, scheduler={"cls": Scheduler, "options": {
        "dashboard_address": None}})


def gpu_worker_specs(workers: int, gpus: int, options: dict) -> dict:
    """SpecCluster worker specs: worker i sees GPU i (mod gpus) only, as its cuda:0."""
    from distributed import Nanny

    return {f"gpu-{index}": {"cls": Nanny, "options": {
        **options, "env": {"CUDA_VISIBLE_DEVICES": str(index % gpus)}}}
        for index in range(workers)}


def slurm_cluster(args: argparse.Namespace):
    """A dask-jobqueue SLURMCluster (no job submitted yet: `scale` does that)."""
    from dask_jobqueue import SLURMCluster

    extra = [f"--gres=gpu:{args.slurm_gpus}"] if args.slurm_gpus else []
    # One Dask thread per job (one case at a time); the job's CPUs go to torch, which
    # process_case sizes from SLURM_CPUS_PER_TASK.
    return SLURMCluster(queue=args.slurm_queue, account=args.slurm_account,
                        walltime=args.slurm_time, cores=1, job_cpu=args.slurm_cpus,
                        memory=args.slurm_memory, processes=1, python=sys.executable,
                        job_extra_directives=extra,
                        job_script_prologue=list(args.slurm_prologue))


@contextmanager
def cohort_client(args, n_cases: int, values: dict):
    """The Dask client of a cohort run, and the run's values (threads sized to it)."""
    try:
        import dask
        from distributed import Client
    except ImportError:
        raise InputError("predict --cases, evaluate --workers/--scheduler and train "
                         "--workers/--scheduler/--slurm run on Dask, which is not "
                         "installed: pip install 'uncertaintyseg[cohort]' (or run predict "
                         "one shard at a time with --num-parts N --part-id K, and evaluate "
                         "and train without those options; neither needs Dask)") from None

    # A lost worker's case is retried this many times (the scheduler's own count);
    # set before the scheduler starts. A running scheduler keeps its own setting.
    with dask.config.set({"distributed.scheduler.allowed-failures": args.retries}):
        if args.scheduler:
            with Client(args.scheduler) as client:
                yield client, values
            return
        if args.slurm:
            cluster = slurm_cluster(args)
            cluster.adapt(minimum_jobs=0, maximum_jobs=min(args.slurm_jobs, n_cases))
        else:
            workers, threads, gpus = local_plan(n_cases, args.workers,
                                                values.get("device") or "auto")
            if is_auto(values.get("threads")):  # each worker gets its share, not all
                values = {**values, "threads": threads}
            cluster = local_cluster(workers, gpus)
        with cluster, Client(cluster) as client:
            yield client, values


def run_command(args, reporter, values: dict) -> int:
    """`predict --cases`: the whole cohort on Dask, or one shard of it in turn."""
    from ..cohorts.cohort import list_cases, parts_from_environment, run_cohort, shard
    from ..cohorts.cohort_table import FAILED, INPUT_ERROR
    from ..runtime.progress import human_stream

    cases = list_cases(args.cases, exclude=args.out)
    num_parts, part_id = parts_from_environment()
    num_parts = args.num_parts or num_parts
    part_id = args.part_id if args.part_id is not None else part_id
    mine = shard(cases, num_parts, part_id)
    common = dict(retries=args.retries, snapshot=not args.no_snapshot, force=args.force,
                  progress=reporter, all_cases=cases)
    if num_parts > 1 or not mine:
        rows, table = run_cohort(mine, args.out, values, **common)
    else:
        with cohort_client(args, len(mine), values) as (client, run_values):
            rows, table = run_cohort(mine, args.out, run_values, client=client, **common)
    reporter.finished(args.out)
    statuses = [row["status"] for row in rows]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    print(f"cohort: {counts or 'no cases'} (shard {part_id + 1} of {num_parts}); "
          f"table: {table}", file=human_stream(args.progress))
    if FAILED in statuses:
        return EXIT_FAILED
    return EXIT_INPUT_ERROR if INPUT_ERROR in statuses else 0
