"""Cases and checks of the in-Slicer self-test (UncertaintySegTest in UncertaintySeg.py).

Runs inside the Slicer application (imports slicer). Two ways to get a result:
- pipeline_run: a phantom case written by the pipeline's own CLI, loaded as volumes and
  run through the module's Logic with the bundled demo model. Only when every pipeline
  requirement is installed in Slicer's Python (deps.pipeline_ready): torch alone is not
  enough, the CLI imports nibabel and nnunetv2 too (review #13);
- stored_run: a synthetic output folder (synthetic_case.py) loaded through the Logic.
"""

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import slicer

from UncertaintySegLib.deps import pipeline_ready
from UncertaintySegLib.inputs import VolumeSelection
from UncertaintySegLib.process import default_python
from UncertaintySegLib.review import triage_summary

HERE = Path(__file__).resolve().parent


def work_dir() -> Path:
    folder = Path(slicer.app.temporaryPath) / "UncertaintySegTest"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def run_case(logic):
    """(run, how): the pipeline's result when it can run here, else a stored output."""
    folder = work_dir()
    if pipeline_ready():
        return pipeline_run(logic, folder), "pipeline run"
    return stored_run(logic, folder), "stored output: the pipeline's packages are not installed"


def pipeline_run(logic, folder: Path):
    """Phantom case -> the four volumes in the scene -> Logic.process (blocking)."""
    env, python = logic.runner.environment(), default_python()
    cwd = str(logic.runner.package_dir)
    subprocess.run([python, "-m", "uncertaintyseg", "phantom", "--out", str(folder / "phantom")],
                   env=env, cwd=cwd, check=True, capture_output=True)
    models = subprocess.run([python, "-m", "uncertaintyseg", "--list-models"], env=env, cwd=cwd,
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


def check_run(test, logic, run) -> str:
    """The checks on a loaded run (`test` is the unittest.TestCase); returns a summary."""
    segments = run.segmentation.GetSegmentation()
    names = sorted(segments.GetNthSegment(i).GetName()
                   for i in range(segments.GetNumberOfSegments()))
    test.assertEqual(names, ["ED", "ET", "NCR"])
    test.assertTrue(segments.ContainsRepresentation("Closed surface"))
    test.assertEqual(len(run.rois), len(run.boxes))
    red = slicer.app.layoutManager().sliceWidget("Red").sliceLogic().GetSliceCompositeNode()
    test.assertEqual(red.GetForegroundVolumeID(), run.uncertainty.GetID())
    exported = run.output_dir.parent / "exported.nii.gz"
    logic.exportLabels(run, exported)
    labels = slicer.util.loadLabelVolume(str(exported))
    original = slicer.util.loadLabelVolume(str(run.output_dir / "segmentation.nii.gz"))
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(labels),
                                  slicer.util.arrayFromVolume(original))
    return f"{len(run.boxes)} boxes, {triage_summary(run.report)[0]}"
