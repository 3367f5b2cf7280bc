"""One run of the pipeline on volumes of the scene: inputs out, process, results in.

Qt-free: the module's Logic owns a CaseRunner and the Widget polls it from a timer.
The scene is touched only after a successful run (ResultLoader); a cancelled or failed
run leaves it exactly as it was and removes its working folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from uncertaintyseg_shared.brats import BRATS_SUFFIXES

from .inputs import VolumeSelection, write_inputs
from .process import PipelineProcess, ProgressEvent, default_python, predict_command
from .scene import LoadedRun, ResultLoader

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # holds uncertaintyseg/ and UncertaintySegLib/


@dataclass
class RunOptions:
    """Settings of one run: `values` by uncertaintyseg.options name (None or the
    option's default: left to the pipeline and the model), the heatmap region, the
    interpreter (None: Slicer's own Python) and whether to run past the input checks."""

    values: dict = field(default_factory=dict)
    region: str = "WT"
    python: str | None = None
    force: bool = False  # predict --force: run a case the input checks refuse

    @classmethod
    def from_parameters(cls, parameters) -> "RunOptions":
        """From the module's parameter node: a model folder wins over a bundled name,
        "default" means the pipeline's default model, and the cube sides are sent only
        when the user unticked "use the model's box sides"."""
        model = parameters.modelFolder or (None if parameters.modelName == "default"
                                           else parameters.modelName)
        kernel = None if parameters.useModelKernels else (
            parameters.kernelEt, parameters.kernelTc, parameters.kernelWt)
        values = {"model": model, "device": parameters.device,
                  "projections": parameters.projections, "method": parameters.method,
                  "outputs": parameters.outputs,
                  "kernel_mm": kernel,
                  "max_overlap": parameters.maxOverlap,
                  "min_score_fraction": parameters.minScoreFraction,
                  "max_boxes": parameters.maxBoxes}
        return cls(values, region=parameters.region, python=parameters.python or None,
                   force=bool(parameters.force))


# Every BraTS suffix, and "t2-flair" as some exports name FLAIR.
_SUFFIX_PATTERN = "|".join(re.escape(s) for s in sorted(
    {s for table in BRATS_SUFFIXES.values() for s in table.values()} | {"t2-flair"}))


def case_id_from(name: str) -> str:
    """A file-system-safe case identifier from a volume name (BraTS suffix removed)."""
    stem = re.sub(rf"[-_ ]?({_SUFFIX_PATTERN})$", "", name.strip(), flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-") or "case"


def different_cases(names: dict) -> str:
    """A warning when the four volumes' names ({modality: name}) name more than one case,
    else "" (review m4). Every BraTS case has the same 240x240x155 1 mm grid, so the grid
    check cannot see a FLAIR of one case beside the T1 of another. Only names that end in
    a BraTS modality suffix carry a case id; others ("FLAIR", "brain_t1_reg") are not
    compared."""
    stems = {}
    for modality, name in names.items():
        stem = re.sub(rf"[-_ ]?({_SUFFIX_PATTERN})$", "", name.strip(), flags=re.IGNORECASE)
        if stem and stem != name.strip():  # a case id before a BraTS suffix
            stems[modality] = case_id_from(name)
    if len(set(stems.values())) <= 1:
        return ""
    listed = ", ".join(f"{modality} {stem}" for modality, stem in stems.items())
    return (f"The volumes' names point to different cases ({listed}). The pipeline would "
            "segment them as one case; pick the four volumes of one case.")


class CaseRunner:
    """Runs `python -m uncertaintyseg predict` on a VolumeSelection and loads the result.

    `logics` is a context.SceneLogics; `work_root` is where run folders go (kept after
    success, since the heatmap region can be switched later from the output files).
    The process is injected, as SlicerNNUNet's `SegmentationLogic(process=...)` does:
    `process_factory(command, env=..., cwd=...)` returns an object with
    PipelineProcess's methods (tests give one that runs a fake pipeline).
    `startup_environment()` is the environment for an interpreter the user chose: inside
    Slicer the module passes `slicer.util.startupEnvironment` (the environment before
    the launcher set Slicer's PYTHONHOME/PYTHONPATH, review #5); by default os.environ.
    """

    def __init__(self, logics, work_root=None, package_dir: Path = PACKAGE_DIR,
                 process_factory=PipelineProcess, startup_environment=None):
        self.logics = logics
        self.work_root = Path(work_root or Path(tempfile.gettempdir()) / "UncertaintySeg")
        self.package_dir = Path(package_dir)
        self.process_factory = process_factory
        self.startup_environment = startup_environment or (lambda: dict(os.environ))
        self.process: PipelineProcess | None = None
        self.run_dir: Path | None = None
        self.selection: VolumeSelection | None = None
        self.options = RunOptions()

    def start(self, selection: VolumeSelection, options: RunOptions | None = None) -> PipelineProcess:
        """Check the selection, write the inputs and start the process."""
        if self.running():
            raise RuntimeError("a run is in progress: cancel it or wait for it to finish")
        selection.validate()
        self.selection, self.options = selection, options or RunOptions()
        case_id = case_id_from(selection.nodes["flair"].GetName())
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"{case_id}-{time.strftime('%Y%m%d-%H%M%S')}-",
                                             dir=self.work_root))
        try:
            write_inputs(selection, self.run_dir / "input" / case_id, case_id)
            # cwd = the module folder: `python -m` puts the cwd first on sys.path, so the
            # pipeline that ships with the module wins over a pip-installed copy, which
            # the launcher's PYTHONPATH would otherwise put first (review #17).
            self.process = self.process_factory(self.command(case_id), env=self.environment(),
                                                cwd=str(self.package_dir))
            self.process.start()
        except Exception:
            self.process = None
            self._remove_run_dir()
            raise
        return self.process

    def command(self, case_id: str) -> list[str]:
        o = self.options
        return predict_command(o.python or default_python(), self.run_dir / "input" / case_id,
                               self.output_dir, o.values, force=o.force)

    @property
    def output_dir(self) -> Path:
        return self.run_dir / "output"

    def environment(self, options: RunOptions | None = None) -> dict:
        """The child's environment: the module folder first on PYTHONPATH (so that
        `-m uncertaintyseg` finds the bundled pipeline) and few data-loader workers.

        Slicer's own PythonSlicer gets Slicer's environment, as slicer.util.pip_install
        does; an interpreter the user chose gets the startup environment, because
        Slicer's PYTHONHOME and PYTHONPATH would make it load Slicer's standard library.
        """
        python = (options or self.options).python  # another run's options: an estimate's
        env = dict(self.startup_environment() if python else os.environ)
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
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # Windows taskkill can lag (review U4)
                pass
        self._remove_run_dir()

    def wait(self, timeout_s: float = 3600.0, process_events=lambda: None) -> None:
        """Block until the run ends (for scripts and tests), calling `process_events`
        (e.g. slicer.app.processEvents) meanwhile; cancels it after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self.running():
            self.poll()
            if time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"UncertaintySeg: no result after {timeout_s:.0f} s; cancelled")
            process_events()
            time.sleep(0.1)

    def error_message(self) -> str | None:
        return self.process.error_message() if self.process else None

    def load_result(self, loader: ResultLoader | None = None) -> tuple[LoadedRun, list[ProgressEvent]]:
        """After a successful run: the output folder into the scene (removes the inputs).

        Returns the run and the progress events still unread (the last ones, e.g.
        "finished", which the caller's progress bar would otherwise miss, review #15).
        A failed run raises RuntimeError with the pipeline's own message, after removing
        its run folder; the scene is not touched.
        """
        if self.process is None or not self.process.finished():
            raise RuntimeError("the run has not finished yet")
        last = self.process.poll()
        message = self.error_message()
        if message:
            self._remove_run_dir()
            raise RuntimeError(message)
        if not self.selection.alive():
            self._remove_run_dir()
            raise RuntimeError("the input volumes were removed from the scene while the "
                               "pipeline ran (scene closed?); nothing was loaded")
        loader = loader or ResultLoader(self.logics)
        folder = self.process.output_folder() or self.output_dir
        run = loader.load(folder, reference_volume=self.selection.nodes["flair"],
                          region=self.options.region)
        shutil.rmtree(self.run_dir / "input", ignore_errors=True)
        return run, last

    def _remove_run_dir(self) -> None:
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
