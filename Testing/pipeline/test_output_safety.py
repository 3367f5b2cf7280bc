"""The output side: --overwrite keeps what we did not write, failures are found before
the work (read-only, no permission, a file as parent, no room), a full disk is never
silent, two runs do not write one folder, SIGTERM is handled like Ctrl-C (issue 9).

File-system faults use real tiny tmpfs mounts when the test may mount (root); where it
may not, the same behaviour is checked through a fault injected at the system call.
"""

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from uncertaintyseg.commands import cli
from uncertaintyseg.files import contract, io, output_safety
from uncertaintyseg.files.contract import write_outputs
from uncertaintyseg.files.phantom import write_phantom_case

from test_contract import _result

SMALL = ["--model", "analytic", "--projections", "3", "--kernel-mm", "12", "12", "24",
         "--max-boxes", "2", "--batch-size", "3", "--no-snapshot"]
PACKAGE_ROOT = Path(cli.__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    return write_phantom_case(tmp_path_factory.mktemp("case"), seed=5, shape=(20, 48, 40))


@contextlib.contextmanager
def tmpfs(folder: Path, size: str, readonly: bool = False):
    """A real tmpfs of `size` at `folder`; None where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if readonly else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@contextlib.contextmanager
def unprivileged():
    """Root passes every permission check: act as `nobody` for the block."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def _env():
    return {**os.environ, "PYTHONPATH": f"{PACKAGE_ROOT}{os.pathsep}"
            f"{os.environ.get('PYTHONPATH', '')}"}


def _no_model(monkeypatch):
    # Every preflight failure must come before the model is loaded.
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr("uncertaintyseg.networks.models.load_model", refuse)


def _predict(case_dir, out, *extra):
    return cli.main(["predict", "--case", str(case_dir), "--out", str(out),
                     "--progress", "none", *SMALL, *extra])


# ---- 1. --overwrite never deletes what the project did not write ---------------------

def test_overwrite_keeps_foreign_files_and_replaces_ours(tmp_path):
    earlier = _result(seed=1)
    earlier.uncertainty_raw = earlier.uncertainty * 3
    out = write_outputs(earlier, tmp_path / "out", snapshot=False, outputs="all")
    assert (out / "uncertainty_raw.nii.gz").is_file()
    (out / ".git").mkdir()
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (out / ".notes").write_text("hidden note")
    (out / "reading.md").write_text("the radiologist's note")
    newer = _result(seed=2)
    write_outputs(newer, out, overwrite=True, snapshot=False)
    assert (out / ".git" / "HEAD").read_text(encoding="utf-8") == "ref: refs/heads/main\n"
    assert (out / ".notes").read_text(encoding="utf-8") == "hidden note"
    assert (out / "reading.md").read_text(encoding="utf-8") == "the radiologist's note"
    back = contract.read_outputs(out)
    assert np.array_equal(back["labels"], newer.labels)
    assert "uncertainty_raw" not in back  # the earlier run's optional file went with it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_overwrite_refuses_a_folder_with_our_file_names_but_no_result(tmp_path):
    folder = tmp_path / "refs"
    folder.mkdir()
    (folder / "segmentation.nii.gz").write_bytes(b"the reference segmentation")
    with pytest.raises(io.InputError, match="no earlier UncertaintySeg result"):
        write_outputs(_result(), folder, overwrite=True, snapshot=False)
    assert (folder / "segmentation.nii.gz").read_bytes() == b"the reference segmentation"


def test_an_output_folder_that_is_a_mount_point_is_written_and_overwritten(case_dir, tmp_path):
    # A Docker volume (`-v ...:/out`) is a mount point: it cannot be renamed, and a folder
    # assembled beside it is on another file system.
    with tmpfs(tmp_path / "volume", "20M") as mount:
        if mount is None:
            pytest.skip("mounting a tmpfs is not allowed here")
        assert _predict(case_dir, mount) == 0
        (mount / "notes.txt").write_text("mine")
        assert _predict(case_dir, mount, "--overwrite") == 0
        names = sorted(p.name for p in mount.iterdir())
    assert "report.json" in names and "notes.txt" in names
    assert not [n for n in names if n.startswith(".")]


def test_lock_inside_an_output_folder_whose_parent_takes_no_file(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(output_safety, "_can_create_in", lambda folder: folder != tmp_path)
    assert output_safety.lock_path(out) == out / ".uncertaintyseg.lock"
    write_outputs(_result(), out, snapshot=False)  # an empty folder, though it held a lock
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ---- 2. preflight before the model is loaded ----------------------------------------

def test_read_only_output_is_refused_before_the_model(case_dir, tmp_path, monkeypatch, capsys):
    _no_model(monkeypatch)
    with tmpfs(tmp_path / "ro", "1M", readonly=True) as mount:
        if mount is None:  # no mount allowed: the file system's answer, injected
            mount = tmp_path / "ro"

            def read_only(*args, **kwargs):
                raise OSError(errno.EROFS, "Read-only file system")

            monkeypatch.setattr(output_safety.tempfile, "mkstemp", read_only)
        code = _predict(case_dir, mount / "result")
    err = capsys.readouterr().err
    assert code == cli.EXIT_INPUT_ERROR, err
    assert "read-only file system" in err and str(mount / "result") in err
    assert "writable" in err


def test_folder_without_write_permission_is_refused(case_dir, tmp_path, monkeypatch, capsys):
    _no_model(monkeypatch)
    # pytest's tmp_path sits in a root-only folder: `nobody` needs a way in.
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="uncertaintyseg-perm-"))
    top.chmod(0o755)
    locked = top / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    try:
        with unprivileged():
            with pytest.raises(io.OutputError, match="permission denied"):
                output_safety.preflight(locked / "result", (20, 48, 40))
            with pytest.raises(io.OutputError, match="permission denied"):
                output_safety.preflight(tmp_path / "result", (20, 48, 40))
    finally:
        locked.chmod(0o755)
        locked.rmdir()
        top.rmdir()
    if os.geteuid() == 0:  # the CLI path too, where root passes every check
        def denied(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(output_safety.tempfile, "mkstemp", denied)
        assert _predict(case_dir, locked / "result") == cli.EXIT_INPUT_ERROR
        assert "ask its owner" in capsys.readouterr().err


def test_parent_that_is_a_file_is_refused(case_dir, tmp_path, monkeypatch, capsys):
    _no_model(monkeypatch)
    (tmp_path / "notes.txt").write_text("x")
    assert _predict(case_dir, tmp_path / "notes.txt" / "result") == cli.EXIT_INPUT_ERROR
    err = capsys.readouterr().err
    assert "notes.txt is a file" in err and "Traceback" not in err


def test_too_little_free_space_is_refused_before_the_model(case_dir, tmp_path, monkeypatch,
                                                          capsys):
    _no_model(monkeypatch)
    needed = output_safety.estimate_output_bytes((20, 48, 40))
    with tmpfs(tmp_path / "small", "1M") as mount:
        if mount is None:
            mount = tmp_path / "small"
            usage = output_safety.shutil.disk_usage(tmp_path)
            monkeypatch.setattr(output_safety.shutil, "disk_usage",
                                lambda p: usage._replace(free=1_000_000))
        code = _predict(case_dir, mount / "result")
        left = list(mount.iterdir())
    err = capsys.readouterr().err
    assert code == cli.EXIT_INPUT_ERROR
    assert "not enough free disk space" in err and f"{needed / 1e6:.0f} MB" in err
    assert left == []


def test_output_size_estimate_covers_a_real_write(tmp_path):
    result = _result(seed=3, shape=(24, 40, 36))
    out = write_outputs(result, tmp_path / "out")
    written = sum(p.stat().st_size for p in out.iterdir())
    assert written <= output_safety.estimate_output_bytes(result.labels.shape)


# ---- 3. a full disk is never silent ----------------------------------------------------

def _truncating_write(monkeypatch):
    # What SimpleITK does on a full disk: prints "** ERROR: NWAD", writes a part, no raise.
    real = io.sitk.WriteImage

    def write(image, path, *args, **kwargs):
        real(image, path, *args, **kwargs)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])

    monkeypatch.setattr(io.sitk, "WriteImage", write)


