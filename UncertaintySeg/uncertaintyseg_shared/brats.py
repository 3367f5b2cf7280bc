"""The BraTS names both sides use: modalities, regions, and how files are named."""

MODALITIES = ("flair", "t1", "t1ce", "t2")
REGIONS = ("ET", "TC", "WT")

# File-name suffix of each modality per BraTS naming convention, and the separator before
# it (BraTS 2017-2021: <case>_flair.nii.gz; BraTS 2023+: <case>-t2f.nii.gz). The Slicer
# module names and recognises files with them without importing io's SimpleITK.
BRATS_SUFFIXES = {
    "brats2018": {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2"},
    "brats2023": {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w"},
}
BRATS_SEPARATORS = {"brats2018": "_", "brats2023": "-"}
