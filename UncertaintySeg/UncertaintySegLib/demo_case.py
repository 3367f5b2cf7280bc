"""A case to try the module on without own data: the bundled phantom as four volumes.

The phantom generator (uncertaintyseg.phantom, the same one the tests and `uncertaintyseg
demo` use) writes a small BraTS 2018-named case; its four MRI volumes are loaded into
the scene under names that the selectors' auto-pick recognises. The generator needs the
pipeline's packages (nibabel), so the module calls this after the dependency check.
"""

from __future__ import annotations

from pathlib import Path

from .volumes import read_scalar_volume

# Phantom_0002: a validation case of the bundled "phantom" model (Resources/Models/phantom/
# MODEL_CARD.md), not one it was trained on.
DEMO_SEED = 2
# The phantom's file suffix of each modality (BraTS 2018 naming), as the selectors use.
DEMO_MODALITIES = ("flair", "t1", "t1ce", "t2")


def write_demo_case(folder) -> Path:
    """The phantom case folder under `folder`, written once and reused afterwards."""
    from uncertaintyseg.phantom import write_phantom_case

    folder = Path(folder)
    case = folder / f"Phantom_{DEMO_SEED:04d}"
    if not all((case / f"{case.name}_{m}.nii.gz").is_file() for m in DEMO_MODALITIES):
        case = write_phantom_case(folder, seed=DEMO_SEED)
    return case


def load_demo_case(volumes_logic, folder) -> dict:
    """{modality: volume node} of the demo case, loaded into the volumes logic's scene
    (the reference segmentation stays on disk: the pipeline makes its own)."""
    case = write_demo_case(folder)
    return {m: read_scalar_volume(volumes_logic, case / f"{case.name}_{m}.nii.gz",
                                  f"{case.name}_{m}") for m in DEMO_MODALITIES}
