"""Cases for the in-Slicer self-test (UncertaintySegTest in UncertaintySeg.py).

Runs inside the Slicer application (imports slicer). Two ways to get a result:
- pipeline_run: a phantom case written by the pipeline's own CLI, loaded as volumes and
  run through the module's Logic with the bundled demo model (needs torch);
- stored_run: a synthetic output folder (synthetic_case.py) loaded through the Logic
  (no torch needed).
"""

import importlib.util
import shutil
import subprocess
from pathlib import Path

import slicer

from UncertaintySegLib.inputs import VolumeSelection
from UncertaintySegLib.process import default_python

HERE = Path(__file__).resolve().parent


def work_dir() -> Path:
    folder = Path(slicer.app.temporaryPath) / "UncertaintySegTest"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def pipeline_run(logic, folder: Path):
    """Phantom case -> the four volumes in the scene -> Logic.process (blocking)."""
    env, python = logic.runner.environment(), default_python()
    subprocess.run([python, "-m", "uncertaintyseg", "phantom", "--out", str(folder / "phantom")],
                   env=env, check=True, capture_output=True)
    models = subprocess.run([python, "-m", "uncertaintyseg", "--list-models"], env=env,
                            check=True, capture_output=True, text=True).stdout.split()
    volumes = [slicer.util.loadVolume(str(path)) for path in
               sorted((folder / "phantom").rglob("*.nii.gz")) if "seg" not in path.name]
    parameters = logic.getParameterNode()
    for modality, node in VolumeSelection.from_nodes(volumes).nodes.items():
        setattr(parameters, modality, node)
    parameters.modelName = "phantom" if "phantom" in models else "analytic"
    parameters.projections, parameters.device = "preview", "cpu"
    return logic.process(parameters, timeout_s=900)


def stored_run(logic, folder: Path):
    """A synthetic output folder and its FLAIR, loaded through the Logic."""
    spec = importlib.util.spec_from_file_location("uncertaintyseg_synthetic_case",
                                                  HERE / "synthetic_case.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    case = module.write_fixture_case(folder / "synthetic")
    flair = slicer.util.loadVolume(str(case.input_dir / "Synthetic_flair.nii.gz"))
    return logic.loadOutputFolder(case.output_dir, referenceVolume=flair)
