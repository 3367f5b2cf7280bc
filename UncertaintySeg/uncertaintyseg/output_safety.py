"""Checks on where an output folder goes, done before any work: writable, room enough,
not being written by another run at the same time.

A run takes minutes (hours on a large batch); finding a read-only disk or a full one
only when the results are written wastes all of it. `preflight` tries what the writer
will do (create a file beside and inside the output folder) and compares the free space
with an estimate of the outputs' size; `output_lock` keeps two runs from writing into
one folder at once (the `filelock` package: an OS lock on a hidden file beside it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

import filelock

from .io import OutputError

# Bytes per voxel of the outputs before compression: five float32 maps (probabilities,
# 2D, 3D, uncertainty, raw entropy) x 3 regions, and the uint8 label map.
FLOAT_BYTES_PER_VOXEL = 5 * 3 * 4
# gzip brings the maps to 5-35 % of that on BraTS and phantom results (measured: a
# 240x240x155 BraTS case writes 78 MB); a quarter keeps a margin over that.
COMPRESSED_FRACTION = 0.25
FIXED_BYTES = 2_000_000          # snapshot.png, the two JSON files
LOCK_WAIT_S = 3.0                # a second run waits this long for the lock, then refuses


def estimate_output_bytes(shape_zyx) -> int:
    """About how many bytes `write_outputs` writes for a case of this (Z, Y, X) shape."""
    voxels = 1
    for n in shape_zyx:
        voxels *= int(n)
    return int(voxels * (FLOAT_BYTES_PER_VOXEL * COMPRESSED_FRACTION + 1) + FIXED_BYTES)


def _nearest_folder(path: Path) -> Path:
    """The nearest existing ancestor of `path` (or `path`); OutputError if it is a file."""
    for candidate in (path, *path.parents):
        try:
            candidate.stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as err:  # a folder on the way the user may not enter
            raise OutputError(f"{path}: cannot be reached ({_reason(err)} at "
                              f"{candidate}). {_advice(err)}") from err
        else:
            if not candidate.is_dir():
                raise OutputError(f"{path}: cannot be created, {candidate} is a file, not a "
                                  "folder. Choose another --out.")
            return candidate
    return Path(path.anchor)


def _probe(folder: Path, out_dir: Path) -> None:
    """Create and remove a hidden file in `folder`: the one test that sees read-only
    mounts, permissions, ACLs and quotas as the writer will."""
    try:
        handle, name = tempfile.mkstemp(prefix=".uncertaintyseg-probe-", dir=folder)
        os.close(handle)
        os.unlink(name)
    except OSError as err:
        raise OutputError(f"{out_dir}: cannot write in {folder} ({_reason(err)}). "
                          f"{_advice(err)}") from err


def _reason(err: OSError) -> str:
    return {errno.EROFS: "read-only file system",
            errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.ENOSPC: "no space left on the disk",
            errno.EDQUOT: "disk quota exceeded"}.get(err.errno, err.strerror or str(err))


def _advice(err: OSError) -> str:
    if err.errno in (errno.EACCES, errno.EPERM):
        return "Choose an --out in a folder you may write to, or ask its owner for access."
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "Free disk space or choose an --out on another disk."
    return "Choose an --out on a writable disk."


def check_free_space(out_dir, needed_bytes: int) -> None:
    """OutputError when the disk of `out_dir` has less than `needed_bytes` free."""
    out_dir = Path(out_dir).resolve()
    folder = _nearest_folder(out_dir)
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise OutputError(f"{out_dir}: not enough free disk space: the results need about "
                          f"{needed_bytes / 1e6:.0f} MB, {free / 1e6:.0f} MB are free on "
                          f"the disk of {folder}. Free space or choose an --out on another "
                          "disk.")


def preflight(out_dir, shape_zyx=None) -> Path:
    """Before the model is loaded: can `out_dir` be created and written, with room for
    the outputs of a case of shape `shape_zyx`? OutputError saying what to do, if not."""
    out_dir = Path(out_dir).resolve()
    folder = _nearest_folder(out_dir)
    # The result is assembled in a hidden folder inside an existing out_dir, else beside
    # it (where out_dir will be created): that place must take a new file.
    _probe(folder if folder == out_dir else _nearest_folder(out_dir.parent), out_dir)
    if shape_zyx is not None:
        check_free_space(out_dir, estimate_output_bytes(shape_zyx))
    return out_dir


def check_file_destination(path) -> Path:
    """Before any work: can the file `path` (a scene, a metrics table) be created? Its
    folder may be missing (it will be made) but not be a file or unwritable."""
    path = Path(path).resolve()
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    for candidate in path.parents:
        if candidate.exists() and not candidate.is_dir():
            raise OutputError(f"{path}: cannot be created, {candidate} is a file, not a "
                              "folder. Choose another path.")
    _probe(_nearest_folder(path.parent), path)
    return path


def lock_path(out_dir) -> Path:
    """The hidden lock file beside `out_dir`, there while a run holds it; inside an
    existing `out_dir` whose parent takes no file (a mount point such as a Docker
    volume: nobody can create or remove out_dir there, so its own lock is enough)."""
    out_dir = Path(out_dir).resolve()
    beside = out_dir.with_name(f".{out_dir.name}.lock")
    if out_dir.is_dir() and not _can_create_in(out_dir.parent):
        return out_dir / ".uncertaintyseg.lock"
    return beside


def _can_create_in(folder: Path) -> bool:
    try:
        _probe(folder, folder)
    except OutputError:
        return False
    return True


@contextlib.contextmanager
def output_lock(out_dir, timeout: float = LOCK_WAIT_S):
    """Hold the lock of `out_dir` (re-entrant in one process); a second process waits up
    to `timeout` seconds, then gets an OutputError naming the folder."""
    path = lock_path(out_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{path.parent}: cannot be created ({_reason(err)}). "
                          f"{_advice(err)}") from err
    # is_singleton: the CLI and write_outputs both take the lock in one process; two
    # separate flock() calls there would block each other.
    lock = filelock.FileLock(path, is_singleton=True)
    try:
        lock.acquire(timeout=timeout)
    except filelock.Timeout as err:
        raise OutputError(f"{out_dir}: another uncertaintyseg run is writing into this "
                          f"folder (lock {path}). Wait for it to finish or choose another "
                          "--out.") from err
    try:
        yield path
    finally:
        if lock.lock_counter == 1:
            # Unlinked while still held, so no file is left behind. Safe with filelock
            # >= 4.3: a waiter that then gets the old, unlinked file sees st_nlink == 0
            # and locks a new one.
            path.unlink(missing_ok=True)
        lock.release()


@contextlib.contextmanager
def claim_output(out_dir, shape_zyx=None, check=None):
    """Check that `out_dir` can be written, lock it, run `check(out_dir)` (the contract's
    folder check) under the lock and check the free space for a case of `shape_zyx`;
    the lock is held until the block ends (the results are written)."""
    preflight(out_dir)  # before the lock: taking it creates the parent folders
    with output_lock(out_dir):
        if check is not None:
            check(out_dir)
        preflight(out_dir, shape_zyx)
        yield Path(out_dir).resolve()
