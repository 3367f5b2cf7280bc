"""Progress reporting for the command line: tqdm bars, JSON lines, or silence.

Every long stage calls `progress(stage, done, total, message)`. The JSON-lines form
(one object per line on stdout, flushed) is what the Slicer module reads; in that mode
everything meant for a person goes to stderr so stdout stays machine-readable. The
stages `predict` reports, and their order, are `uncertaintyseg_shared.stages`.
"""

from __future__ import annotations

import json
import sys

from tqdm import tqdm

from uncertaintyseg_shared.stages import ERROR, FINISHED


class ProgressReporter:
    """Callable progress sink; `mode` is "bar", "json" or "none"."""

    def __init__(self, mode: str = "bar", stream=None):
        if mode not in ("bar", "json", "none"):
            raise ValueError(f"unknown progress mode {mode!r}: use bar, json or none")
        self.mode = mode
        self.stream = stream or sys.stdout
        self._bars: dict[str, tqdm] = {}

    def __call__(self, stage: str, done: int, total: int, message: str = "") -> None:
        if self.mode == "json":
            self._emit(stage, done, total, message)
        elif self.mode == "bar":
            self._bar(stage, done, total, message)

    def _emit(self, stage: str, done: int, total: int, message: str) -> None:
        line = {"stage": stage, "done": int(done), "total": int(total), "message": str(message)}
        self.stream.write(json.dumps(line) + "\n")
        self.stream.flush()

    def _bar(self, stage: str, done: int, total: int, message: str) -> None:
        bar = self._bars.get(stage)
        if bar is None:
            bar = tqdm(total=total, desc=stage, unit="step", file=sys.stderr, leave=True,
                       dynamic_ncols=True)
            self._bars[stage] = bar
        bar.total = total
        bar.n = done
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()
        if done >= total:
            bar.close()

    def finished(self, out_dir) -> None:
        """The last line of a successful run names the output folder."""
        self.close()
        if self.mode == "json":
            self._emit(FINISHED, 1, 1, str(out_dir))

    def error(self, message: str) -> None:
        """A readable error line before a non-zero exit (json mode)."""
        self.close()
        if self.mode == "json":
            self._emit(ERROR, 0, 1, message)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def human_stream(mode: str):
    """Where messages for a person go: stderr when stdout carries JSON lines."""
    return sys.stderr if mode == "json" else sys.stdout
