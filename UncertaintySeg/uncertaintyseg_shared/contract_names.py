"""File names and output sets of the output contract (docs/OUTPUT-CONTRACT.md).

Kept apart from `uncertaintyseg.files.contract`, which imports SimpleITK and nibabel: the Slicer module reads
result folders with these names before those packages are installed in Slicer's Python,
and `options` builds `--outputs` from OUTPUT_SETS. This module imports nothing.
"""

IMAGE_FILES = {
    "probabilities": "probabilities.nii.gz",
    "probabilities_2d": "probabilities_2d.nii.gz",
    "probabilities_3d": "probabilities_3d.nii.gz",
    "uncertainty": "uncertainty.nii.gz",
}
# Written only by `--outputs all`; readers must not require it.
OPTIONAL_IMAGE_FILES = {"uncertainty_raw": "uncertainty_raw.nii.gz"}
MAP_FILES = {**IMAGE_FILES, **OPTIONAL_IMAGE_FILES}
SEGMENTATION_FILE = "segmentation.nii.gz"
BOXES_FILE = "refinement_boxes.json"
REPORT_FILE = "report.json"
SNAPSHOT_FILE = "snapshot.png"

# `predict --outputs`: the maps (CaseResult attributes) each set writes, beside the
# segmentation, the boxes, the report and the snapshot, which every set writes.
OUTPUT_SETS = {
    "minimal": ("probabilities", "uncertainty"),
    "standard": ("probabilities", "probabilities_2d", "probabilities_3d", "uncertainty"),
    "all": ("probabilities", "probabilities_2d", "probabilities_3d", "uncertainty",
            "uncertainty_raw"),
}
DEFAULT_OUTPUTS = "standard"
# What every complete folder holds, whatever its set: readers require these, no more.
REQUIRED_IMAGE_FILES = {name: MAP_FILES[name] for name in OUTPUT_SETS["minimal"]}

# Maps in [-1, 1] stored as uint16 q, value = q * MAP_SLOPE + MAP_INTER (NIfTI
# scl_slope / scl_inter, applied by every NIfTI reader: ITK, SimpleITK, nibabel, Slicer).
# A power-of-two slope makes -1, 0, 0.5 and every stored value exact in float32; the
# error is at most MAP_SLOPE / 2 (1.5e-5), MAP_SLOPE just below 1 (65535 is the top q).
QUANTISED_MAPS = ("probabilities", "probabilities_2d", "probabilities_3d", "uncertainty")
MAP_SLOPE = 2.0 ** -15
MAP_INTER = -1.0


def output_files(outputs: str) -> tuple[str, ...]:
    """The files a run with `--outputs outputs` writes (snapshot.png included)."""
    maps = tuple(MAP_FILES[name] for name in OUTPUT_SETS[outputs])
    return (SEGMENTATION_FILE, *maps, BOXES_FILE, SNAPSHOT_FILE, REPORT_FILE)
