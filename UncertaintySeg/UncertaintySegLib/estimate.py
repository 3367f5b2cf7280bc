"""The expected time of a run, shown before Apply (issue 19 item 6).

Qt-free, like runner.py: runs `python -m uncertaintyseg expected-time --json` with the
panel's run options, in the background, with the same interpreter, environment and
working folder as a run (CaseRunner), and reads its one JSON line. The pipeline does the
work (run/expected_time.py): the model's measured projection curve scaled by a short
calibration of the 2D network on this computer, cached per computer after the first.
"""

from __future__ import annotations

import json

from .process import PipelineProcess, default_python, expected_time_command


def read_estimate(lines: list[str]) -> dict | None:
    """The estimate from the command's output lines (the last JSON object with a
    "message"), None when there is none."""
    for line in reversed(lines):
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return data
    return None


class TimeEstimate:
    """One estimate at a time for the panel: `start(options)`, then `poll()` from a
    timer until it returns the sentence to show. `runner` is the Logic's CaseRunner
    (its environment and module folder); `process_factory` as CaseRunner's."""

    def __init__(self, runner, process_factory=PipelineProcess):
        self.runner = runner
        self.process_factory = process_factory
        self.process = None

    def start(self, options) -> None:
        """Estimate a run with `options` (a RunOptions); an estimate still running is
        cancelled first (the options changed)."""
        self.cancel()
        command = expected_time_command(options.python or default_python(), options.values)
        self.process = self.process_factory(command, env=self.runner.environment(options),
                                            cwd=str(self.runner.package_dir))
        self.process.start()

    def running(self) -> bool:
        return self.process is not None and not self.process.finished()

    def poll(self) -> str | None:
        """None while it runs; then the sentence: the estimate, or why there is none."""
        if self.process is None or self.running():
            return None
        self.process.poll()
        process, self.process = self.process, None
        estimate = read_estimate(process.log)
        if process.returncode == 0 and estimate is not None:
            return estimate["message"]
        last = next((line for line in reversed(process.log) if line.strip()), "no output")
        return f"No time estimate: {last}"

    def cancel(self) -> None:
        if self.process is not None and not self.process.finished():
            self.process.cancel()
        self.process = None
