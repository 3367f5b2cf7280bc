"""Segment names, label values, colours and terminology of the three BraTS sub-regions.

Pure Python (no slicer import): the loader, the exporter and the Widget share these.

The label map written by the pipeline uses the input's BraTS convention:
- ``brats2018`` (BraTS 2017-2021): 1 NCR/NET, 2 ED, 4 ET
- ``brats2023`` (BraTS 2023+):     1 NCR,     2 ED, 3 ET
"""

from __future__ import annotations

from dataclasses import dataclass

from uncertaintyseg_shared.palette import REGION_COLOURS as PALETTE_REGION_COLOURS

DEFAULT_CONVENTION = "brats2018"


@dataclass(frozen=True)
class SegmentSpec:
    """One BraTS label class as a Slicer segment.

    `colour` is RGB in [0, 1]; `terminology` the Slicer terminology entry string
    (category, type: SNOMED CT codes); `opacity_3d` the closed-surface opacity, lower for
    the outer classes so that the inner ones stay visible in 3D.
    """

    name: str
    description: str
    colour: tuple[float, float, float]
    terminology: str
    opacity_3d: float


def _terminology(type_code: str, type_meaning: str) -> str:
    # Slicer's terminology entry string: context~category~type~modifier~anatomic context~
    # region~region modifier. Category "Morphologically Altered Structure" (SCT 49755003).
    return ("Segmentation category and type - DICOM master list"
            "~SCT^49755003^Morphologically Altered Structure"
            f"~SCT^{type_code}^{type_meaning}~^^"
            "~Anatomic codes - DICOM master list~^^~^^")


def _rgb(r: int, g: int, b: int) -> tuple[float, float, float]:
    return (r / 255.0, g / 255.0, b / 255.0)


# NCR and ED take the recommended colours of their DICOM terminology entries (Necrosis,
# Edema). The terminology gives no colour for "Neoplasm", so ET gets a saturated blue
# that stands apart from both and from the yellow-to-red uncertainty heatmap.
SEGMENTS = (
    SegmentSpec("NCR", "necrotic and non-enhancing tumour core", _rgb(216, 191, 216),
                _terminology("6574001", "Necrosis"), 0.6),
    SegmentSpec("ED", "peritumoral edema", _rgb(140, 224, 228),
                _terminology("79654002", "Edema"), 0.25),
    SegmentSpec("ET", "enhancing tumour", _rgb(30, 120, 255),
                _terminology("108369006", "Neoplasm"), 1.0),
)
SEGMENT_NAMES = tuple(spec.name for spec in SEGMENTS)

# Merge order for a label map among segments edited at the same time (one shared labelmap
# layer, so they cannot overlap): export.merge_order puts the segment edited last last.
EXPORT_ORDER = ("ED", "NCR", "ET")

# Box outlines: ET as its segment; TC and WT in colours the heatmap does not use. Shared
# with snapshot.png (uncertaintyseg.palette).
REGION_COLOURS = PALETTE_REGION_COLOURS


def normalise_convention(value: str | None) -> str:
    """Map a report's `label_convention` (or naming) to "brats2018" or "brats2023".

    Unknown or missing values fall back to brats2018, the convention of most data sets.
    """
    text = (value or "").lower()
    return "brats2023" if "2023" in text or "2024" in text else DEFAULT_CONVENTION


def label_values(convention: str) -> dict[str, int]:
    """Label value of each segment name in a convention."""
    et = 3 if normalise_convention(convention) == "brats2023" else 4
    return {"NCR": 1, "ED": 2, "ET": et}


def convention_from_labels(values) -> str:
    """Guess the convention from the label values present (3 only exists in 2023+)."""
    present = {int(v) for v in values}
    return "brats2023" if 3 in present and 4 not in present else DEFAULT_CONVENTION


def spec(name: str) -> SegmentSpec:
    """The SegmentSpec of a segment name (NCR, ED, ET)."""
    for item in SEGMENTS:
        if item.name == name:
            return item
    raise KeyError(f"unknown segment {name!r}: expected one of {', '.join(SEGMENT_NAMES)}")
