"""A stand-in *process* for testing the runner (not the pipeline): prints progress lines
in the CLI's JSON-lines format and behaves as the command line asks.

    fake_pipeline.py ok OUT        predict's stages in order (uncertaintyseg_shared.stages,
                                   the CLI's own list), then "finished" naming OUT; exit 0
    fake_pipeline.py error         a progress line, a log line, an "error" line; exit 2
    fake_pipeline.py crash         log lines, then exit 3 without an "error" line
    fake_pipeline.py unprepared    the input checks' refusal as its "error" line; exit 2
    fake_pipeline.py hang PIDFILE  spawns a child (a grandchild of the runner) that
                                   ignores SIGINT and writes its pid to PIDFILE; both sleep
"""

import json
import subprocess
import sys
import time
from pathlib import Path

# Run as a script, its own folder is first on sys.path; the shared package is where the
# real CLI finds it, in the module folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "UncertaintySeg"))

from uncertaintyseg_shared.errors import FORCE_HINT  # noqa: E402
from uncertaintyseg_shared.stages import ERROR, FINISHED, PREDICT_STAGES  # noqa: E402

FIRST = PREDICT_STAGES[0].name


def emit(stage, done, total, message=""):
    print(json.dumps({"stage": stage, "done": done, "total": total, "message": message}), flush=True)


def main(mode: str, arg: str | None) -> int:
    if mode == "ok":
        print("a line for the log, not JSON", flush=True)
        for stage in (s.name for s in PREDICT_STAGES):
            emit(stage, 0, 2)
            emit(stage, 2, 2, f"{stage} done")
        emit(FINISHED, 1, 1, arg)
        return 0
    if mode == "error":
        emit(FIRST, 1, 1)
        print("Traceback (most recent call last): something for the log", flush=True)
        emit(ERROR, 0, 1, "error: FLAIR file is empty: case_flair.nii.gz")
        return 2
    if mode == "unprepared":
        emit(ERROR, 0, 1, "error: the non-zero region is 3900 ml: skull-strip the case. "
             + FORCE_HINT)
        return 2
    if mode == "crash":
        for i in range(20):
            print(f"log line {i}", flush=True)
        return 3
    if mode == "hang":
        # The grandchild ignores SIGINT, so only the runner's SIGKILL can end it.
        child = subprocess.Popen([sys.executable, "-c",
                                  "import os, signal, sys, time;"
                                  " signal.signal(signal.SIGINT, signal.SIG_IGN);"
                                  " open(sys.argv[1], 'w').write(str(os.getpid()));"
                                  " time.sleep(120)", arg])
        emit(FIRST, 1, 10, f"child {child.pid}")
        time.sleep(120)
        return 0
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
