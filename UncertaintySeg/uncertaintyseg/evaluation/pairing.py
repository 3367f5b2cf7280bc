"""Pairing reference cases with the outputs of one or more methods, and reading both.

A *method* is a name and a folder of per-case results. A case's result is either an
UncertaintySeg output folder `DIR/CASE/` (docs/OUTPUT-CONTRACT.md; what `predict --cases`
writes), an output folder of any name whose report.json names the case (single `predict
--out` runs gathered in one folder), or a plain label map `DIR/CASE.nii.gz` (any other
tool). The first results folder is "the run": it gives the
fused method (`segmentation.nii.gz`) and its 2D-only twin (`probabilities_2d` > 0.5,
nested and post-processed as the run's report says, the pipeline's own rule).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..contract_names import BOXES_FILE, IMAGE_FILES, REPORT_FILE, SEGMENTATION_FILE
from ..files.convert import label_file
from ..files.io import InputError, load_case
from ..files.label_maps import labels_to_regions, load_labels
from ..stages.postprocess import nest, remove_small_components
from ..stages.preprocess import brain_mask

FUSED, ONLY_2D = "fused", "2D-only"
KIND_FUSED, KIND_2D, KIND_LABELS = "fused", "2d", "labels"


@dataclass(frozen=True)
class Method:
    """name: shown in tables; root: folder of per-case results; kind: which map of a
    contract folder is scored (fused labels, 2D-only, or a foreign label map)."""

    name: str
    root: Path
    kind: str = KIND_FUSED


@dataclass
class Reference:
    """One reference case: regions bool (3, Z, Y, X), brain bool (Z, Y, X) (the voxel
    set of the voxel-wise and uncertainty metrics), image float32 (4, Z, Y, X)."""

    case_id: str
    regions: np.ndarray
    brain: np.ndarray
    spacing: tuple[float, float, float]
    image: np.ndarray
    grid: sitk.Image
    convention: str


@dataclass
class Output:
    """One method's result on one case: regions bool (3, Z, Y, X); probabilities and
    uncertainty float32 (3, Z, Y, X) in [0, 1] or None; the run's report or None."""

    regions: np.ndarray
    probabilities: np.ndarray | None = None
    uncertainty: np.ndarray | None = None
    report: dict | None = None
    boxes: list | None = None
    probabilities_2d: np.ndarray | None = None  # read only by the kernel study


def parse_results(values: list[str]) -> list[Method]:
    """`--results` values (`DIR` or `NAME=DIR`) -> methods. The first folder gives the
    fused method and its 2D-only twin; a folder holding method sub-folders (each with
    case folders) gives one method per sub-folder."""
    methods: list[Method] = []
    for index, value in enumerate(values):
        name, _, folder = value.partition("=") if "=" in value else ("", "", value)
        root = Path(folder)
        if not root.is_dir():
            raise InputError(f"{root}: results folder not found; pass the --out folder(s) "
                             "of `uncertaintyseg predict` (one sub-folder per case)")
        if (root / REPORT_FILE).is_file():
            raise InputError(f"{root}: one case's output folder; --results takes the folder "
                             f"that holds the cases' output folders (here {root.parent}), "
                             "as `predict --cases` writes it")
        if not name and _holds_methods(root):
            methods += [Method(sub.name, sub) for sub in sorted(p for p in root.iterdir() if p.is_dir())]
            continue
        methods.append(Method(name or (FUSED if index == 0 else root.name), root))
    if methods and _has_two_d(methods[0].root):
        first = methods[0]
        twin = ONLY_2D if first.name == FUSED else f"{first.name} {ONLY_2D}"
        methods.insert(1, Method(twin, first.root, KIND_2D))
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise InputError(f"two methods share a name in {names}: name them with NAME=DIR")
    return methods


def _has_two_d(root: Path) -> bool:
    """False when the run's case folders hold no P2D (`predict --outputs minimal`):
    it then has no 2D-only twin to evaluate."""
    results = [p for p in root.iterdir() if (p / REPORT_FILE).is_file()]
    return not results or any((p / IMAGE_FILES["probabilities_2d"]).is_file() for p in results)


