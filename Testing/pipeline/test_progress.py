"""Progress lines are what the Slicer module parses: one JSON object per line."""

import io
import json

import pytest

from uncertaintyseg.runtime.progress import ProgressReporter


def test_json_lines_and_final_line():
    stream = io.StringIO()
    reporter = ProgressReporter("json", stream=stream)
    reporter("uncertainty", 1, 3, "slice 1")
    reporter("uncertainty", 3, 3, "")
    reporter.finished("/tmp/out")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0] == {"stage": "uncertainty", "done": 1, "total": 3, "message": "slice 1"}
    assert lines[-1] == {"stage": "finished", "done": 1, "total": 1, "message": "/tmp/out"}


def test_error_line():
    stream = io.StringIO()
    ProgressReporter("json", stream=stream).error("error: bad file")
    assert json.loads(stream.getvalue())["stage"] == "error"


def test_bar_mode_keeps_stdout_clean(capsys):
    reporter = ProgressReporter("bar")
    reporter("kernels", 1, 2, "x")
    reporter("kernels", 2, 2, "y")
    captured = capsys.readouterr()
    assert captured.out == "" and "kernels" in captured.err


def test_unknown_mode():
    with pytest.raises(ValueError):
        ProgressReporter("fancy")
