"""A case to try the module on without own data: the bundled phantom as four volumes.

The pipeline's own command (`python -m uncertaintyseg phantom`, the generator the tests
and `uncertaintyseg demo` use) writes a small BraTS 2018-named case, in a separate
process as every pipeline step is (the Lib never imports the pipeline's packages); its
four MRI volumes are then loaded under names the selectors' auto-pick recognises. The
module calls this after the dependency check (the command needs nibabel).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .process import default_python
from .volumes import read_scalar_volume

# Seeds 0-11 trained or validated the bundled "phantom" model (Resources/Models/phantom/
# MODEL_CARD.md): the demo shows an unseen phantom, as `uncertaintyseg demo` does.
DEMO_SEED = 100
DEMO_MODALITIES = ("flair", "t1", "t1ce", "t2")  # the phantom's BraTS 2018 suffixes


def write_demo_case(runner, folder) -> Path:
    """The phantom case folder under `folder`, written once and reused afterwards.

    `runner` is the session's CaseRunner: the command runs with its interpreter,
    environment and working folder, as a pipeline run does."""
    folder = Path(folder)
    case = folder / f"Phantom_{DEMO_SEED:04d}"
    if all((case / f"{case.name}_{m}.nii.gz").is_file() for m in DEMO_MODALITIES):
        return case
    command = [default_python(), "-m", "uncertaintyseg", "phantom", "--out", str(folder),
               "--seed", str(DEMO_SEED)]
    done = subprocess.run(command, env=runner.environment(), cwd=str(runner.package_dir),
                          capture_output=True, text=True)
    if done.returncode != 0 or not (case / f"{case.name}_flair.nii.gz").is_file():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"the demo case could not be written into {folder} (exit code "
                           f"{done.returncode}): {tail or 'no output'}. Check that the "
                           "folder is writable and the pipeline's packages are installed "
                           "(press Apply once), then try again")
    return case


def load_demo_case(runner, volumes_logic, folder) -> dict:
    """{modality: volume node} of the demo case, loaded into the volumes logic's scene
    (the reference segmentation stays on disk: the pipeline makes its own)."""
    case = write_demo_case(runner, folder)
    return {m: read_scalar_volume(volumes_logic, case / f"{case.name}_{m}.nii.gz",
                                  f"{case.name}_{m}") for m in DEMO_MODALITIES}