def _holds_methods(root: Path) -> bool:
    """True when no sub-folder of root is a case result but some hold case results."""
    subs = [p for p in root.iterdir() if p.is_dir()]
    if any((p / SEGMENTATION_FILE).is_file() for p in subs) or list(root.glob("*.nii.gz")):
        return False
    return any((q / SEGMENTATION_FILE).is_file() for p in subs for q in p.iterdir()
               if q.is_dir())


def find_cases(cases_dir) -> list[Path]:
    """Case folders (with a *seg.nii.gz reference) under cases_dir, sorted by name."""
    cases_dir = Path(cases_dir)
    if not cases_dir.is_dir():
        raise InputError(f"{cases_dir}: cases folder not found; pass the folder that holds "
                         "one sub-folder per case (images and *_seg.nii.gz)")
    found = [p for p in sorted(cases_dir.iterdir()) if p.is_dir()
             and any(f.name.split(".")[0].endswith("seg") for f in p.iterdir())]
    if not found:
        raise InputError(f"{cases_dir}: no case folder with a reference label map "
                         "(*_seg.nii.gz) inside")
    return found


def result_path(method: Method, case_id: str) -> Path | None:
    """The folder or label file of a case's result, None when there is none: ROOT/CASE/,
    ROOT/CASE.nii[.gz], else the output folder whose report.json names the case."""
    folder = method.root / case_id
    if folder.is_dir():
        return folder
    for name in (f"{case_id}.nii.gz", f"{case_id}.nii"):
        if (method.root / name).is_file():
            return method.root / name
    root = method.root.resolve()
    return _reported_cases(str(root), root.stat().st_mtime_ns).get(case_id)


