"""The start-up check of `train`: enough disk and memory for the run, before any work.

An estimate, from what is known before planning (the cases' headers, the settings):

- disk, in the work folder: nnU-Net's raw copy of the cases (their size on disk), the
  preprocessed data in nnU-Net's format (every voxel of the four channels as float32
  and the label as one byte: the uncompressed upper bound of nnU-Net's blosc2 files,
  before its crop to the brain), the training cases' uncertainty files (P2D and the
  entropy, 3 float16 channels each), and per network `latest.pth` (weights and Adam's
  two moments, float32) plus `best.pth`, from the calibration's networks' sizes;
- memory: nnU-Net's augmentation workers (`nnUNet_n_proc_DA` per training process),
  each holding the largest case in float32 and its cached batches, plus the main
  process's per-case pass (the case, P2D, the entropy and the projections' work
  arrays: WORK_FLOATS float32 values per voxel).

The check refuses when the estimate (less what the work folder holds already: a resumed
run) exceeds what is free, naming the folder and both numbers; the dry run prints the
same lines without refusing.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np


GB = 1e9
CHANNELS = 4
# float32 values per voxel in the main process's per-case pass: the 4-channel case,
# P2D and the entropy (3 each), and 6 more for the projections' gathered work arrays.
WORK_FLOATS = 16
CACHED_BATCHES = 6  # devices.background keeps at least 6 batches per worker queue


@dataclass
class Cases:
    """What the check and the calibration need of the cases (from headers only)."""

    voxels: list[int]  # per case
    disk_bytes: int  # the source files' size (nnU-Net's raw copy is about the same)
    inplane: tuple[int, int]  # the first case's slice shape (rows, columns)


def read_cases(source: Path | None, phantoms: int = 0) -> Cases:
    """Cases of `source` from the NIfTI headers (nothing is decompressed), or `phantoms`
    generated phantoms of phantom.DEFAULT_SHAPE."""
    if source is None:
        from ..files.phantom import DEFAULT_SHAPE

        count = max(1, phantoms)
        return Cases([int(np.prod(DEFAULT_SHAPE))] * count,
                     count * int(np.prod(DEFAULT_SHAPE)), tuple(DEFAULT_SHAPE[1:]))
    import nibabel

    from ..files.convert import find_cases

    voxels, size, inplane = [], 0, None
    for _, files, label in find_cases(source):
        first = nibabel.load(str(next(iter(files.values()))))
        voxels.append(int(np.prod(first.shape[:3])))
        # NIfTI axes are (x, y, z); the pipeline's slices are (y, x) planes of (z, y, x).
        inplane = inplane or (int(first.shape[1]), int(first.shape[0]))
        size += sum(Path(p).stat().st_size for p in (*files.values(), label))
    return Cases(voxels, size, inplane)


def disk_needed(cases: Cases, checkpoint_params: dict[str, int]) -> dict[str, float]:
    """Bytes per item the run writes into the work folder."""
    voxels = sum(cases.voxels)
    return {"raw copy": float(cases.disk_bytes),
            "preprocessed (float32)": voxels * (CHANNELS * 4 + 1.0),
            "uncertainty files (float16)": voxels * 6 * 2.0,
            "checkpoints": sum(4 * 4.0 * n for n in checkpoint_params.values())}


def memory_needed(cases: Cases, workers: int, batch_bytes: float) -> dict[str, float]:
    """Bytes of RAM per item while the run trains and runs its per-case passes."""
    largest = max(cases.voxels)
    case = largest * (CHANNELS * 4 + 1.0)
    return {f"augmentation workers ({workers})": workers * (case + CACHED_BATCHES * batch_bytes),
            "per-case pass": largest * WORK_FLOATS * 4.0}


def available_memory() -> float | None:
    """Bytes of RAM available now (Linux's MemAvailable; else the free pages; None
    where neither is known: the memory check is then skipped)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def free_disk(folder: Path) -> tuple[Path, float]:
    """(the existing folder the work folder is or will be made in, its free bytes)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder, float(shutil.disk_usage(folder).free)


def _items(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v / GB:.2f} GB" for k, v in values.items())


def written_bytes(work: Path) -> float:
    """Bytes already in the work folder (a resumed run needs only the rest)."""
    work = Path(work)
    if not work.is_dir():
        return 0.0
    return float(sum(p.stat().st_size for p in work.rglob("*") if p.is_file()))


def report(work: Path, disk: dict, memory: dict) -> tuple[list[str], list[str]]:
    """(lines for the plan, the refusals: empty when the run fits)."""
    folder, free = free_disk(work)
    ram, written = available_memory(), written_bytes(work)
    need_disk, need_ram = max(0.0, sum(disk.values()) - written), sum(memory.values())
    lines = [f"disk: about {need_disk / GB:.2f} GB more in {work} ({_items(disk)}; "
             f"{written / GB:.2f} GB written already); {free / GB:.2f} GB free in {folder}",
             f"memory: about {need_ram / GB:.2f} GB ({_items(memory)}); " +
             ("available memory unknown" if ram is None else f"{ram / GB:.2f} GB available")]
    refusals = []
    if need_disk > free:
        refusals.append(f"{folder}: the run needs about {need_disk / GB:.2f} GB of disk "
                        f"({_items(disk)}) and {free / GB:.2f} GB are free; free space "
                        "there or give --work on a larger disk")
    if ram is not None and need_ram > ram:
        refusals.append(f"{work}: the run needs about {need_ram / GB:.2f} GB of memory "
                        f"({_items(memory)}) and {ram / GB:.2f} GB are available; lower "
                        "nnUNet_n_proc_DA (the augmentation workers) or the batch sizes, "
                        "or run on a larger machine")
    return lines, refusals
