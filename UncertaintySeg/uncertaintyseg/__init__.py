"""UncertaintySeg pipeline: uncertainty-guided hybrid glioma segmentation.

Stages (one module each, ground floor first): io, phantom, preprocess, projection,
uncertainty, kernels, refine, fusion, postprocess, metrics, models, contract,
snapshot, pipeline, cli. See docs/ARCHITECTURE.md. Nothing here imports slicer, qt or vtk.
"""

__version__ = "0.1.0"

MODALITIES = ("flair", "t1", "t1ce", "t2")
REGIONS = ("ET", "TC", "WT")
