"""UncertaintySeg pipeline: uncertainty-guided hybrid glioma segmentation.

Sub-packages by role, ground floor first: runtime, files, inputs, stages, networks, run,
cohorts, evaluation, training, commands (docs/ARCHITECTURE.md, "Floors"; a module imports
only from its floor and those below). Nothing here imports slicer, qt or vtk.
"""

__version__ = "0.1.0"

# Defined in the stdlib-only package the Slicer module shares; re-exported here because
# every stage imports them from the package root.
from uncertaintyseg_shared.brats import (BRATS_SEPARATORS, BRATS_SUFFIXES,  # noqa: F401
                                         MODALITIES, REGIONS)
from uncertaintyseg_shared.triage import DEFAULT_TRIAGE_THRESHOLD  # noqa: F401

# The flat module paths of before issue 21 keep working for one release, with a warning.
from . import _moved  # noqa: E402

_moved.install()
