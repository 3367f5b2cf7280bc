"""Choosing the four input volumes from their names, and checking they share one grid.

Name matching is pure Python. The grid check takes volume nodes (anything with
GetName, GetImageData, GetIJKToRASMatrix, GetParentTransformNode); `write_inputs` writes
them as NIfTI with Slicer's own volume writer, imported only when called.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# the pipeline's channel order and BraTS file names (the package's __init__ imports nothing)
from uncertaintyseg_shared.brats import BRATS_SEPARATORS, BRATS_SUFFIXES, MODALITIES

LABELS = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1ce", "t2": "T2"}

_FLAIR = {"flair", "t2f", "t2flair", "fl", "tirm", "darkfluid"}
_T1CE = {"t1ce", "t1c", "t1gd", "t1post", "t1wce", "t1+c", "t1+gd", "t1wc", "cet1", "t1cet",
         "t1contrast", "t1km", "t1ge", "mprage+c", "t1wpost", "t1cepost"}
_CONTRAST = {"ce", "gd", "gad", "post", "contrast", "enhanced", "+c", "+gd", "km", "c"}
_T1 = {"t1", "t1n", "t1w", "t1native", "t1pre", "mprage", "t1wpre"}
_T2 = {"t2", "t2w", "t2tse", "t2wi"}
_BRATS2023 = set(BRATS_SUFFIXES["brats2023"].values())


class GridMismatchError(ValueError):
    """The four volumes are not on one grid (or one sits under a transform)."""


def _tokens(name: str) -> list[str]:
    lowered = name.lower().replace("t2-flair", "t2flair").replace("t2_flair", "t2flair")
    return [t for t in re.split(r"[^a-z0-9+]+", lowered) if t]


def guess_modality(name: str) -> str | None:
    """The modality a volume name suggests ("flair", "t1", "t1ce", "t2") or None.

    Accepts BraTS 2017-2021 suffixes (_flair, _t1, _t1ce, _t2), BraTS 2023+ (-t2f, -t1n,
    -t1c, -t2w) and common variants (T2-FLAIR, T1 post contrast, T1+C, T1Gd, T2w, ...).
    """
    tokens = _tokens(name)
    joined = set(tokens)
    if joined & _FLAIR or any("flair" in t for t in tokens):
        return "flair"
    if joined & _T1CE:
        return "t1ce"
    if joined & _T1:
        return "t1ce" if joined & _CONTRAST else "t1"
    if joined & _T2:
        return "t2"
    return None


def naming_from_names(names) -> str:
    """"brats2023" when any name uses the BraTS 2023+ suffixes, else "brats2018"."""
    for name in names:
        if set(_tokens(name)) & _BRATS2023:
            return "brats2023"
    return "brats2018"


def auto_pick(names: list[str]) -> dict[str, int | None]:
    """Index into `names` chosen for each modality (None where nothing matches).

    The first matching name wins; a name is used for one modality at most.
    """
    picked: dict[str, int | None] = {m: None for m in MODALITIES}
    for index, name in enumerate(names):
        modality = guess_modality(name)
        if modality is not None and picked[modality] is None:
            picked[modality] = index
    return picked


@dataclass
class VolumeSelection:
    """The four input volume nodes, by modality; the user may override any of them."""

    nodes: dict = field(default_factory=lambda: {m: None for m in MODALITIES})

    @classmethod
    def from_nodes(cls, nodes) -> "VolumeSelection":
        """Pick automatically from a list of volume nodes, by their names."""
        nodes = list(nodes)
        picked = auto_pick([n.GetName() for n in nodes])
        return cls({m: (nodes[i] if i is not None else None) for m, i in picked.items()})

    def set(self, modality: str, node) -> None:
        if modality not in MODALITIES:
            raise KeyError(f"unknown modality {modality!r}: use one of {', '.join(MODALITIES)}")
        self.nodes[modality] = node

    def missing(self) -> list[str]:
        return [LABELS[m] for m in MODALITIES if self.nodes.get(m) is None]

    def alive(self) -> bool:
        """Every chosen node is still in a scene: vtkMRMLScene::RemoveNode (e.g. on File >
        Close Scene) sets a node's scene to null, and its references stop resolving."""
        return all(n is not None and n.GetScene() is not None for n in self.nodes.values())

    def naming(self) -> str:
        return naming_from_names(n.GetName() for n in self.nodes.values() if n is not None)

    def validate(self, tolerance_mm: float = 1e-3) -> None:
        """Raise GridMismatchError (a ValueError) with a readable message if unusable."""
        missing = self.missing()
        if missing:
            raise GridMismatchError(f"Select a volume for {', '.join(missing)} "
                                    "(the pipeline needs FLAIR, T1, T1ce and T2).")
        check_same_grid({LABELS[m]: self.nodes[m] for m in MODALITIES}, tolerance_mm)


