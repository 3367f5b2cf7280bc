"""What a resumed or concurrent run relies on: stale partial folders recognised by host
and process, JSON files written whole (fsync, rename), a `train` work folder locked.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uncertaintyseg.files import output_safety
from uncertaintyseg.commands.cli import EXIT_INPUT_ERROR, main
from uncertaintyseg.errors import OutputError
from uncertaintyseg.files.output_safety import (STALE_PARTIAL_AGE_S, atomic_path, is_stale_partial,
                                                partial_owner, partial_prefix, remove_stale_partials,
                                                this_host, work_lock, write_json_atomic)
from uncertaintyseg.training.stamps import STAMPS_FILE, Stamps


def _dead_pid() -> int:
    """The id of a process of this host that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _partial(folder: Path, pid: int, host: str, age_s: float = 0) -> Path:
    path = folder / f".out.partial-{pid}-{host}-k2j_x9q"
    path.mkdir()
    (path / "segmentation.nii.gz").write_bytes(b"half")
    if age_s:
        then = time.time() - age_s
        os.utime(path, (then, then))
    return path


# ---- 1. stale partial folders ------------------------------------------------------------

def test_partial_names_carry_the_host_and_process():
    name = partial_prefix("/data/out") + "abc_12"
    assert name.startswith(".out.partial-")
    assert partial_owner(name) == (os.getpid(), this_host())
    # A host name with '-' in it is kept whole; a name from before the host was recorded
    # has no owner.
    assert partial_owner(".out.partial-42-node-7.cluster-abc") == (42, "node-7.cluster")
    assert partial_owner(".out.partial-42-abc") is None


def test_only_a_dead_process_of_this_host_makes_a_partial_stale(tmp_path):
    live = _partial(tmp_path, os.getpid(), this_host())
    dead_here = _partial(tmp_path, _dead_pid(), this_host())
    # Another host's process cannot be looked up from here (a shared file system): its
    # pid means nothing on this host, dead or alive here.
    elsewhere = _partial(tmp_path, _dead_pid(), "other-node.cluster")
    remove_stale_partials(tmp_path / "out")
    assert live.exists() and elsewhere.exists()
    assert not dead_here.exists()


def test_another_hosts_partial_goes_only_when_very_old(tmp_path):
    fresh = _partial(tmp_path, 1234, "other-node", age_s=STALE_PARTIAL_AGE_S - 3600)
    old = _partial(tmp_path, 1235, "other-node", age_s=STALE_PARTIAL_AGE_S + 3600)
    unnamed = tmp_path / ".out.partial-1236-abc"      # an older release's name, no host
    unnamed.mkdir()
    assert not is_stale_partial(fresh) and is_stale_partial(old)
    assert not is_stale_partial(unnamed)
    assert is_stale_partial(unnamed, now=time.time() + STALE_PARTIAL_AGE_S + 1)
    # A live writer of this host keeps its partial, minutes old or not.
    assert not is_stale_partial(_partial(tmp_path, os.getpid(), this_host(), age_s=60))


# ---- 2. JSON written whole ----------------------------------------------------------------

def _failing_fsync(handle):
    raise OSError(5, "Input/output error")  # the disk gave up under the write


def test_json_is_replaced_whole_and_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "train" / "timings.json"
    write_json_atomic(path, {"train2d": 1.0})
    write_json_atomic(path, {"train2d": 2.0})
    assert json.loads(path.read_text(encoding="utf-8")) == {"train2d": 2.0}

    monkeypatch.setattr(output_safety.os, "fsync", _failing_fsync)
    with pytest.raises(OutputError, match="timings.json: could not be written"):
        write_json_atomic(path, {"train2d": 3.0})
    assert json.loads(path.read_text(encoding="utf-8")) == {"train2d": 2.0}
    assert sorted(p.name for p in path.parent.iterdir()) == ["timings.json"]


def test_atomic_path_keeps_the_ending_and_leaves_nothing_on_error(tmp_path):
    import numpy as np

    target = tmp_path / "case.npz"
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.endswith(".npz")
        np.savez_compressed(temporary, a=np.arange(3))
    with np.load(target) as npz:
        assert npz["a"].tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_bytes(b"half an archive")
        raise RuntimeError("killed mid-write")
    with np.load(target) as npz:
        assert npz["a"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["case.npz"]


def test_stamps_survive_a_failed_write(tmp_path, monkeypatch):
    (tmp_path / "2d").mkdir()
    (tmp_path / "2d" / "best.pth").write_bytes(b"weights")
    Stamps(tmp_path).record("uncertainty")
    before = (tmp_path / STAMPS_FILE).read_text(encoding="utf-8")
    (tmp_path / "2d" / "best.pth").write_bytes(b"other weights")
    monkeypatch.setattr(output_safety.os, "fsync", _failing_fsync)
    with pytest.raises(OutputError):
        Stamps(tmp_path).record("uncertainty")
    assert (tmp_path / STAMPS_FILE).read_text(encoding="utf-8") == before


# ---- 3. one train per work folder ---------------------------------------------------------

def _env():
    return {**os.environ, "PYTHONPATH": str(Path(output_safety.__file__).parents[2])}


@pytest.fixture
def held_work(tmp_path):
    """A work folder whose lock another process holds (until the test ends)."""
    work = tmp_path / "work"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom uncertaintyseg.files.output_safety import "
         "work_lock\nwith work_lock(sys.argv[1]):\n    print('locked', flush=True)\n"
         "    time.sleep(60)\n", str(work)],
        stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield work, holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_held_work_folder_is_refused_naming_the_other_run(held_work):
    work, pid = held_work
    started = time.monotonic()
    with pytest.raises(OutputError) as caught, work_lock(work, timeout=0.5):
        pass
    assert time.monotonic() - started >= 0.5  # it waited before refusing
    message = str(caught.value)
    assert str(work.resolve()) in message
    assert f"process {pid} on {socket.gethostname()}" in message


def test_train_on_a_held_work_folder_refuses_before_any_work(held_work, tmp_path, capsys):
    work, pid = held_work
    code = main(["train", "--phantoms", "1", "--preset", "tiny", "--out",
                 str(tmp_path / "model"), "--work", str(work), "--progress", "none"])
    assert code == EXIT_INPUT_ERROR
    err = capsys.readouterr().err
    assert "another `uncertaintyseg train` is using this work folder" in err
    assert f"process {pid}" in err
    assert not (work / "phantoms").exists() and not (tmp_path / "model").exists()


def test_the_lock_is_free_again_and_leaves_no_file(tmp_path):
    work = tmp_path / "work"
    with work_lock(work), work_lock(work):  # re-entrant in one process
        assert (work / ".uncertaintyseg-train.lock.owner").is_file()
    assert list(work.iterdir()) == []
    with work_lock(work, timeout=0):
        pass
