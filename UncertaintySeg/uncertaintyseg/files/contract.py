"""The output contract: one folder per case (docs/OUTPUT-CONTRACT.md, design section 7).

The folder is assembled under a hidden temporary sibling and renamed when complete, so a
cancelled or failed run never leaves a half-written result where a reader would look.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import REGIONS
from ..runtime import signals
from .image_writer import write_image_verified, write_maps_verified
from .io import InputError, OutputError, to_image
from ..contract_names import (BOXES_FILE, DEFAULT_OUTPUTS, MAP_FILES, MAP_INTER, MAP_SLOPE,
                              OPTIONAL_IMAGE_FILES, OUTPUT_SETS, QUANTISED_MAPS, REPORT_FILE,
                              REQUIRED_IMAGE_FILES, SEGMENTATION_FILE, SNAPSHOT_FILE)
from .label_maps import labels_to_regions
from .output_safety import (claim_output, estimate_output_bytes, lock_path, output_lock,
                            partial_prefix, remove_stale_partials)

# report.json last: its presence marks a whole folder.
CONTRACT_FILES = (SEGMENTATION_FILE, *MAP_FILES.values(),
                  BOXES_FILE, SNAPSHOT_FILE, REPORT_FILE)

FORMAT_VERSION = 1


@dataclass
class CaseResult:
    """Everything one run produces for one case, on the input's full grid.

    `labels` is (Z, Y, X) uint8 in the input's convention; the float maps are
    (3, Z, Y, X) float32 in REGIONS order, those outside the run's `--outputs` set None
    (probabilities and uncertainty are always made); `boxes` hold voxel starts/sizes in
    (z, y, x) on the full grid; `reference` carries the geometry; `flair` (Z, Y, X) is
    only used for the snapshot.
    """

    reference: sitk.Image
    labels: np.ndarray
    probabilities: np.ndarray
    probabilities_2d: np.ndarray | None
    probabilities_3d: np.ndarray | None
    uncertainty: np.ndarray
    boxes: list
    report: dict = field(default_factory=dict)
    flair: np.ndarray | None = None
    uncertainty_raw: np.ndarray | None = None


def _ras_from_lps(point) -> list[float]:
    # ITK works in LPS, Slicer in RAS: the two differ by the sign of x and y.
    return [-float(point[0]), -float(point[1]), float(point[2])]


def box_to_json(box, reference: sitk.Image, first_score: float) -> dict:
    """One refinement box as the JSON record of docs/OUTPUT-CONTRACT.md."""
    start_ijk = [int(v) for v in reversed(box.start)]
    size_ijk = [int(v) for v in reversed(box.size)]
    centre_index = [s + (n - 1) / 2.0 for s, n in zip(start_ijk, size_ijk)]
    centre = reference.TransformContinuousIndexToPhysicalPoint(centre_index)
    direction = np.array(reference.GetDirection(), dtype=float).reshape(3, 3)
    axes_ras = direction * np.array([[-1.0], [-1.0], [1.0]])
    return {
        "region": box.region,
        "rank": int(box.rank),
        "score": float(box.score),
        "score_fraction": float(box.score / first_score) if first_score > 0 else 0.0,
        "start_ijk": start_ijk,
        "size_ijk": size_ijk,
        "center_ras": _ras_from_lps(centre),
        "size_mm": [float(n * s) for n, s in zip(size_ijk, reference.GetSpacing())],
        "axes_ras": axes_ras.tolist(),
    }


def boxes_to_json(boxes, reference: sitk.Image) -> dict:
    """All boxes, with `score_fraction` relative to each region's first box."""
    first = {}
    for box in boxes:
        first.setdefault(box.region, box.score)
    records = [box_to_json(b, reference, first[b.region]) for b in boxes]
    return {"format_version": FORMAT_VERSION, "coordinate_system": "RAS", "boxes": records}