@functools.lru_cache(maxsize=8)
def _reported_cases(root: str, mtime_ns: int) -> dict[str, Path]:
    """{case id in report.json: output folder} of root's sub-folders; read once per
    folder state (the modification time in the key: a folder added is seen)."""
    found: dict[str, Path] = {}
    for report_file in sorted(Path(root).glob(f"*/{REPORT_FILE}")):
        try:
            report = json.loads(report_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # an unreadable report pairs nothing; a folder named after its case still does
        case_id = (report.get("input") or {}).get("case_id") if isinstance(report, dict) else None
        if isinstance(case_id, str) and case_id:
            found.setdefault(case_id, report_file.parent)
    return found


def unpaired_line(unpaired: dict[str, list[str]], methods: list[Method],
                  case_count: int) -> str:
    """One line for every case some method has no result for: which, and why.

    `unpaired` is {method name: [case ids]}; methods missing the same cases share a
    clause; "" when every case has a result.
    """
    groups: dict[tuple, list[Method]] = {}
    for method in methods:
        if unpaired.get(method.name):
            groups.setdefault(tuple(sorted(unpaired[method.name])), []).append(method)
    clauses = []
    for cases, group in groups.items():
        shown = ", ".join(cases[:5]) + (f" and {len(cases) - 5} more" if len(cases) > 5 else "")
        folders = ", ".join(sorted({str(m.root) for m in group}))
        clauses.append(f"{len(cases)} of {case_count} case(s) for "
                       f"{', '.join(m.name for m in group)} ({shown}): no CASE/ folder, "
                       f"CASE.nii.gz or report.json naming the case in {folders}")
    return ("not paired: " + "; ".join(clauses)) if clauses else ""


def source_signature(path: Path) -> dict:
    """Sizes and modification times of a result's files: a cached score is reused only
    while these are unchanged."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return {f.name: [f.stat().st_size, int(f.stat().st_mtime)] for f in files if f.is_file()}


def load_reference(case_dir: Path) -> Reference:
    """Images, brain mask and reference regions of one case (either BraTS convention,
    and BraTS 2024+ maps with label 4 = resection cavity)."""
    case = load_case(case_dir=case_dir)
    labels, convention = load_labels(label_file(case_dir), reference=case.reference,
                                     allow_cavity=True)
    return Reference(case.case_id, labels_to_regions(labels, convention),
                     brain_mask(case.image), case.spacing, case.image, case.reference,
                     convention)


def read_maps(path: Path, grid: sitk.Image) -> np.ndarray:
    """A 4D region map (3, Z, Y, X) float32 (read-only), a quantised map scaled back
    (its scl_slope / scl_inter) as a float32 one is read; InputError when missing,
    unreadable or off-grid."""
    if not path.is_file():
        raise InputError(f"{path}: missing; `predict --outputs minimal` writes only the "
                         "fused probabilities and the uncertainty: run `uncertaintyseg "
                         "predict` again with `--outputs standard` (the default) or `all`")
    stat = path.stat()
    return _read_maps_once(str(path), stat.st_size, stat.st_mtime_ns,
                           tuple(reversed(grid.GetSize())))


@functools.lru_cache(maxsize=2)
def _read_maps_once(name: str, size: int, mtime_ns: int, shape: tuple) -> np.ndarray:
    # The fused and 2D-only methods of a run read the same uncertainty map (about 0.1 GB
    # and a second to decompress); size and time in the key make a rewritten file new.
    path = Path(name)
    try:
        array = sitk.GetArrayFromImage(sitk.ReadImage(str(path), sitk.sitkFloat32))
    except RuntimeError as error:
        raise InputError(f"{path}: unreadable ({error}); run `uncertaintyseg predict` "
                         "again") from error
    if array.ndim != 4 or array.shape[0] != 3 or array.shape[1:] != shape:
        raise InputError(f"{path}: expected 3 region maps on the case grid {shape}, got "
                         f"shape {array.shape}; run `uncertaintyseg predict` again")
    array.flags.writeable = False
    return array


def _two_d_regions(probabilities_2d: np.ndarray, report: dict) -> np.ndarray:
    """The pipeline's labelling rule (pipeline.segment) applied to P2D, with the
    component fraction the run recorded (None: post-processing was off)."""
    regions = nest(probabilities_2d > 0.5)
    fraction = (report.get("settings") or {}).get("min_component_fraction")
    if fraction is not None:
        regions = remove_small_components(regions, float(fraction))
    return regions


def load_output(method: Method, path: Path, reference: Reference) -> Output:
    """Read one method's result for a case; InputError naming the file when it is
    missing, broken or on another grid."""
    if path.is_file():
        labels, convention = load_labels(path, reference=reference.grid, allow_cavity=True)
        return Output(labels_to_regions(labels, convention))
    report_file = path / REPORT_FILE
    report = json.loads(report_file.read_text(encoding="utf-8")) if report_file.is_file() else None
    uncertainty_file = path / IMAGE_FILES["uncertainty"]
    uncertainty = (read_maps(uncertainty_file, reference.grid)
                   if uncertainty_file.is_file() else None)
    if method.kind == KIND_2D:
        probabilities = read_maps(path / IMAGE_FILES["probabilities_2d"], reference.grid)
        return Output(_two_d_regions(probabilities, report or {}), probabilities,
                      uncertainty, report)
    segmentation = path / SEGMENTATION_FILE
    if not segmentation.is_file():
        raise InputError(f"{segmentation}: missing; run `uncertaintyseg predict` again")
    labels, convention = load_labels(segmentation, reference=reference.grid,
                                     allow_cavity=True)
    fused_file = path / IMAGE_FILES["probabilities"]
    probabilities = read_maps(fused_file, reference.grid) if fused_file.is_file() else None
    return Output(labels_to_regions(labels, convention), probabilities, uncertainty, report,
                  _read_boxes(path))


def _read_boxes(path: Path) -> list | None:
    boxes = path / BOXES_FILE
    if not boxes.is_file():
        return None
    return json.loads(boxes.read_text(encoding="utf-8")).get("boxes", [])


def safe_name(name: str) -> str:
    """A method name as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "method"
