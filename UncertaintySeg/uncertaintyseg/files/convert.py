"""BraTS case folders -> an nnU-Net v2 raw dataset with region-based labels.

Follows nnU-Net's BraTS 2021 conversion (`Dataset137_BraTS21.py`) and its
`region_based_training` documentation: labels become consecutive (1 edema, 2 necrosis /
non-enhancing core, 3 enhancing tumour) and dataset.json declares the regions
WT = (1, 2, 3), TC = (2, 3), ET = (3,), largest first, with regions_class_order
(1, 2, 3), which is the order nnU-Net's export paints them back into a label map. The
networks therefore output WT, TC, ET; `models.RegionNetwork` reorders to ET, TC, WT.

Channels are written in the pipeline's order (FLAIR, T1, T1ce, T2 = _0000.._0003) so a
network trained on the dataset takes the pipeline's input unchanged. The train /
validation split is fixed (seeded, or given) and recorded as nnU-Net's
`splits_final.json` (one fold) beside dataset.json.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import MODALITIES
from .image_writer import write_image_atomic
from .io import InputError, find_case_files, to_image
from .output_safety import preflight, write_json_atomic
from .label_maps import ED_LABEL, ET_LABEL, NCR_LABEL, load_labels

# BraTS label (either convention, as load_labels reads it) -> nnU-Net consecutive label
NNUNET_LABELS = {"ED": 1, "NCR": 2, "ET": 3}
REGION_LABELS = {"background": 0, "WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}
REGIONS_CLASS_ORDER = [1, 2, 3]
CHANNEL_NAMES = {"0": "FLAIR", "1": "T1", "2": "T1ce", "3": "T2"}
SPLITS_FILE = "splits_final.json"
FILE_ENDING = ".nii.gz"
# Under this many enhancing-tumour voxels a case counts as low-ET (the shared data's
# README: six of its 29 cases); the split keeps such cases on both sides.
LOW_ET_VOXELS = 5000


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """nnU-Net's folder name, DatasetXXX_Name."""
    if not 1 <= int(dataset_id) <= 999:
        raise ValueError(f"nnU-Net dataset ids are 1..999, got {dataset_id}")
    return f"Dataset{int(dataset_id):03d}_{name}"


def label_file(case_dir: Path) -> Path:
    """The reference label map of a case folder (*seg.nii.gz)."""
    found = sorted(p for p in case_dir.iterdir() if p.name.split(".")[0].endswith("seg"))
    if not found:
        raise InputError(f"{case_dir} has no label map (*_seg.nii.gz or *-seg.nii.gz); "
                         f"training cases need their reference segmentation.")
    return found[0]


def find_cases(source: Path) -> list[tuple[str, dict[str, Path], Path]]:
    """(case id, modality files, label file) of every case folder under `source`, sorted."""
    source = Path(source)
    if not source.is_dir():
        raise InputError(f"{source} is not a folder; give the folder that holds one "
                         f"sub-folder per BraTS case.")
    cases = []
    for case_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        files = find_case_files(case_dir)
        cases.append((case_dir.name, files, label_file(case_dir)))
    if not cases:
        raise InputError(f"{source} holds no case folders; put each BraTS case (four "
                         f"modalities + seg) in its own sub-folder.")
    return cases


def to_nnunet_labels(labels: np.ndarray, convention: str) -> np.ndarray:
    """BraTS labels (1 NCR, 2 ED, 4 or 3 ET) -> nnU-Net's (1 ED, 2 NCR, 3 ET), uint8."""
    out = np.zeros(labels.shape, dtype=np.uint8)
    out[labels == ED_LABEL] = NNUNET_LABELS["ED"]
    out[labels == NCR_LABEL] = NNUNET_LABELS["NCR"]
    out[labels == ET_LABEL[convention]] = NNUNET_LABELS["ET"]
    return out


def make_split(case_ids: list[str], n_val: int, seed: int = 0,
               val_cases: list[str] | None = None,
               low_et: set[str] | frozenset = frozenset()) -> dict[str, list[str]]:
    """A fixed train/val split: `val_cases` if given, else `n_val` drawn with `seed`.

    `low_et`: the cases with little enhancing tumour. They are drawn apart from the others,
    in proportion and at least one on each side when there are two or more, so that both
    the networks and the validation see cases whose ET Dice hinges on a few voxels."""
    ids = sorted(case_ids)
    if val_cases:
        unknown = sorted(set(val_cases) - set(ids))
        if unknown:
            raise InputError(f"validation cases {unknown} are not among the cases found")
        val = sorted(val_cases)
    else:
        if not 0 <= n_val < len(ids):
            raise InputError(f"cannot keep {n_val} of {len(ids)} cases for validation; "
                             f"leave at least one for training")
        low = [c for c in ids if c in low_et]
        rest = [c for c in ids if c not in low_et]
        n_low = _low_et_share(n_val, len(low), len(ids))
        rng = np.random.default_rng(seed)
        val = sorted(rng.permutation(low)[:n_low].tolist()
                     + rng.permutation(rest)[:n_val - n_low].tolist())
    return {"train": [c for c in ids if c not in val], "val": val}


