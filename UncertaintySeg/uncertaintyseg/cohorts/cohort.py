"""Many cases: one task per case on a Dask cluster, or one shard of a job array in turn.

`OUT/<case>/` is each case's output in the contract layout, written by
`predict.predict` (atomically: a worker lost mid-case leaves only a hidden partial
folder, which the retry's write removes). A case whose output is complete is skipped,
so a rerun resumes; a case with bad input is reported and the others go on; a case
whose worker is lost is retried a bounded number of times (`retries`, which Dask applies
to exceptions through `submit(retries=)` and to lost workers through the scheduler's
`allowed-failures`). At the end the cohort table (`cohort_table`) is written.
"""

from __future__ import annotations

import functools
import io
import os
import time
import traceback
from pathlib import Path
from typing import Callable, Iterable

from .cohort_table import (DONE, FAILED, INPUT_ERROR, SKIPPED, is_complete, problem_row,
                           row_from_disk, row_from_report, write_record, write_table)
from ..runtime.cores import is_auto
from ..errors import InputError

DEFAULT_RETRIES = 2
COMMENT = "#"


def list_cases(source, exclude=None) -> list[Path]:
    """The case folders of a cohort: the sub-folders of a folder, or the paths listed in
    a text file (one per line, # comments; relative paths are relative to the file).
    `exclude` (the output folder, which may lie among the cases) is left out."""
    source = Path(source)
    if source.is_dir():
        skip = Path(exclude).resolve() if exclude is not None else None
        cases = sorted(p for p in source.iterdir() if p.is_dir()
                       and not p.name.startswith(".") and p.resolve() != skip)
        if not cases and any(source.glob("*.nii*")):
            raise InputError(f"{source}: holds image files, not case folders; for one "
                             "case use --case, for a cohort give the folder above it")
    elif source.is_file():
        lines = [line.split(COMMENT, 1)[0].strip()
                 for line in source.read_text(encoding="utf-8").splitlines()]
        cases = [(source.parent / line) for line in lines if line]
    else:
        raise InputError(f"{source}: not found; give a folder of case folders or a text "
                         "file with one case folder per line")
    if not cases:
        raise InputError(f"{source}: no case folders in it")
    _check_unique_names(cases, source)
    return cases


def _check_unique_names(cases: list[Path], source: Path) -> None:
    seen: dict[str, Path] = {}
    for case in cases:
        if case.name in seen:
            raise InputError(f"{source}: two cases named {case.name} ({seen[case.name]} "
                             f"and {case}); each case's output is OUT/<folder name>, so "
                             "rename one of them")
        seen[case.name] = case


def parts_from_environment(environ=os.environ) -> tuple[int, int]:
    """(num_parts, part_id) of a Slurm job array (SLURM_ARRAY_TASK_COUNT/_ID, counted
    from SLURM_ARRAY_TASK_MIN), else (1, 0)."""
    count = environ.get("SLURM_ARRAY_TASK_COUNT")
    if not count:
        return 1, 0
    task = int(environ["SLURM_ARRAY_TASK_ID"]) - int(environ.get("SLURM_ARRAY_TASK_MIN", 0))
    return int(count), task


def shard(cases: list[Path], num_parts: int, part_id: int) -> list[Path]:
    """Every num_parts-th case from part_id on (the split nnU-Net's predict uses)."""
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise InputError(f"--part-id {part_id} --num-parts {num_parts}: need "
                         "0 <= part-id < num-parts")
    return cases[part_id::num_parts]


@functools.lru_cache(maxsize=2)
def _worker_model(name: str | None, device: str):
    # One load per worker process (and per serial run), not one per case.
    from ..run.predict import load_run_model

    return load_run_model(name, device, io.StringIO())


def worker_threads(threads: int | None) -> int | None:
    """The torch threads of a task: the run's, else the CPUs Slurm gave the job."""
    if not is_auto(threads) or not os.environ.get("SLURM_CPUS_PER_TASK"):
        return threads
    return int(os.environ["SLURM_CPUS_PER_TASK"])


def _threads(values: dict) -> dict:
    threads = worker_threads(values.get("threads"))
    return {**values, "threads": threads} if threads is not None else values


def process_case(case_dir: str, out_dir: str, values: dict, snapshot: bool = True,
                 force: bool = False) -> dict:
    """One cohort task: segment a case into `out_dir`; returns its table row. Bad input
    gives an "input error" row; any other exception propagates (and is retried)."""
    from ..runtime.allocator import tune_allocator
    from ..run.predict import predict, settings_from

    tune_allocator()  # a Dask worker never runs cli.main (allocator.py says why)
    name, start = Path(case_dir).name, time.perf_counter()
    values = _threads(dict(values))
    try:
        model = _worker_model(values.get("model"), settings_from(values).device)
        _, result = predict(case_dir, out_dir, values, snapshot=snapshot, model=model,
                            force=force, note_stream=io.StringIO(), keep_maps=False)
    except InputError as error:
        return problem_row(name, INPUT_ERROR, str(error),
                           round(time.perf_counter() - start, 3))
    return row_from_report(result.report, name, DONE, str(out_dir))


