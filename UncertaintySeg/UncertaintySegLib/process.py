"""The pipeline as a background process: command line, JSON-lines progress, cancel.

Pure Python (subprocess + a reader thread): the Widget polls `PipelineProcess.poll()`
from a Qt timer, tests call it in a loop, nothing here needs Qt or Slicer.

The CLI (`python -m uncertaintyseg predict ... --progress json`) prints one JSON object
per line on stdout: {"stage", "done", "total", "message"}; the last line is
{"stage": "finished", "message": "<output folder>"} or {"stage": "error", "message":
"<readable error>"} before a non-zero exit. Anything else it prints is kept as the log.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from uncertaintyseg_shared.errors import FORCE_HINT
from uncertaintyseg_shared.options import to_argv
# One list of stages: the command line emits them, the overall bar weighs them (each
# stage's share of a typical CPU run). STAGE_LABELS is re-exported for the module file.
from uncertaintyseg_shared.stages import FINISHED, STAGE_LABELS, STAGE_WEIGHTS  # noqa: F401

# What the panel offers instead of the command line's --force (the .ui's forceCheckBox).
PANEL_FORCE_HINT = "Tick 'Run even if the inputs look unprepared' (Advanced) to run anyway."


@dataclass(frozen=True)
class ProgressEvent:
    """One progress line of the pipeline."""

    stage: str
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        """Completion of this stage in [0, 1]."""
        return min(max(self.done / self.total, 0.0), 1.0) if self.total > 0 else 0.0


def parse_progress_line(line: str) -> ProgressEvent | None:
    """A ProgressEvent from one stdout line, or None when the line is not one."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("stage"), str):
        return None
    try:
        return ProgressEvent(data["stage"], int(data.get("done", 0)), int(data.get("total", 0)),
                             str(data.get("message", "")))
    except (TypeError, ValueError):
        return None


def overall_fraction(event: ProgressEvent) -> float:
    """Progress of the whole run in [0, 1]: stages before this one count as done."""
    if event.stage == FINISHED:
        return 1.0
    order = list(STAGE_WEIGHTS)
    if event.stage not in STAGE_WEIGHTS:
        return 0.0
    before = sum(STAGE_WEIGHTS[s] for s in order[:order.index(event.stage)])
    return min(before + STAGE_WEIGHTS[event.stage] * event.fraction, 1.0)


def predict_command(python: str, case_dir, out_dir, values=None, force: bool = False) -> list[str]:
    """The argument list of `python -m uncertaintyseg predict` for one case folder.

    `values` are run options by uncertaintyseg.options name; only those set and not at
    their default are passed (options.to_argv), so the model's own values apply.
    `force` adds --force (run a case that the input checks refuse; not a run option of
    the schema because it changes no result, only whether the run starts).
    """
    return [python, "-m", "uncertaintyseg", "predict", "--case", str(case_dir),
            "--out", str(out_dir), "--progress", "json", *to_argv(dict(values or {})),
            *(["--force"] if force else [])]


def expected_time_command(python: str, values=None) -> list[str]:
    """The argument list of `python -m uncertaintyseg expected-time --json` with a run's
    option values (as predict_command passes them): one JSON line, the estimate."""
    return [python, "-m", "uncertaintyseg", "expected-time", "--json",
            *to_argv(dict(values or {}))]