def _grid(node) -> tuple[tuple[int, int, int], list[float]]:
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    image = node.GetImageData()
    if image is None:
        raise GridMismatchError(f"Volume '{node.GetName()}' holds no image data; load it again.")
    matrix = vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return tuple(image.GetDimensions()), [matrix.GetElement(r, c) for r in range(3) for c in range(4)]


def check_same_grid(named_nodes: dict, tolerance_mm: float = 1e-3) -> None:
    """All volumes must have the same voxel counts and IJK-to-RAS matrix, and none may sit
    under a transform (the pipeline reads the voxels as stored, not as displayed).

    `tolerance_mm` bounds the difference of every matrix element (spacing-scaled axes and
    origin, in mm).
    """
    items = list(named_nodes.items())
    for label, node in items:
        if node.GetParentTransformNode() is not None:
            raise GridMismatchError(
                f"{label} volume '{node.GetName()}' is under a transform. Harden the transform "
                "(Data module, right-click > Harden transform) or resample it, then Apply again.")
    first_label, first = items[0]
    dims0, matrix0 = _grid(first)
    for label, node in items[1:]:
        dims, matrix = _grid(node)
        if dims != dims0:
            raise GridMismatchError(
                f"{label} volume '{node.GetName()}' has {'x'.join(map(str, dims))} voxels but "
                f"{first_label} '{first.GetName()}' has {'x'.join(map(str, dims0))}. All four "
                f"volumes must be on one grid: resample {label} onto {first_label} (module "
                "'Resample Scalar/Vector/DWI Volume', reference volume = "
                f"{first_label}).")
        worst = max(abs(a - b) for a, b in zip(matrix, matrix0))
        if worst > tolerance_mm:
            raise GridMismatchError(
                f"{label} volume '{node.GetName()}' has the same size as {first_label} "
                f"'{first.GetName()}' but a different position, spacing or orientation "
                f"(differs by up to {worst:.3g} mm). Register and resample it onto "
                f"{first_label} first.")


def candidate_volumes(scene) -> list:
    """Scalar volumes that may be inputs: no label maps, no heatmaps of earlier runs."""
    from .context import nodes_by_class

    return [n for n in nodes_by_class(scene, "vtkMRMLScalarVolumeNode")
            if not n.IsA("vtkMRMLLabelMapVolumeNode")
            and n.GetAttribute("UncertaintySeg.Heatmap") != "1"]


def heatmap_ids(scene) -> list[str]:
    """IDs of the heatmap volumes of earlier runs, which the input selectors hide: one on
    FLAIR's grid would pass the grid check as T2 (review m4)."""
    from .context import nodes_by_class

    return [n.GetID() for n in nodes_by_class(scene, "vtkMRMLScalarVolumeNode")
            if n.GetAttribute("UncertaintySeg.Heatmap") == "1"]


def input_file_names(case_id: str, naming: str) -> dict[str, str]:
    """File names for the four modalities in a naming convention the pipeline reads."""
    naming = naming if naming in BRATS_SUFFIXES else "brats2018"
    suffix, separator = BRATS_SUFFIXES[naming], BRATS_SEPARATORS[naming]
    return {m: f"{case_id}{separator}{suffix[m]}.nii.gz" for m in MODALITIES}


def write_inputs(selection: VolumeSelection, folder, case_id: str = "case") -> dict[str, Path]:
    """Write the four volumes as NIfTI files into `folder`, named as the selection's BraTS
    convention (so the pipeline writes ET with the input's label value).

    Returns the path per modality. Uses Slicer's volume writer, which keeps the geometry.
    """
    import slicer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for modality, filename in input_file_names(case_id, selection.naming()).items():
        path = folder / filename
        writer = slicer.vtkMRMLVolumeArchetypeStorageNode()
        writer.SetFileName(str(path))
        writer.SetUseCompression(True)
        if not writer.WriteData(selection.nodes[modality]) or not path.is_file():
            raise OSError(f"could not write {LABELS[modality]} to {path}: check the free disk "
                          "space and the permissions of the temporary folder")
        paths[modality] = path
    return paths
