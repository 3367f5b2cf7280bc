"""UncertaintySeg pipeline: uncertainty-guided hybrid glioma segmentation.

Stages (one module each, ground floor first): io, phantom, preprocess, projection,
uncertainty, kernels, refine, fusion, postprocess, metrics, models, contract,
snapshot, pipeline, cli. See docs/ARCHITECTURE.md. Nothing here imports slicer, qt or vtk.
"""

__version__ = "0.1.0"

# Defined in the stdlib-only package the Slicer module shares; re-exported here because
# every stage imports them from the package root.
from uncertaintyseg_shared.brats import (BRATS_SEPARATORS, BRATS_SUFFIXES,  # noqa: F401
                                         MODALITIES, REGIONS)
from uncertaintyseg_shared.triage import DEFAULT_TRIAGE_THRESHOLD  # noqa: F401
