"""Files written whole or not at all: a temporary name in the same folder, fsync, rename.

A resumed run, the Slicer worklist and a second shard of a cohort job read these files
while others may be writing them; they see the old file or the new one, never half of
one. Standard library only, so the Slicer Lib writes review.json and exported label maps
the same way before the pipeline's dependencies are installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path

from .errors import OutputError


def space_note(path: Path) -> str:
    """How much room the disk of `path` has, for a message about a write that failed."""
    folder = next((p for p in (path, *path.parents) if p.is_dir()), Path("."))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "the disk may be full"
    return f"{free / 1e6:.1f} MB free on the disk of {folder}; the disk is probably full"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name in the folder of `path` (made if missing) with the same
    ending (.npz, .json); when the block has written it, fsync it and rename it to
    `path`. On any error nothing is left and an earlier `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix
    stem = path.name[: len(path.name) - len(suffix)]
    temporary = path.with_name(f".{stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{suffix}")
    try:
        yield temporary
        # The rename is atomic, but without fsync a crash soon after can leave the new
        # name on an empty file (ext4/XFS delayed allocation).
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _sync_folder(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    # The rename itself lives in the folder's entry; not every system lets a folder be
    # opened for fsync (Windows, some network file systems): then it is left to the OS.
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def write_text_atomic(path, text: str) -> Path:
    """Write a text file (a JSON or CSV table) through `atomic_path`, as UTF-8; a full
    disk is an OutputError naming `path`, with nothing left."""
    path = Path(path)
    try:
        with atomic_path(path) as temporary:
            # newline="": the text's own line ends on every OS (a CSV's \r\n not doubled).
            temporary.write_text(text, encoding="utf-8", newline="")
    except OSError as err:
        raise OutputError(f"{path}: could not be written ({err.strerror}; "
                          f"{space_note(path)}). Free disk space or choose another "
                          "path.") from err
    return path


def write_json_atomic(path, data, indent: int = 2) -> Path:
    """`data` as JSON (a closing newline) through `write_text_atomic`: every JSON file a
    resumed run reads back (timings, stamps, histories, plans, fusion) goes this way."""
    return write_text_atomic(path, json.dumps(data, indent=indent) + "\n")