class PipelineProcess:
    """Runs a command in the background and collects its progress and log.

    `start()` launches it in its own process group (POSIX) or process group with a
    console of its own (Windows), so that `cancel()` ends the whole tree, including
    workers the pipeline spawned. `poll()` returns the progress events read since the
    last call without blocking.
    """

    def __init__(self, command: list[str], env: dict | None = None, cwd=None):
        self.command = [str(c) for c in command]
        self.env = env
        self.cwd = cwd
        self.log: list[str] = []
        self.events: list[ProgressEvent] = []
        self.cancelled = False
        self._process: subprocess.Popen | None = None
        self._queue: queue.Queue = queue.Queue()
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("this process was started already; create a new PipelineProcess")
        env = dict(os.environ if self.env is None else self.env)
        # Line-buffered child output, so progress arrives as it happens.
        env["PYTHONUNBUFFERED"] = "1"
        # A piped python-real on Windows writes in the ANSI code page otherwise; we read
        # UTF-8 (review #24).
        env["PYTHONIOENCODING"] = "utf-8"
        self._process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.cwd, env=env, text=True, encoding="utf-8", errors="replace", bufsize=1,
            **_group_options())
        self._reader = threading.Thread(target=self._read, name="uncertaintyseg-reader",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._process.stdout:
            self._queue.put(line.rstrip("\r\n"))
        self._process.stdout.close()
        self._queue.put(None)

    def poll(self) -> list[ProgressEvent]:
        """Progress events that arrived since the last call (other lines go to `log`)."""
        new = []
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                continue
            event = parse_progress_line(line)
            if event is None:
                self.log.append(line)
            else:
                new.append(event)
        self.events.extend(new)
        return new

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def finished(self) -> bool:
        """The process ended and every line it printed has been read (then poll once more)."""
        if self._process is None or self._process.poll() is None:
            return False
        return self._reader is None or not self._reader.is_alive()

    def wait(self, timeout: float | None = None) -> int:
        """Block until the process ends and its output is read; returns the exit code."""
        code = self._process.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        self.poll()
        return code

    def cancel(self, grace_s: float = 3.0) -> None:
        """End the process and all its children: polite signal first, then kill."""
        self.cancelled = True
        if self._process is None:
            return
        # Even when the leader has exited, workers it spawned may still run: kill the tree.
        kill_tree(self._process, grace_s)

    def output_folder(self) -> Path | None:
        """The folder named by the final "finished" line, if the run succeeded."""
        if self.returncode != 0:
            return None
        for event in reversed(self.events):
            if event.stage == FINISHED:
                return Path(event.message)
        return None

    def error_message(self) -> str | None:
        """A readable message when the run failed (None while running or on success)."""
        code = self.returncode
        if code is None or (code == 0 and not self.cancelled):
            return None
        if self.cancelled:
            return "Cancelled by the user; the scene was left as it was."
        for event in reversed(self.events):
            if event.stage == "error" and event.message:
                return event.message.replace(FORCE_HINT, PANEL_FORCE_HINT)
        tail = "\n".join(self.log[-15:]) or "(no output)"
        return f"The pipeline stopped with exit code {code}. Last lines of its log:\n{tail}"


def _group_options() -> dict:
    """Popen options that give the child a process group of its own (so cancel reaches
    its workers) and, on Windows, no console window: PythonSlicer.exe is always the
    console launcher (Slicer's CMake/SlicerBlockInstallPython.cmake) and would open one,
    whose closing kills the run; slicer.util.launchConsoleProcess hides it too (#10)."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW}
    return {"start_new_session": True}


def kill_tree(process: subprocess.Popen, grace_s: float = 3.0) -> None:
    """Terminate `process` and every process in its tree.

    POSIX: the process leads its own session (start_new_session), so signalling the
    process group reaches grandchildren too. Windows: taskkill /T walks the tree.
    """
    if os.name == "nt":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True,
                       check=False, creationflags=subprocess.CREATE_NO_WINDOW)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:  # taskkill is asynchronous (review U4)
            pass
        return
    # With start_new_session the group id is the leader's pid; it stays valid after the
    # leader exits, as long as any member of the group is alive.
    group = process.pid
    # SIGINT first: the CLI turns it into KeyboardInterrupt and removes its partial output.
    _signal_group(group, signal.SIGINT)
    # PythonSlicer is a CTK launcher that dies at once on SIGINT while python-real (its
    # QProcess child, same group) still cleans up: wait for the whole group, not the
    # leader, before SIGKILL (review #11).
    deadline = time.monotonic() + grace_s
    while _group_alive(group) and time.monotonic() < deadline:
        _reap(process)
        time.sleep(0.05)
    # Children may outlive the leader (or ignore SIGINT): SIGKILL the whole group.
    _signal_group(group, signal.SIGKILL)
    process.wait(timeout=grace_s)


def _reap(process: subprocess.Popen) -> None:
    # A dead leader stays a zombie (and keeps the group alive) until it is waited for.
    process.poll()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass


def default_python() -> str:
    """The interpreter to run the pipeline with: Slicer's own Python by default.

    Inside Slicer that is PythonSlicer (beside the Slicer executable, on its PATH), which
    runs scripts with Slicer's packages (torch from the PyTorch extension) and without
    the GUI; elsewhere the current interpreter.
    """
    import shutil

    return shutil.which("PythonSlicer") or sys.executable
