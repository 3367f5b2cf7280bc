"""`train`'s per-case passes, one task per case: in this process in turn (the default),
or on the cohort engine's Dask cluster (`train --workers N | --scheduler ADDRESS |
--slurm`, docs/COHORTS.md).

Two passes: the projected 2D uncertainty of every training case (`uncertainty_of_case`,
one .npz each in train/uncertainty, written atomically: a lost worker leaves no half
archive for the resumed chain to trust) and the 3D refinement of the fusion-fit cases
(`refine_fit_case`, its p3d returned to the chain). A task reads everything from the
work folder by path, so on a cluster the work folder must be on a file system the
workers share; each worker process loads a network once, not once per case.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..cohorts.cohort import DEFAULT_RETRIES, submit_each, worker_threads
from ..stages.kernels import Box
from ..networks.models import load_network, stride_divisor
from ..files.output_safety import atomic_path
from ..stages.refine import refine
from . import prepare
from .loop import PRECISIONS
from .stamps import checkpoint_digest
from .trainer3d import case_uncertainty, load_preprocessed, select_boxes

UNCERTAINTY_FOLDER = "uncertainty"
# One network per (folder, checkpoint digest) per process: a worker runs many cases.
_NETWORKS: dict[tuple, torch.nn.Module] = {}


@dataclass(frozen=True)
class PassJob:
    """What a per-case task needs, by value (it is sent to the workers): the work
    folder's paths, the nnU-Net plans and dataset.json, the chain's settings."""

    train_dir: Path
    data_folder: Path
    plans: dict
    dataset: dict
    settings: object          # ChainSettings (chain imports this module, not the reverse)
    spacing_zyx: tuple
    threads: int | None = None  # torch threads per task (None: the job's CPUs, else 1)
    device: str = "cpu"  # where the networks run (the chain's device; the CPU on Dask)


def uncertainty_path(train_dir: Path, case_id: str) -> Path:
    return Path(train_dir) / UNCERTAINTY_FOLDER / f"{case_id}.npz"


def read_boxes(train_dir: Path, case_id: str) -> list[Box]:
    """The boxes the kernel search selected for `case_id` (in its uncertainty .npz)."""
    with np.load(uncertainty_path(train_dir, case_id)) as npz:
        return [Box(b["region"], b["rank"], b["score"], tuple(b["start"]), tuple(b["size"]))
                for b in json.loads(str(npz["boxes"]))]


def _network(job: PassJob, sub: str, configuration: str) -> torch.nn.Module:
    key = (str(job.train_dir), sub, checkpoint_digest(job.train_dir, sub), job.device)
    if key not in _NETWORKS:
        network, _ = load_network(Path(job.train_dir) / sub, configuration, job.device,
                                  plans=job.plans, dataset=job.dataset, checkpoint="best.pth")
        _NETWORKS[key] = network
    return _NETWORKS[key]


def loaded_networks() -> list[tuple]:
    """(folder, sub, digest) of the networks this process holds (a test asks workers)."""
    return list(_NETWORKS)


def forget_networks() -> None:
    _NETWORKS.clear()


def _set_threads(job: PassJob) -> None:
    threads = worker_threads(job.threads)
    if threads and threads != torch.get_num_threads():
        torch.set_num_threads(threads)


def uncertainty_of_case(job: PassJob, case_id: str) -> str:
    """P2D, normalised entropy and the selected boxes of one case, into its .npz (kept
    when already there: a retried task whose first attempt finished)."""
    path = uncertainty_path(job.train_dir, case_id)
    if path.is_file():
        return case_id
    _set_threads(job)
    s = job.settings
    image, seg = load_preprocessed(job.data_folder, case_id)
    p2d, entropy = case_uncertainty(_network(job, "2d", prepare.CONFIG_2D), image, seg >= 0,
                                    s.net3d, s.net2d.radius,
                                    stride_divisor(job.plans, prepare.CONFIG_2D),
                                    precision=s.net2d.precision, device=job.device)
    boxes = select_boxes(entropy, job.spacing_zyx, s.kernel_mm, s.net3d)
    with atomic_path(path) as temporary:
        np.savez_compressed(temporary, p2d=p2d.astype(np.float16),
                            entropy=entropy.astype(np.float16),
                            boxes=json.dumps([asdict(b) for b in boxes]))
    return case_id


def refine_fit_case(job: PassJob, case_id: str) -> np.ndarray:
    """The 3D network's probabilities (3, Z, Y, X) float32 in the boxes of one case."""
    _set_threads(job)
    image, _ = load_preprocessed(job.data_folder, case_id)
    return refine(_network(job, "3d", prepare.CONFIG_3D), image,
                  read_boxes(job.train_dir, case_id), batch_size=2, device=job.device,
                  divisor=stride_divisor(job.plans, prepare.CONFIG_3D),
                  autocast_dtype=PRECISIONS[job.settings.net3d.precision])


def run_pass(task: Callable, job: PassJob, case_ids: list[str], client=None,
             *, retries: int = DEFAULT_RETRIES, progress=None, stage: str = "") -> dict:
    """{case id: task(job, case id)} over `case_ids`: in turn here without a `client`,
    else one task per case on it (results come back as they finish). A case that still
    fails after its retries ends the pass with its error, naming the case."""
    results, report = {}, progress or (lambda *args: None)
    if client is None:
        for case_id in case_ids:
            results[case_id] = task(job, case_id)
            report(stage, len(results), len(case_ids), case_id)
        return results
    calls = {case_id: (job, case_id) for case_id in case_ids}
    for case_id, future in submit_each(client, task, calls, retries, kind="train"):
        try:
            results[case_id] = future.result()
        except Exception as error:
            raise RuntimeError(f"{stage}: case {case_id} failed on the cluster (run again "
                               f"up to {retries} times): {error}") from error
        report(stage, len(results), len(case_ids), case_id)
    return {case_id: results[case_id] for case_id in case_ids}