def _low_et_share(n_val: int, n_low: int, n_all: int) -> int:
    """How many of the `n_val` validation cases are low-ET cases (of `n_low`)."""
    if n_val == 0 or n_low == 0:
        return 0
    share = round(n_val * n_low / n_all)
    if n_low >= 2 and n_val >= 2:
        share = min(max(share, 1), n_low - 1)  # one on each side
    # Never more than there are, never so few that the other cases run out.
    return max(min(share, n_val, n_low), n_val - (n_all - n_low))


def low_et_cases(cases: list[tuple[str, dict, Path]]) -> set[str]:
    """The case ids whose reference holds fewer than LOW_ET_VOXELS enhancing voxels."""
    low = set()
    for case_id, _, label_path in cases:
        labels, convention = load_labels(label_path)
        if int((labels == ET_LABEL[convention]).sum()) < LOW_ET_VOXELS:
            low.add(case_id)
    return low


def _write_case(case_id: str, files: dict, label_path: Path, out: Path) -> None:
    reference = sitk.ReadImage(str(files[MODALITIES[0]]))
    for index, modality in enumerate(MODALITIES):
        target = out / "imagesTr" / f"{case_id}_{index:04d}{FILE_ENDING}"
        if str(files[modality]).endswith(FILE_ENDING):
            shutil.copyfile(files[modality], target)
        else:  # other formats (e.g. .nii): rewrite, nnU-Net wants one file ending
            sitk.WriteImage(sitk.ReadImage(str(files[modality])), str(target))
    labels, convention = load_labels(label_path, reference=reference)
    # Atomic: the label file is what a resumed conversion takes as "case done".
    write_image_atomic(to_image(to_nnunet_labels(labels, convention), reference),
                       out / "labelsTr" / f"{case_id}{FILE_ENDING}")


def write_dataset_json(out: Path, n_cases: int, source: str, split: dict) -> None:
    """dataset.json in nnU-Net's form (generate_dataset_json) with the regions."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    generate_dataset_json(
        str(out), channel_names=dict(CHANNEL_NAMES), labels=dict(REGION_LABELS),
        num_training_cases=n_cases, file_ending=FILE_ENDING,
        regions_class_order=tuple(REGIONS_CLASS_ORDER), dataset_name=out.name,
        description="BraTS glioma cases converted by uncertaintyseg convert",
        license="see the source data's licence", converted_by="uncertaintyseg",
        uncertaintyseg={"source": source, "label_map": {"1": "ED", "2": "NCR", "3": "ET"},
                        "split": split})


def _refuse_a_second_dataset_with_the_id(out: Path) -> None:
    # nnU-Net finds a dataset by its id alone and stops when two folders share one.
    prefix = out.name.split("_", 1)[0] + "_"
    others = sorted(p.name for p in out.parent.glob(prefix + "*") if p.is_dir() and p != out)
    if others:
        raise InputError(f"{out.parent}: already holds {', '.join(others)} with dataset id "
                         f"{prefix[7:-1]}; nnU-Net cannot tell two datasets with one id "
                         "apart. Choose another --dataset-id or another --out.")


def convert_dataset(source: Path, raw_root: Path, dataset_id: int = 500,
                    *, name: str = "UncertaintySeg", n_val: int = 3, seed: int = 0,
                    val_cases: list[str] | None = None, progress=None) -> Path:
    """Write raw_root/DatasetXXX_name (imagesTr, labelsTr, dataset.json, splits_final.json).

    Returns the dataset folder. Cases already written (all five files present) are kept,
    so an interrupted conversion resumes.
    """
    cases = find_cases(source)
    low_et = low_et_cases(cases) if n_val and not val_cases else set()
    split = make_split([c[0] for c in cases], n_val, seed, val_cases, low_et)
    out = Path(raw_root) / dataset_folder_name(dataset_id, name)
    preflight(out)  # read-only, no permission, a file in the path: said before any work
    _refuse_a_second_dataset_with_the_id(out)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    for done, (case_id, files, label_path) in enumerate(cases):
        if not (out / "labelsTr" / f"{case_id}{FILE_ENDING}").is_file():
            _write_case(case_id, files, label_path, out)
        if progress is not None:
            progress("convert", done + 1, len(cases), case_id)
    write_dataset_json(out, len(cases), str(Path(source).resolve()), split)
    write_json_atomic(out / SPLITS_FILE, [split])
    return out
