"""Suite-wide settings: few threads (2-core CI), and a run that passes nothing fails."""

import os
import signal
import time
from pathlib import Path

import pytest

os.environ.setdefault("nnUNet_n_proc_DA", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_sessionfinish(session, exitstatus):
    # A green run must have exercised something: "all skipped" hides a broken install.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or exitstatus != 0:
        return
    if not reporter.stats.get("passed"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True, scope="session")
def _openvino_cache(tmp_path_factory):
    # The OpenVINO exports of a run go to the user's cache folder; the tests' go to
    # their own (inherited by the CLI subprocesses), so a test never reads a stale one.
    os.environ["UNCERTAINTYSEG_OPENVINO_CACHE"] = str(tmp_path_factory.mktemp("openvino"))
    # The same for expected-time's calibration of this computer (run.expected_time).
    os.environ["UNCERTAINTYSEG_CALIBRATION_CACHE"] = str(
        tmp_path_factory.mktemp("calibration") / "calibration.json")
    yield


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(1)
    yield


# How long a worker-loss test waits for its task to reach the point where it is killed.
KILL_TIMEOUT_S = 120


def _kill_when_hanging(marker: Path, killed: list) -> None:
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text(encoding="utf-8"):
            pid = int(marker.read_text(encoding="utf-8"))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.1)


@pytest.fixture(scope="session")
def kill_when_hanging():
    """`kill(marker, killed)`, a thread target: SIGKILL the worker whose pid a hanging
    task wrote into `marker` (a lost worker, as a node failure makes one) and append
    the pid to `killed`; gives up after KILL_TIMEOUT_S."""
    return _kill_when_hanging


@pytest.fixture(scope="module")
def cluster():
    """A real LocalCluster of 2 worker processes whose scheduler retries a lost worker's
    case twice (set before it starts). Needs the `cohort` extra."""
    # distributed imported first: it adds its defaults to dask's config on import, and a
    # `config.set` made before that would take the whole "distributed" section away when
    # it ends (a later LocalCluster then fails with KeyError: 'distributed').
    import dask
    import distributed  # noqa: F401

    from uncertaintyseg.commands import cohort_cli

    with dask.config.set({"distributed.scheduler.allowed-failures": 2}):
        with cohort_cli.local_cluster(2, gpus=0) as local:
            yield local