def _skip_finished(cases: Iterable[Path], out_dir: Path) -> tuple[list[Path], list[dict]]:
    """(cases to run, rows of the cases whose output is complete)."""
    todo, skipped = [], []
    for case in cases:
        if is_complete(out_dir / case.name):
            skipped.append({**row_from_disk(out_dir, case.name), "status": SKIPPED})
        else:
            todo.append(case)
    return todo, skipped


def _failure_row(name: str, error: BaseException) -> dict:
    reason = "".join(traceback.format_exception_only(type(error), error)).strip()
    return problem_row(name, FAILED, reason)


class _Progress:
    """Cases done over the cohort, through a progress(stage, done, total, message)."""

    def __init__(self, progress, total: int):
        self.progress, self.total, self.done = progress, total, 0
        self._emit("started")

    def case(self, row: dict) -> None:
        self.done += 1
        self._emit(f"{row['case']}: {row['status']}")

    def _emit(self, message: str) -> None:
        if self.progress is not None:
            self.progress("cohort", self.done, self.total, message)


def run_cohort(cases: list[Path], out_dir, values: dict, *, client=None,
               retries: int = DEFAULT_RETRIES, snapshot: bool = True, force: bool = False,
               progress=None, all_cases: list[Path] | None = None,
               task: Callable[..., dict] = process_case) -> tuple[list[dict], Path]:
    """Run `cases` into `out_dir` (one task each on `client`, else in turn in this
    process); returns (this run's rows, the cohort table's path). `all_cases` (default
    `cases`) is the whole cohort the table lists, when `cases` is one shard of it;
    `task` runs one case (process_case; tests wrap it)."""
    from ..run.predict import settings_from

    settings_from(values)  # a bad option fails here, not once per case on the cluster
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo, rows = _skip_finished(cases, out_dir)
    tracker = _Progress(progress, len(cases))
    for row in rows:
        tracker.case(row)
    arguments = (values, snapshot, force)
    results = run_tasks(task, todo, lambda case: (str(case), str(out_dir / case.name),
                                                  *arguments),
                        client=client, retries=retries)
    for case, row in results:
        row = _failure_row(case.name, row) if isinstance(row, BaseException) else row
        write_record(out_dir, row)
        rows.append(row)
        tracker.case(row)
    mine = {row["case"]: row for row in rows}
    table = [mine.get(c.name) or row_from_disk(out_dir, c.name) for c in all_cases or cases]
    return rows, write_table(out_dir, table)


def run_tasks(task: Callable, cases: list[Path], arguments_of: Callable[[Path], tuple], *,
              client=None, retries: int = DEFAULT_RETRIES, key: str = "case"):
    """The engine of every cohort job (`predict --cases`, `evaluate`): one task per case,
    `task(*arguments_of(case))`, in turn in this process or on the Dask `client` (with
    `retries` for exceptions and, through the scheduler's allowed-failures, lost
    workers). Yields (case, result) as the tasks finish; a task that failed for good
    yields (case, the exception), so one case never ends the cohort."""
    run = _run_on_client if client is not None else _run_in_turn
    yield from run(task, cases, arguments_of, client, retries, key)


def _run_in_turn(task, cases, arguments_of, client, retries, key):
    for case in cases:
        try:
            yield case, task(*arguments_of(case))
        except Exception as error:  # noqa: BLE001 - one case's failure must not end the cohort
            yield case, error


def _run_on_client(task, cases, arguments_of, client, retries, key):
    by_name = {case.name: case for case in cases}
    calls = {case.name: arguments_of(case) for case in cases}
    for name, future in submit_each(client, task, calls, retries, kind=key):
        try:
            yield by_name[name], future.result()
        except Exception as error:  # noqa: BLE001 - KilledWorker after the retries, or a bug
            yield by_name[name], error


def submit_each(client, task: Callable, calls: dict, retries: int = DEFAULT_RETRIES,
                kind: str = "case"):
    """One `task(*arguments)` per `calls` item (name -> arguments) on the Dask `client`;
    yields (name, future) as each finishes. A task is retried `retries` times after an
    exception, and after a lost worker as often as the scheduler allows. `run_tasks`
    (the cohort, `evaluate`) and `train`'s per-case passes (training.passes) all run
    through here."""
    from distributed import as_completed

    # pure=False and a key unique to this run: a rerun computes again, and two runs on
    # one scheduler never share a result.
    futures = {client.submit(task, *arguments, retries=retries, pure=False,
                             key=f"uncertaintyseg-{kind}-{name}-{os.getpid()}-"
                                 f"{time.time_ns()}"): name
               for name, arguments in calls.items()}
    for future in as_completed(futures):
        yield futures[future], future
