"""A small synthetic case and its output folder, written from docs/OUTPUT-CONTRACT.md.

Used by the MRML-tier tests (Testing/mrml) and by the in-Slicer self-test when torch is
absent. Built with numpy, SimpleITK and json only (all shipped with Slicer), not with
`uncertaintyseg.files.contract`: the Slicer side is checked against the written contract, not
against the code that also writes it. Box centres come from SimpleITK's own
index-to-physical transform, an oracle independent of Slicer's IJK-to-RAS matrices.

The grid is deliberately awkward: 40 x 48 x 44 voxels (x, y, z), anisotropic spacing and
an oblique direction, so that any axis-order, LPS/RAS or spacing mistake shows.

    python UncertaintySeg/Testing/Python/synthetic_case.py OUT_DIR [brats2018|brats2023]
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZE_XYZ = (40, 48, 44)
SPACING_XYZ = (0.9, 1.1, 2.0)
ORIGIN_LPS = (12.5, -30.0, 7.0)
TUMOUR_CENTRE_XYZ = (20.0, 22.0, 21.0)  # voxel index


def _direction() -> np.ndarray:
    # Oblique: 20 degrees about z, then 10 degrees about x (a proper rotation).
    a, b = np.radians(20.0), np.radians(10.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def _image(array: np.ndarray):
    import SimpleITK as sitk

    is_4d = array.ndim == 4
    image = sitk.GetImageFromArray(array, isVector=False)
    direction = np.eye(4) if is_4d else np.eye(3)
    direction[:3, :3] = _direction()
    image.SetSpacing(SPACING_XYZ + ((1.0,) if is_4d else ()))
    image.SetOrigin(ORIGIN_LPS + ((0.0,) if is_4d else ()))
    image.SetDirection(tuple(direction.ravel()))
    return image


def _write(array: np.ndarray, path: Path) -> None:
    import SimpleITK as sitk

    sitk.WriteImage(_image(array), str(path), useCompression=True)


def _distance_mm() -> np.ndarray:
    """(Z, Y, X) distance in mm from the tumour centre, anisotropy included."""
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in SIZE_XYZ[::-1]),
                          indexing="ij")
    cx, cy, cz = TUMOUR_CENTRE_XYZ
    sx, sy, sz = SPACING_XYZ
    return np.sqrt(((x - cx) * sx) ** 2 + ((y - cy) * sy * 0.8) ** 2 + ((z - cz) * sz) ** 2)


def make_labels(convention: str) -> np.ndarray:
    """(Z, Y, X) uint8: NCR core, ET shell, ED around; ET = 4 or 3 by convention."""
    d = _distance_mm()
    labels = np.zeros(d.shape, np.uint8)
    labels[d < 14.0] = 2
    labels[d < 8.0] = 3 if convention == "brats2023" else 4
    labels[d < 4.5] = 1
    return labels


def _regions(labels: np.ndarray) -> np.ndarray:
    et = (labels == 3) | (labels == 4)
    return np.stack([et, et | (labels == 1), labels > 0]).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _maps(labels: np.ndarray):
    """Probabilities and normalised entropy (3, Z, Y, X) in ET, TC, WT order.

    Analytic: each region's probability falls off across its border, more slowly on
    the +x side of the tumour, so uncertainty is highest at the borders and on that side
    (where the boxes of BOXES are meant to sit). `labels` only fixes the shape.
    """
    d = _distance_mm()
    x = np.broadcast_to(np.arange(SIZE_XYZ[0], dtype=np.float32), d.shape)
    width = 0.8 + 2.0 * np.clip((x - TUMOUR_CENTRE_XYZ[0]) / 8.0, 0.0, 1.0)
    wt = _sigmoid((14.0 - d) / width)
    tc = _sigmoid((8.0 - d) / width)
    et = tc * _sigmoid((d - 4.5) / width)
    probs = np.stack([et, tc, wt]).astype(np.float32)
    p = np.clip(probs, 1e-6, 1 - 1e-6)
    entropy = -(p * np.log(p) + (1 - p) * np.log(1 - p)) / np.log(2.0)
    return probs, np.clip(entropy, 0, 1).astype(np.float32)


def _box_record(region, start_ijk, size_ijk, uncertainty) -> dict:
    channel = ("ET", "TC", "WT").index(region)
    (i0, j0, k0), (ni, nj, nk) = start_ijk, size_ijk
    score = float(uncertainty[channel, k0:k0 + nk, j0:j0 + nj, i0:i0 + ni].sum())
    reference = _image(np.zeros(SIZE_XYZ[::-1], np.uint8))
    centre = reference.TransformContinuousIndexToPhysicalPoint(
        [s + (n - 1) / 2.0 for s, n in zip(start_ijk, size_ijk)])
    axes = _direction() * np.array([[-1.0], [-1.0], [1.0]])
    return {"region": region, "rank": 0, "score": score, "score_fraction": 0.0,
            "start_ijk": list(start_ijk), "size_ijk": list(size_ijk),
            "center_ras": [-centre[0], -centre[1], centre[2]],
            "size_mm": [n * s for n, s in zip(size_ijk, SPACING_XYZ)],
            "axes_ras": axes.tolist()}


# (region, start_ijk, size_ijk): about 16 mm cubes for ET/TC, 29-32 mm for WT, on the
# uncertain (+x) side of the tumour.
BOXES = (("ET", (18, 10, 16), (18, 15, 8)), ("ET", (18, 24, 16), (18, 15, 8)),
         ("TC", (15, 16, 17), (18, 15, 8)), ("WT", (8, 6, 13), (32, 29, 16)))


def _boxes(uncertainty: np.ndarray) -> dict:
    """Records as the pipeline orders them: by region, then rank (score, descending)."""
    records = [_box_record(region, start, size, uncertainty) for region, start, size in BOXES]
    ordered = []
    for region in ("ET", "TC", "WT"):
        mine = sorted((r for r in records if r["region"] == region), key=lambda r: -r["score"])
        for rank, record in enumerate(mine, start=1):
            record.update(rank=rank, score_fraction=record["score"] / mine[0]["score"])
        ordered += mine
    return {"format_version": 1, "coordinate_system": "RAS", "boxes": ordered}


def _inputs(labels: np.ndarray, folder: Path, convention: str) -> dict[str, str]:
    d = _distance_mm()
    brain = np.clip(1.2 - d / 45.0, 0, None) * 300.0
    tumour = {"flair": labels > 0, "t1": labels == 1, "t1ce": np.isin(labels, (3, 4)),
              "t2": labels == 2}
    gain = {"flair": 500.0, "t1": -150.0, "t1ce": 700.0, "t2": 400.0}
    suffix = ({"flair": "-t2f", "t1": "-t1n", "t1ce": "-t1c", "t2": "-t2w"}
              if convention == "brats2023" else {m: f"_{m}" for m in gain})
    paths = {}
    for modality in gain:
        image = (brain + gain[modality] * tumour[modality]).astype(np.float32)
        path = folder / f"Synthetic{suffix[modality]}.nii.gz"
        _write(image, path)
        paths[modality] = str(path)
    return paths


def _report(labels, uncertainty, boxes, paths, convention) -> dict:
    voxel_ml = float(np.prod(SPACING_XYZ)) / 1000.0
    regions = _regions(labels)
    zone = labels > 0
    score = float(uncertainty.max(axis=0)[zone].mean())
    return {
        "software": {"name": "uncertaintyseg", "version": "test"},
        "model": {"name": "fixture", "version": "0", "trained": False,
                  "description": "synthetic MRML-tier fixture"},
        "input": {"case_id": "Synthetic", "paths": paths, "naming": convention,
                  "label_convention": convention, "shape_zyx": list(labels.shape),
                  "spacing_zyx": list(SPACING_XYZ[::-1])},
        "settings": {"projections": "preview", "kernel_mm": [16, 16, 32]},
        "device": {"name": "cpu"},
        "timings_s": {"total": 0.0},
        "boxes_per_region": {r: sum(b["region"] == r for b in boxes["boxes"])
                             for r in ("ET", "TC", "WT")},
        "volumes_ml": {r: float(regions[i].sum()) * voxel_ml for i, r in enumerate(("ET", "TC", "WT"))},
        "triage": {"score": round(score, 4), "threshold": 0.3,
                   "flag": "review" if score >= 0.3 else "routine",
                   "hint": "fixture hint: check the boxes first."},
    }


@dataclass
class FixtureCase:
    """Paths and arrays of a synthetic case and its output folder."""

    convention: str
    input_dir: Path
    output_dir: Path
    labels: np.ndarray        # (Z, Y, X) as written
    uncertainty: np.ndarray   # (3, Z, Y, X)
    boxes: list
    report: dict


def write_fixture_case(root: Path, convention: str = "brats2018") -> FixtureCase:
    """Write input volumes and a complete output folder under `root`."""
    root = Path(root)
    input_dir, output_dir = root / "input", root / "output"
    input_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    labels = make_labels(convention)
    probs, uncertainty = _maps(labels)
    p3d = np.where(uncertainty > 0.05, probs, -1.0).astype(np.float32)
    _write(labels, output_dir / "segmentation.nii.gz")
    for name, array in (("probabilities", probs), ("probabilities_2d", probs),
                        ("probabilities_3d", p3d), ("uncertainty", uncertainty)):
        _write(array, output_dir / f"{name}.nii.gz")
    boxes = _boxes(uncertainty)
    paths = _inputs(labels, input_dir, convention)
    report = _report(labels, uncertainty, boxes, paths, convention)
    (output_dir / "refinement_boxes.json").write_text(json.dumps(boxes, indent=2))
    (output_dir / "report.json").write_text(json.dumps(report, indent=2))
    return FixtureCase(convention, input_dir, output_dir, labels, uncertainty,
                       boxes["boxes"], report)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "synthetic_case")
    case = write_fixture_case(target, sys.argv[2] if len(sys.argv) > 2 else "brats2018")
    print(f"inputs: {case.input_dir}\noutput folder: {case.output_dir}")
