"""Suite-wide settings: few threads (2-core CI), and a run that passes nothing fails."""

import os

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
def _torch_threads():
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(1)
    yield