def _write_json(data: dict, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def provenance_note(report: dict) -> str:
    """One line for every picture and label map: the model, whether it was trained, and
    that the result is not for clinical use."""
    model = report.get("model", {})
    trained = "" if model.get("trained", True) else " (UNTRAINED)"
    return f"model {model.get('name', '?')}{trained} - research software, not for clinical use"


def file_note(report: dict) -> str:
    """The NIfTI header's 80-character description of every image we write (ITK writes
    the `ITK_FileNotes` metadata there): a label map opened alone still says what made
    it, whether that model was trained, and that it is not for clinical use."""
    model = report.get("model", {})
    trained = "" if model.get("trained", True) else " UNTRAINED"
    return f"uncertaintyseg, model {model.get('name', '?')}{trained}; not for clinical use"[:79]


def _write_maps(result: CaseResult, folder: Path, shown: Path, outputs: str,
                release: bool) -> list[str]:
    """The label map, then the set's float maps one at a time (a 0.5 mm volume's map is
    over 1 GB); with `release` each map is dropped from `result` once written, so its
    memory is freed before the next one is made. Returns the file names written.

    Every image is verified: SimpleITK does not raise on a full disk
    (image_writer.verify_written_image)."""
    note = file_note(result.report)
    labels = to_image(np.asarray(result.labels, dtype=np.uint8), result.reference)
    labels.SetMetaData("ITK_FileNotes", note)
    write_image_verified(labels, folder / SEGMENTATION_FILE, shown / SEGMENTATION_FILE)
    written = [SEGMENTATION_FILE]
    for attribute in OUTPUT_SETS[outputs]:
        maps = getattr(result, attribute)
        if maps is None and attribute in OPTIONAL_IMAGE_FILES:
            continue  # optional: written when the run has it
        if maps is None:
            raise ValueError(f"write_outputs: the result has no {attribute} map; run with "
                             f"outputs={outputs!r} (Settings.outputs) to make it")
        scale = (MAP_SLOPE, MAP_INTER) if attribute in QUANTISED_MAPS else None
        filename = MAP_FILES[attribute]
        write_maps_verified(maps, result.reference, folder / filename, shown / filename,
                            note, scale)
        written.append(filename)
        del maps
        if release:
            setattr(result, attribute, None)
    return written


def _write_snapshot(result: CaseResult, folder: Path) -> None:
    from uncertaintyseg_shared.quality import QUALITY_KEY, quality_line

    from .snapshot import MAP_LABELS, write_snapshot, written_map

    spacing_zyx = tuple(reversed(result.reference.GetSpacing()))
    write_snapshot(folder / SNAPSHOT_FILE, result.flair, result.uncertainty,
                   result.labels, result.boxes, spacing_zyx,
                   title=result.report.get("input", {}).get("case_id", ""),
                   direction=result.reference.GetDirection(),
                   note=provenance_note(result.report),
                   quality=quality_line(result.report.get(QUALITY_KEY)),
                   heat_label=MAP_LABELS.get(written_map(result.report), "uncertainty"))


def outputs_record(outputs: str, files) -> dict:
    """report.json's `outputs`: the set, the files written and how the maps are stored."""
    return {"set": outputs, "files": list(files),
            "quantised_maps": {"maps": [n for n in QUANTISED_MAPS if n in OUTPUT_SETS[outputs]],
                               "dtype": "uint16", "scl_slope": MAP_SLOPE,
                               "scl_inter": MAP_INTER, "max_error": MAP_SLOPE}}


def _write_folder(result: CaseResult, folder: Path, snapshot: bool, shown: Path,
                  outputs: str, release: bool) -> None:
    start = time.perf_counter()
    written = []
    # The snapshot first: it needs the uncertainty, which `release` frees once written.
    if snapshot and result.flair is not None:
        _write_snapshot(result, folder)
        written.append(SNAPSHOT_FILE)
    written += _write_maps(result, folder, shown, outputs, release)
    _write_json(boxes_to_json(result.boxes, result.reference), folder / BOXES_FILE)
    # report.json goes last, with the write time in it: its presence marks a whole folder.
    result.report["outputs"] = outputs_record(outputs, [*written, BOXES_FILE, REPORT_FILE])
    timings = result.report.setdefault("timings_s", {})
    timings["write"] = round(time.perf_counter() - start, 3)
    timings["total"] = round(sum(v for k, v in timings.items() if k != "total"), 3)
    _write_json(result.report, folder / REPORT_FILE)


def _is_earlier_result(folder: Path) -> bool:
    """True when `folder` holds a report.json written by UncertaintySeg."""
    try:
        report = json.loads((folder / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and report.get("software", {}).get("name") == "uncertaintyseg"


def _transient(path: Path, out_dir: Path) -> bool:
    """A run's own passing file inside out_dir: its lock (out_dir a mount point) or a
    partial folder; neither makes the folder "not empty"."""
    return path.name == lock_path(out_dir).name or path.name.startswith(f".{out_dir.name}.partial-")


def check_output_folder(out_dir, overwrite: bool = False) -> Path:
    """Refuse an --out that cannot take a result, before any work is done.

    A file, or a non-empty folder without --overwrite, is refused. With --overwrite the
    folder must hold an earlier UncertaintySeg result (its report.json); only the
    contract's files are replaced then, anything else in the folder is kept.
    """
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: is a file; give a folder for --out")
    if out_dir.is_dir() and any(not _transient(p, out_dir) for p in out_dir.iterdir()):
        if not overwrite:
            raise InputError(f"{out_dir}: the output folder exists and is not empty; "
                             "choose another --out or pass --overwrite")
        if not _is_earlier_result(out_dir):
            raise InputError(f"{out_dir}: holds no earlier UncertaintySeg result (no "
                             f"{REPORT_FILE} written by it); --overwrite replaces only "
                             "earlier results. Choose another --out")
        odd = [n for n in CONTRACT_FILES if (out_dir / n).exists() and not (out_dir / n).is_file()]
        if odd:
            raise InputError(f"{out_dir}: {', '.join(odd)} is not a file; move it away or "
                             "choose another --out")
    return out_dir


def prepare_output(out_dir, overwrite: bool, shape_zyx):
    """Context manager for a run, entered before the model is loaded: locks `out_dir`
    against other runs, checks it (`check_output_folder`), that it can be written and
    that the disk has room for a case of `shape_zyx`. Write the results inside it."""
    return claim_output(out_dir, shape_zyx, lambda d: check_output_folder(d, overwrite))


def write_outputs(result: CaseResult, out_dir, overwrite: bool = False, snapshot: bool = True,
                  outputs: str | None = None, release: bool = False) -> Path:
    """Write the output contract into `out_dir`, atomically, under the folder's lock.

    `outputs` is the set of files (contract_names.OUTPUT_SETS; None: the set the run
    was made for, report["settings"]["outputs"], else "standard"); with `release` the
    result's float maps are dropped as they are written (the memory of a large volume).
    Everything is written into a hidden folder first (beside a new `out_dir`, inside an
    existing one) and moved into place at the end; an exception (a full disk, Ctrl-C, SIGTERM) on the way removes the partial
    folder and leaves an existing `out_dir` untouched. See `check_output_folder` for
    what may be replaced; files the project did not write are never removed.
    """
    outputs = outputs or result.report.get("settings", {}).get("outputs") or DEFAULT_OUTPUTS
    if outputs not in OUTPUT_SETS:
        raise InputError(f"--outputs {outputs}: must be one of {', '.join(OUTPUT_SETS)}")
    with output_lock(out_dir):
        out_dir = check_output_folder(out_dir, overwrite)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        # Partials of runs killed hard; the host and pid in their names keep a live run's
        # (another host's, on a shared file system) from being taken for one.
        remove_stale_partials(out_dir)
        # Assembled beside a new folder, inside an existing one: the final moves are then
        # renames on one file system even when out_dir is a mount point (a Docker volume).
        staging = out_dir if out_dir.is_dir() else out_dir.parent
        partial = Path(tempfile.mkdtemp(prefix=partial_prefix(out_dir), dir=staging))
        try:
            _write_partial(result, partial, snapshot, out_dir, outputs, release)
            _move_into_place(partial, out_dir)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return out_dir


def _write_partial(result: CaseResult, partial: Path, snapshot: bool, out_dir: Path,
                   outputs: str, release: bool) -> None:
    needed = f"the results need about {estimate_output_bytes(result.labels.shape) / 1e6:.0f} MB"
    try:
        _write_folder(result, partial, snapshot, out_dir, outputs, release)
    except OutputError as err:  # an image not written whole (io: a full disk, mostly)
        raise OutputError(f"{err} ({needed} in {out_dir}.)") from err
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise OutputError(f"{out_dir}: the disk is full ({err.strerror}); {needed}, "
                          f"{shutil.disk_usage(partial).free / 1e6:.0f} MB free on it. Free "
                          "space or choose an --out on another disk.") from err
    # mkdtemp makes the folder private (0700); results are meant to be shared.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(partial, 0o777 & ~umask)


def _move_into_place(new: Path, target: Path) -> None:
    """A new folder is renamed into place; into an existing one (an earlier result under
    --overwrite) only the contract's files are moved, the others stay where they are."""
    if not target.exists():
        os.replace(new, target)
        return
    # Renames only, held together against Ctrl-C/SIGTERM so the folder is never left
    # half old, half new. report.json goes first and comes back last: a folder without
    # it reads as incomplete (read_outputs) until the last rename.
    with signals.deferred():
        (target / REPORT_FILE).unlink(missing_ok=True)
        for name in CONTRACT_FILES:
            if (new / name).is_file():
                os.replace(new / name, target / name)
            elif (target / name).is_file():
                (target / name).unlink()  # an earlier run's optional file, not made now
        shutil.rmtree(new, ignore_errors=True)


def read_outputs(out_dir) -> dict:
    """Read an output folder back: arrays (as in CaseResult), boxes JSON and report.

    Returns a dict with keys `labels`, `boxes` (the JSON records), `report`,
    `reference` (a SimpleITK image with the case geometry) and every map the folder has
    (`probabilities` and `uncertainty` always; `probabilities_2d`, `probabilities_3d`
    and `uncertainty_raw` as its `--outputs` set wrote them), as float32 (3, Z, Y, X):
    quantised maps are scaled back by their scl_slope / scl_inter, float32 ones (folders
    written before quantisation) read as they are.
    """
    out_dir = Path(out_dir)
    missing = [n for n in [SEGMENTATION_FILE, BOXES_FILE, REPORT_FILE,
                           *REQUIRED_IMAGE_FILES.values()] if not (out_dir / n).is_file()]
    if missing:
        raise InputError(f"{out_dir}: not a complete UncertaintySeg output folder "
                         f"(missing {', '.join(missing)}); run `uncertaintyseg predict` again")
    seg = sitk.ReadImage(str(out_dir / SEGMENTATION_FILE))
    data = {"reference": seg, "labels": sitk.GetArrayFromImage(seg)}
    for attribute, filename in MAP_FILES.items():
        if (out_dir / filename).is_file():
            image = sitk.ReadImage(str(out_dir / filename), sitk.sitkFloat32)
            data[attribute] = sitk.GetArrayFromImage(image)
    data["boxes"] = json.loads((out_dir / BOXES_FILE).read_text(encoding="utf-8"))["boxes"]
    data["report"] = json.loads((out_dir / REPORT_FILE).read_text(encoding="utf-8"))
    return data


def region_volumes_ml(labels: np.ndarray, spacing_zyx) -> dict:
    """Volumes of ET, TC, WT in millilitres from a label map (Z, Y, X), either convention."""
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    regions = labels_to_regions(labels)
    return {name: float(regions[i].sum()) * voxel_ml for i, name in enumerate(REGIONS)}
