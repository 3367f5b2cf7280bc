"""Which trained checkpoints the derived steps of the chain were computed from.

The chain skips a step whose results exist. `uncertainty` and `cubes` come from the 2D
network, `fusion` and `postprocess` from both networks; when training is resumed with
more iterations, `best.pth` changes and those results are stale. Each derived step
records digests of the checkpoints it used (`train/stamps.json`); on the next run a step
whose checkpoints differ has its results removed and is computed again. Results with no
record (a work folder from before stamps.json) cannot be trusted either: they are
recomputed once, too.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..files.output_safety import write_json_atomic

DEPENDS_ON = {"uncertainty": ("2d",), "cubes": ("2d",), "fusion": ("2d", "3d"),
              "postprocess": ("2d", "3d")}
RESULTS = {"uncertainty": ("uncertainty",), "cubes": ("cubes_train.npz", "cubes_val.npz"),
           "fusion": ("fusion.json",), "postprocess": ("postprocess.json",)}
STAMPS_FILE = "stamps.json"


def checkpoint_digest(train_dir: Path, sub: str) -> str:
    """First 16 hex digits of the SHA-256 of train_dir/sub/best.pth."""
    return hashlib.sha256((Path(train_dir) / sub / "best.pth").read_bytes()).hexdigest()[:16]


class Stamps:
    """The checkpoint digests per derived step, kept in train_dir/stamps.json."""

    def __init__(self, train_dir: Path):
        self.train_dir = Path(train_dir)
        path = self.train_dir / STAMPS_FILE
        self.recorded: dict = json.loads(path.read_text()) if path.is_file() else {}

    def current(self, step: str) -> dict[str, str]:
        return {sub: checkpoint_digest(self.train_dir, sub) for sub in DEPENDS_ON[step]}

    def discard_if_stale(self, step: str) -> bool:
        """Remove the step's results unless they are recorded as coming from the current
        checkpoints; True if anything was removed."""
        if step not in DEPENDS_ON or self.recorded.get(step) == self.current(step):
            return False
        removed = False
        for name in RESULTS[step]:
            path = self.train_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            else:
                continue
            removed = True
        return removed

    def record(self, step: str) -> None:
        if step not in DEPENDS_ON:
            return
        self.recorded[step] = self.current(step)
        write_json_atomic(self.train_dir / STAMPS_FILE, self.recorded)
