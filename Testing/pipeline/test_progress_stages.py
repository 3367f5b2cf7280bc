"""From the producer to the consumer of progress: the real command line's JSON lines read
by the Slicer Lib's parser and weighed by its overall bar (UncertaintySegLib.process),
against the one list of stages both use (uncertaintyseg_shared.stages)."""

import subprocess
import sys

import pytest

from test_cli import SMALL
from UncertaintySegLib.process import overall_fraction, parse_progress_line
from uncertaintyseg.files.phantom import write_phantom_case
from uncertaintyseg_shared.stages import FINISHED, PREDICT_STAGES, STAGE_LABELS

ORDER = [stage.name for stage in PREDICT_STAGES]


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    return write_phantom_case(tmp_path_factory.mktemp("case"), seed=5, shape=(20, 48, 40))


def _predict_events(case_dir, out, method: str) -> list:
    proc = subprocess.run([sys.executable, "-m", "uncertaintyseg", "predict", "--case",
                           str(case_dir), "--out", str(out), "--progress", "json",
                           "--method", method, *SMALL],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    events = [parse_progress_line(line) for line in proc.stdout.splitlines()]
    assert None not in events, "a stdout line the panel cannot parse:\n" + proc.stdout
    return events


@pytest.mark.parametrize("method,expected", [("hybrid", ORDER),
                                             ("projection-2d", ["uncertainty", "kernels",
                                                                "write"])])
def test_every_stage_the_cli_emits_is_weighed_by_the_panel_in_order(case_dir, tmp_path,
                                                                    method, expected):
    events = _predict_events(case_dir, tmp_path / "out", method)
    stages = [event.stage for event in events]
    assert stages[-1] == FINISHED
    emitted = list(dict.fromkeys(s for s in stages if s != FINISHED))
    assert set(emitted) <= set(ORDER), f"stages the panel does not know: {emitted}"
    assert all(stage in STAGE_LABELS for stage in stages)
    # In the declared order, each stage one block (the bar never goes back).
    assert emitted == expected
    blocks = [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s]
    assert blocks == emitted + [FINISHED]
    fractions = [overall_fraction(event) for event in events]
    assert fractions == sorted(fractions), fractions
    assert fractions[-2] == pytest.approx(1.0) and fractions[-1] == 1.0