def test_truncated_image_write_is_an_error_and_no_file_is_left(tmp_path, monkeypatch):
    _truncating_write(monkeypatch)
    result = _result()
    target = tmp_path / "seg.nii.gz"
    with pytest.raises(io.OutputError, match="seg.nii.gz: the image was not written whole"):
        io.write_image_atomic(io.to_image(result.labels, result.reference), target)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(io.OutputError, match="not written whole.*need about") as caught:
        write_outputs(result, tmp_path / "out", snapshot=False)
    assert str(tmp_path / "out" / "segmentation.nii.gz") in str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["image.nii.gz", "image.nii"])
def test_verify_written_image_sees_a_cut_file(tmp_path, name):
    result = _result()
    path = tmp_path / name
    io.write_image_verified(io.to_image(result.uncertainty, result.reference), path)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(io.OutputError, match="not written whole"):
        io.verify_written_image(path)


def test_full_disk_names_the_folder_and_the_space(tmp_path):
    result = _result(shape=(40, 64, 64))
    result.probabilities = np.random.default_rng(0).random(result.probabilities.shape,
                                                           dtype=np.float32)
    with tmpfs(tmp_path / "full", "256k") as mount:
        if mount is None:
            pytest.skip("mounting a tmpfs is not allowed here (the injected-fault test covers it)")
        with pytest.raises(io.OutputError) as caught:
            write_outputs(result, mount / "out", snapshot=False)  # preflight bypassed
        with pytest.raises(io.OutputError, match="not written whole"):
            io.write_image_atomic(io.to_image(result.probabilities, result.reference),
                                  mount / "p.nii.gz")
        left = list(mount.iterdir())
    message = str(caught.value)
    assert str(mount / "out") in message and "need about" in message and "MB free" in message
    assert left == []


