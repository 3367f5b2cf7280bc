"""Reading volumes and building colour tables in a scene (Slicer or slicer-core).

The 3D NIfTI files go through Slicer's own reader (vtkSlicerVolumesLogic), so the
geometry is Slicer's. The 4D files of the contract (region on the 4th axis) are read with
SimpleITK, which Slicer also ships, and put on the grid of the segmentation node that was
read from the same folder, after checking that the sizes and spacings agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uncertaintyseg_shared.palette import heatmap_rgba

from .segments import SEGMENTS, label_values


class ResultFolderError(ValueError):
    """An output folder that does not follow docs/OUTPUT-CONTRACT.md."""


def read_scalar_volume(volumes_logic, path: Path, name: str, labelmap: bool = False):
    """A scalar (or label map) volume node read from a 3D image file, in the logic's scene."""
    path = Path(path)
    if not path.is_file():
        raise ResultFolderError(f"{path}: file not found; run the pipeline again or pick "
                                "the right output folder")
    node = volumes_logic.AddArchetypeVolume(str(path), name, 1 if labelmap else 0)
    if node is None:
        raise ResultFolderError(f"{path}: Slicer could not read this file as a 3D volume")
    return node


def read_channel(path: Path, channel: int, reference_node) -> np.ndarray:
    """Channel `channel` of a 4D contract image as a (Z, Y, X) float32 array, checked
    against the grid of `reference_node` (voxel counts and spacing). Quantised maps
    (uint16 with NIfTI scl_slope / scl_inter, docs/OUTPUT-CONTRACT.md) read as float32
    values like the float32 maps of older folders: ITK applies the scaling on reading
    (the ITK 5.4 / SimpleITK 2.5 of Slicer 5.10, SuperBuild/External_ITK.cmake)."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    if image.GetDimension() != 4 or image.GetSize()[3] <= channel:
        raise ResultFolderError(f"{path}: expected a 4D image with the regions ET, TC, WT on "
                                f"the 4th axis, found size {image.GetSize()}")
    dims = tuple(reference_node.GetImageData().GetDimensions())
    spacing = tuple(reference_node.GetSpacing())
    if tuple(image.GetSize()[:3]) != dims or not np.allclose(image.GetSpacing()[:3], spacing,
                                                             atol=1e-4):
        raise ResultFolderError(f"{path}: grid {image.GetSize()[:3]} / {image.GetSpacing()[:3]} "
                                f"differs from segmentation.nii.gz ({dims} / {spacing}); the "
                                "output folder mixes two runs: run the pipeline again")
    # A copy: the array view is only valid while `image` lives, i.e. inside this function.
    return np.array(sitk.GetArrayViewFromImage(image)[channel], dtype=np.float32, copy=True)


def array_to_volume(scene, array_zyx: np.ndarray, reference_node, name: str, node=None):
    """A scalar volume node holding `array_zyx` on the grid of `reference_node`.

    Reuses `node` when given (its voxels are replaced); returns the node.
    """
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData

    array = np.ascontiguousarray(array_zyx, dtype=np.float32)
    image = vtkImageData()
    image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    scalars = numpy_to_vtk(array.ravel(), deep=True)
    scalars.SetName("uncertainty")
    image.GetPointData().SetScalars(scalars)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.CopyOrientation(reference_node)
    node.SetAndObserveImageData(image)
    return node


def volume_array(node) -> np.ndarray:
    """A (Z, Y, X) copy of a volume node's voxels."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    image = node.GetImageData()
    dims = image.GetDimensions()
    return vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1]).copy()


def segment_colour_table(scene, convention: str, name: str = "UncertaintySeg labels"):
    """A colour table naming the label values of `convention` NCR, ED, ET (in the scene).

    Used to import and export label maps: the names tie each label value to its segment.
    """
    table = scene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
    table.SetTypeToUser()
    values = label_values(convention)
    table.SetNumberOfColors(max(values.values()) + 1)
    table.SetColor(0, "Background", 0.0, 0.0, 0.0, 0.0)
    for index in range(1, table.GetNumberOfColors()):
        table.SetColor(index, "(unused)", 0.0, 0.0, 0.0, 0.0)
    for item in SEGMENTS:
        table.SetColor(values[item.name], item.name, *item.colour, 1.0)
    table.SetAttribute("Category", "UncertaintySeg")
    return table


HEATMAP_TABLE_NAME = "UncertaintySeg heatmap"


def _heatmap_rgba(t: float) -> tuple[float, float, float, float]:
    return heatmap_rgba(t)  # one palette for the snapshot, the module and the .mrb


def heatmap_colour_table(scene, entries: int = 256):
    """The project's heatmap colour table (one per scene, created on first use)."""
    existing = scene.GetFirstNodeByName(HEATMAP_TABLE_NAME)
    if existing is not None and existing.IsA("vtkMRMLColorTableNode"):
        return existing
    table = scene.AddNewNodeByClass("vtkMRMLColorTableNode", HEATMAP_TABLE_NAME)
    table.SetTypeToUser()
    table.SetNumberOfColors(entries)
    for index in range(entries):
        table.SetColor(index, f"{index / (entries - 1):.3f}", *_heatmap_rgba(index / (entries - 1)))
    table.SetAttribute("Category", "UncertaintySeg")
    return table
