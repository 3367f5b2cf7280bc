"""One run of the pipeline on volumes of the scene: inputs out, process, results in.

Qt-free: the module's Logic owns a CaseRunner and the Widget polls it from a timer.
The scene is touched only after a successful run (ResultLoader); a cancelled or failed
run leaves it exactly as it was and removes its working folder.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from uncertaintyseg import BRATS_SUFFIXES

from .inputs import VolumeSelection, write_inputs
from .process import PipelineProcess, ProgressEvent, default_python, predict_command
from .scene import LoadedRun, ResultLoader

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # holds uncertaintyseg/ and UncertaintySegLib/


@dataclass
class RunOptions:
    """Settings of one run, as the CLI takes them (None: the pipeline's default)."""

    model: str | None = None
    device: str = "auto"
    projections: str = "auto"
    kernel_mm: tuple[float, float, float] | None = None
    max_overlap: float | None = None
    min_score_fraction: float | None = None
    max_boxes: int | None = None
    region: str = "WT"          # uncertainty shown as the heatmap
    python: str | None = None   # interpreter; None: Slicer's own Python

    @classmethod
    def from_parameters(cls, parameters) -> "RunOptions":
        """From the module's parameter node (a model folder wins over a bundled name;
        "default" and empty strings mean the pipeline's own default)."""
        model = parameters.modelFolder or (None if parameters.modelName == "default"
                                           else parameters.modelName)
        return cls(model=model, device=parameters.device, projections=parameters.projections,
                   kernel_mm=(parameters.kernelEt, parameters.kernelTc, parameters.kernelWt),
                   max_overlap=parameters.maxOverlap,
                   min_score_fraction=parameters.minScoreFraction,
                   max_boxes=parameters.maxBoxes, region=parameters.region,
                   python=parameters.python or None)


# Every BraTS suffix, and "t2-flair" as some exports name FLAIR.
_SUFFIX_PATTERN = "|".join(re.escape(s) for s in sorted(
    {s for table in BRATS_SUFFIXES.values() for s in table.values()} | {"t2-flair"}))


def case_id_from(name: str) -> str:
    """A file-system-safe case identifier from a volume name (BraTS suffix removed)."""
    stem = re.sub(rf"[-_ ]?({_SUFFIX_PATTERN})$", "", name.strip(), flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-") or "case"


class CaseRunner:
    """Runs `python -m uncertaintyseg predict` on a VolumeSelection and loads the result.

    `logics` is a context.SceneLogics; `work_root` is where run folders go (kept after
    success, since the heatmap region can be switched later from the output files).
    """

    def __init__(self, logics, work_root=None, package_dir: Path = PACKAGE_DIR):
        self.logics = logics
        self.work_root = Path(work_root or Path(tempfile.gettempdir()) / "UncertaintySeg")
        self.package_dir = Path(package_dir)
        self.process: PipelineProcess | None = None
        self.run_dir: Path | None = None
        self.selection: VolumeSelection | None = None
        self.options = RunOptions()

    def start(self, selection: VolumeSelection, options: RunOptions | None = None) -> PipelineProcess:
        """Check the selection, write the inputs and start the process."""
        if self.process is not None and self.process.running():
            raise RuntimeError("a run is in progress: cancel it or wait for it to finish")
        selection.validate()
        self.selection, self.options = selection, options or RunOptions()
        case_id = case_id_from(selection.nodes["flair"].GetName())
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"{case_id}-{time.strftime('%Y%m%d-%H%M%S')}-",
                                             dir=self.work_root))
        try:
            write_inputs(selection, self.run_dir / "input" / case_id, case_id)
        except Exception:
            self._remove_run_dir()
            raise
        self.process = PipelineProcess(self.command(case_id), env=self.environment())
        self.process.start()
        return self.process

    def command(self, case_id: str) -> list[str]:
        o = self.options
        return predict_command(o.python or default_python(), self.run_dir / "input" / case_id,
                               self.output_dir, model=o.model, device=o.device,
                               projections=o.projections, kernel_mm=o.kernel_mm,
                               max_overlap=o.max_overlap, min_score_fraction=o.min_score_fraction,
                               max_boxes=o.max_boxes)

    @property
    def output_dir(self) -> Path:
        return self.run_dir / "output"

    def environment(self) -> dict:
        """The child's environment: the module folder first on PYTHONPATH (so that
        `-m uncertaintyseg` finds the bundled pipeline) and few data-loader workers."""
        env = dict(os.environ)
        paths = [str(self.package_dir)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env.setdefault("nnUNet_n_proc_DA", "2")
        return env

    def poll(self) -> list[ProgressEvent]:
        return self.process.poll() if self.process else []

    def running(self) -> bool:
        return self.process is not None and not self.process.finished()

    def cancel(self) -> None:
        """Kill the process tree and remove the run folder; the scene is not touched."""
        if self.process is not None:
            self.process.cancel()
            self.process.wait(timeout=10)
        self._remove_run_dir()

    def error_message(self) -> str | None:
        return self.process.error_message() if self.process else None

    def load_result(self, loader: ResultLoader | None = None) -> LoadedRun:
        """After a successful run: the output folder into the scene (removes the inputs)."""
        if self.process is None or not self.process.finished():
            raise RuntimeError("the run has not finished yet")
        self.process.poll()
        message = self.error_message()
        if message:
            self._remove_run_dir()
            raise RuntimeError(message)
        loader = loader or ResultLoader(self.logics)
        folder = self.process.output_folder() or self.output_dir
        run = loader.load(folder, reference_volume=self.selection.nodes["flair"],
                          region=self.options.region)
        shutil.rmtree(self.run_dir / "input", ignore_errors=True)
        return run

    def _remove_run_dir(self) -> None:
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