# ---- 4. two runs into one folder ---------------------------------------------------------

def test_a_second_run_into_a_locked_folder_refuses(case_dir, tmp_path, capsys):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom uncertaintyseg.files.output_safety import "
         "output_lock\nwith output_lock(sys.argv[1]):\n    print('locked', flush=True)\n"
         "    time.sleep(60)\n", str(out)],
        stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert _predict(case_dir, out) == cli.EXIT_INPUT_ERROR
        assert "another uncertaintyseg run is writing" in capsys.readouterr().err
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_two_concurrent_runs_one_writes_the_other_refuses(case_dir, tmp_path):
    out = tmp_path / "out"
    # Each run writes slowly (2 s in the writer, after its folder check): without a lock
    # both pass the check and the later rename silently replaces the earlier result.
    slow_writer = ("import sys, time\nfrom uncertaintyseg import cli, contract\n"
                   "write = contract._write_folder\n"
                   "def slow(*args, **kwargs):\n    time.sleep(2)\n"
                   "    return write(*args, **kwargs)\n"
                   "contract._write_folder = slow\nsys.exit(cli.main(sys.argv[1:]))\n")
    command = [sys.executable, "-c", slow_writer, "predict", "--case", str(case_dir),
               "--out", str(out), "--progress", "none", *SMALL]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=_env()) for _ in range(2)]
    outcomes = sorted((run.wait(timeout=600), run.stderr.read()) for run in runs)
    for run in runs:
        run.stdout.close()
        run.stderr.close()
    assert [code for code, _ in outcomes] == [0, cli.EXIT_INPUT_ERROR], outcomes
    assert ("another uncertaintyseg run" in outcomes[1][1]
            or "exists and is not empty" in outcomes[1][1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ---- 5. SIGTERM like Ctrl-C --------------------------------------------------------------

@pytest.mark.slow
def test_sigterm_exits_130_and_keeps_the_earlier_result(case_dir, tmp_path):
    out = tmp_path / "out"
    assert _predict(case_dir, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    command = [sys.executable, "-m", "uncertaintyseg", "predict", "--case", str(case_dir),
               "--out", str(out), "--overwrite", "--progress", "json", "--model", "analytic",
               "--projections", "200", "--batch-size", "2", "--no-snapshot"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=_env())
    for line in run.stdout:  # wait until the work is under way
        if json.loads(line)["stage"] == "uncertainty":
            break
    os.kill(run.pid, signal.SIGTERM)
    rest, err = run.communicate(timeout=120)
    assert run.returncode == cli.EXIT_CANCELLED, err
    assert "cancelled" in err and '"stage": "finished"' not in rest
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ---- beyond the issue: the other commands' outputs -----------------------------------

def test_scene_and_metrics_destinations_checked_before_the_work(case_dir, tmp_path, capsys):
    from uncertaintyseg.commands.scene_cli import main as scene

    (tmp_path / "file.txt").write_text("x")
    assert scene(["--results", str(tmp_path), "--out", str(tmp_path / "file.txt" / "a.mrb")]) == 2
    assert "file.txt is a file" in capsys.readouterr().err
    seg = next(case_dir.glob("*_seg.nii.gz"))
    with tmpfs(tmp_path / "ro", "1M", readonly=True) as mount:
        if mount is not None:
            code = cli.main(["metrics", "--ref", str(seg), "--pred", str(seg),
                             "--json", str(mount / "m.json")])
            captured = capsys.readouterr()
            assert code == cli.EXIT_INPUT_ERROR and "read-only file system" in captured.err
            assert "dice" not in captured.out  # refused before the metrics were computed
    tables = tmp_path / "new" / "folder"
    assert cli.main(["metrics", "--ref", str(seg), "--pred", str(seg), "--json",
                     str(tables / "m.json"), "--csv", str(tables / "m.csv")]) == 0
    assert json.loads((tables / "m.json").read_text(encoding="utf-8"))["WT"]["dice"] == 1.0
    assert sorted(p.name for p in tables.iterdir()) == ["m.csv", "m.json"]


def test_demo_and_phantom_say_what_is_wrong_with_their_out(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    for command in ("demo", "phantom"):
        assert cli.main([command, "--out", str(tmp_path / "file.txt" / "d")]) == 2
        err = capsys.readouterr().err
        assert "file.txt is a file" in err and "Error:" not in err

