"""UncertaintySeg pipeline: uncertainty-guided hybrid glioma segmentation.

Stages (one module each, ground floor first): io, phantom, preprocess, projection,
uncertainty, kernels, refine, fusion, postprocess, metrics, models, contract,
snapshot, pipeline, cli. See docs/ARCHITECTURE.md. Nothing here imports slicer, qt or vtk.
"""

__version__ = "0.1.0"

MODALITIES = ("flair", "t1", "t1ce", "t2")
REGIONS = ("ET", "TC", "WT")
# Case-level triage threshold when a model.json has none (`evaluate --calibrate-triage`
# or `train` store one chosen on validation cases). Here, importable without anything,
# because the Slicer Lib shows it too.
DEFAULT_TRIAGE_THRESHOLD = 0.25

# File-name suffix of each modality per BraTS naming convention, and the separator before
# it (BraTS 2017-2021: <case>_flair.nii.gz; BraTS 2023+: <case>-t2f.nii.gz). Here, not in
# io, because the Slicer module names and recognises files without importing io's
# SimpleITK.
BRATS_SUFFIXES = {
    "brats2018": {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2"},
    "brats2023": {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w"},
}
BRATS_SEPARATORS = {"brats2018": "_", "brats2023": "-"}
