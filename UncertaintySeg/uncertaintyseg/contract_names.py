"""File names of the output contract (docs/OUTPUT-CONTRACT.md).

Kept apart from `contract`, which imports SimpleITK and nibabel: the Slicer module reads
result folders with these names before those packages are installed in Slicer's Python.
This module imports nothing.
"""

IMAGE_FILES = {
    "probabilities": "probabilities.nii.gz",
    "probabilities_2d": "probabilities_2d.nii.gz",
    "probabilities_3d": "probabilities_3d.nii.gz",
    "uncertainty": "uncertainty.nii.gz",
}
# Written when the run has them; readers must not require them.
OPTIONAL_IMAGE_FILES = {"uncertainty_raw": "uncertainty_raw.nii.gz"}
SEGMENTATION_FILE = "segmentation.nii.gz"
BOXES_FILE = "refinement_boxes.json"
REPORT_FILE = "report.json"
SNAPSHOT_FILE = "snapshot.png"
