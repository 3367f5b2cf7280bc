"""Checks on where an output folder goes, done before any work: writable, room enough,
not being written by another run at the same time; and the writes that must never be
seen half done.

A run takes minutes (hours on a large batch); finding a read-only disk or a full one
only when the results are written wastes all of it. `preflight` tries what the writer
will do (create a file beside and inside the output folder) and compares the free space
with an estimate of the outputs' size; `output_lock` keeps two runs from writing into
one folder at once (the `filelock` package: an OS lock on a hidden file beside it), and
`work_lock` two `train` runs from sharing a work folder. `write_text_atomic` /
`write_json_atomic` / `atomic_path` (stdlib only, in the package shared with Slicer:
`uncertaintyseg_shared.atomic`) write a file under a temporary name, fsync it and rename
it, so a resumed run never reads half a file. The partial folders of a run killed hard are
recognised by the host and process in their names (`is_stale_partial`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

# The shared package, not io: image_writer takes write_text_atomic from here, and io
# imports it. No filelock here: see _held.
from uncertaintyseg_shared.atomic import (atomic_path, space_note,  # noqa: F401
                                          write_json_atomic, write_text_atomic)
from uncertaintyseg_shared.errors import OutputError

# Bytes per voxel of the outputs before compression: five float32 maps (probabilities,
# 2D, 3D, uncertainty, raw entropy) x 3 regions, and the uint8 label map.
FLOAT_BYTES_PER_VOXEL = 5 * 3 * 4
# gzip brings the maps to 5-35 % of that on BraTS and phantom results (measured: a
# 240x240x155 BraTS case writes 78 MB); a quarter keeps a margin over that.
COMPRESSED_FRACTION = 0.25
FIXED_BYTES = 2_000_000          # snapshot.png, the two JSON files
LOCK_WAIT_S = 3.0                # a second run waits this long for the lock, then refuses
# A partial folder lives for one write (seconds, minutes on a slow disk). One made on
# another host (a shared file system: its process cannot be looked up from here) is
# taken as stale only when it is older than this: no live write lasts a week.
STALE_PARTIAL_AGE_S = 7 * 24 * 3600
PARTIAL_TAG = ".partial-"
WORK_LOCK_FILE = ".uncertaintyseg-train.lock"
OWNER_SUFFIX = ".owner"         # beside a work lock: the host and process holding it


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

    def refuse() -> str:
        return (f"{out_dir}: another uncertaintyseg run is writing into this folder (lock "
                f"{path}). Wait for it to finish or choose another --out.")

    with _held(path, timeout, refuse):
        yield path


@contextlib.contextmanager
def _held(path: Path, timeout: float, refuse):
    """Hold the filelock at `path` (re-entrant in one process); yields True in the
    outermost hold. After `timeout` seconds of waiting: OutputError(refuse())."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{path.parent}: cannot be created ({_reason(err)}). "
                          f"{_advice(err)}") from err
    # Imported here, not at the top: this module is on the import path of code that runs
    # in Slicer's Python, which does not ship filelock (slicer-review-3, L1).
    import filelock

    # is_singleton: the CLI and write_outputs both take the lock in one process; two
    # separate flock() calls there would block each other.
    lock = filelock.FileLock(path, is_singleton=True)
    try:
        lock.acquire(timeout=timeout)
    except filelock.Timeout as err:
        raise OutputError(refuse()) from err
    try:
        yield lock.lock_counter == 1
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


# ---- a training work folder --------------------------------------------------------------

@contextlib.contextmanager
def work_lock(work, timeout: float = LOCK_WAIT_S):
    """Hold the lock of a `train` work folder for a whole run (re-entrant in one
    process): a second run on it waits `timeout` seconds, then gets an OutputError that
    names the folder and the run holding it (host and process id, from the owner file
    the holder keeps beside the lock)."""
    work = Path(work).resolve()
    path = work / WORK_LOCK_FILE
    owner = path.with_name(path.name + OWNER_SUFFIX)

    def refuse() -> str:
        return (f"{work}: another `uncertaintyseg train` is using this work folder "
                f"({describe_owner(owner)}; lock {path}). Wait for it to finish or give "
                "another --work.")

    with _held(path, timeout, refuse) as outermost:
        if outermost:
            write_json_atomic(owner, {"host": socket.gethostname(), "pid": os.getpid(),
                                      "started": time.strftime("%Y-%m-%d %H:%M:%S %z")})
        try:
            yield work
        finally:
            if outermost:
                owner.unlink(missing_ok=True)


def describe_owner(owner: Path) -> str:
    """'process PID on HOST since TIME' from an owner file, or why it cannot say."""
    try:
        record = json.loads(owner.read_text(encoding="utf-8"))
        return f"process {record['pid']} on {record['host']} since {record['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its host and process are not recorded"


# ---- partial folders of runs killed hard --------------------------------------------------

def this_host() -> str:
    """The host name as it goes into a file name (characters other than letters, digits,
    '.' and '-' become '_')."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "unknown-host"


def partial_prefix(out_dir) -> str:
    """The start of the name of this process's partial folder for `out_dir`:
    `.NAME.partial-PID-HOST-` (mkdtemp adds a random end, which has no '-')."""
    return f".{Path(out_dir).name}{PARTIAL_TAG}{os.getpid()}-{this_host()}-"


def partial_owner(path) -> tuple[int, str] | None:
    """(pid, host) from a partial folder's name; None for a name without a host (written
    before the host was recorded) or not made by `partial_prefix`."""
    rest = Path(path).name.rsplit(PARTIAL_TAG, 1)[-1]
    pid, _, tail = rest.partition("-")
    host, dash, _ = tail.rpartition("-")  # the host may hold '-'; the random end does not
    if not (pid.isdigit() and dash and host):
        return None
    return int(pid), host


def is_stale_partial(path, now: float | None = None) -> bool:
    """True for a partial folder whose writer is surely gone: made on this host by a
    process that no longer runs, or (another host, or a name without a host: its
    process cannot be looked up from here) older than STALE_PARTIAL_AGE_S. A live run's
    folder, even on a shared file system, is never stale."""
    owner = partial_owner(path)
    if owner is not None and owner[1] == this_host() and not process_alive(owner[0]):
        return True
    try:
        age = (time.time() if now is None else now) - Path(path).stat().st_mtime
    except OSError:
        return False
    return age > STALE_PARTIAL_AGE_S


def remove_stale_partials(out_dir) -> None:
    """Remove the stale partial folders of `out_dir` (beside it, and inside it when it
    is a folder): a run killed hard (SIGKILL, power loss) cannot clean up after itself."""
    out_dir = Path(out_dir)
    places = [out_dir.parent, out_dir] if out_dir.is_dir() else [out_dir.parent]
    pattern = f".{out_dir.name}{PARTIAL_TAG}*"
    for partial in (p for place in places for p in place.glob(pattern)):
        if is_stale_partial(partial):
            shutil.rmtree(partial, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (one we may not signal runs too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
