"""The (edited) segmentation back to a BraTS label map on the input's grid.

The label value of each segment comes from an explicit colour table built for the
convention (names NCR, ED, ET): without one, Slicer numbers the segments 1, 2, 3 in
order, and ET = 4 would come back as 3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .segments import EXPORT_ORDER, label_values, normalise_convention
from .volumes import segment_colour_table, volume_array
from .context import remove_with_helpers

ATTR_CONVENTION = "UncertaintySeg.LabelConvention"


class ExportError(ValueError):
    """The segmentation cannot be exported as asked."""


def _string_array(values):
    """A vtkStringArray, as Slicer's own Python passes segment IDs (slicer.util,
    SegmentEditorMaskVolumeEffect.py): a list relies on the wrapper's std::vector
    conversion, which was not checked for every VTK that Slicer ships (review U3)."""
    from vtkmodules.vtkCommonCore import vtkStringArray

    array = vtkStringArray()
    for value in values:
        array.InsertNextValue(value)
    return array


def _edit_time(segment) -> int:
    """When the segment's voxels last changed: the VTK modification time of its binary
    labelmap (one counter for all VTK objects, so times of different segments compare)."""
    import slicer

    name = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
    labelmap = segment.GetRepresentation(name)
    return labelmap.GetMTime() if labelmap is not None else 0


def merge_order(segmentation_node) -> list[str]:
    """IDs of the NCR, ED and ET segments in the order they are drawn into the label map:
    the segment edited last comes last and wins a voxel that two segments hold.

    Slicer draws later segments over earlier ones (vtkSegmentation::GenerateSharedLabelmap,
    v5.10.0 vtkSegmentation.cxx:1680). With the editor's default "Overwrite all" no voxel
    is in two segments and the order does not matter; in "Allow overlap" the user's latest
    edit is what they meant (review W2). Segments sharing one labelmap layer have the same
    time and cannot overlap; they keep EXPORT_ORDER (the sort is stable).
    """
    # Not named `segmentation`: class_names.TYPES gives that name the node's class.
    segments = segmentation_node.GetSegmentation()
    ids = [segments.GetSegmentIdBySegmentName(name) for name in EXPORT_ORDER]
    ids = [segment_id for segment_id in ids if segment_id]
    return sorted(ids, key=lambda segment_id: _edit_time(segments.GetSegment(segment_id)))


class LabelExporter:
    """Writes segmentation nodes as uint8 BraTS label maps.

    `logics` is a context.SceneLogics (scene + Segmentations module logic).
    """

    def __init__(self, logics):
        self.scene = logics.scene
        self.segmentations = logics.segmentations

    def to_labelmap_node(self, segmentation, reference_volume, convention: str | None = None):
        """A new label map volume node (in the scene) on `reference_volume`'s grid.

        Segments are merged in `merge_order`, so a voxel that an edit left in two segments
        takes the class of the segment edited last. The caller removes it with
        `remove_labelmap`.
        """
        import slicer

        convention = normalise_convention(
            convention or segmentation.GetAttribute(ATTR_CONVENTION))
        ids = self._segment_ids(segmentation)
        table = segment_colour_table(self.scene, convention, "UncertaintySeg export labels")
        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "export labels")
        # Slicer 5.10 adds a "<segmentation>_ColorTable" node to the scene when the label
        # map's colour node is not of User type (vtkSlicerSegmentationsModuleLogic.cxx
        # v5.10.0 ExportSegmentsToLabelmapNode); a new label map has the Labels table.
        # Giving it our table first leaves no stray node behind (review #12).
        labelmap.CreateDefaultDisplayNodes()
        labelmap.GetDisplayNode().SetAndObserveColorNodeID(table.GetID())
        try:
            ok = self.segmentations.ExportSegmentsToLabelmapNode(
                segmentation, _string_array(ids), labelmap, reference_volume,
                slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY, table)
            if not ok:
                raise ExportError("Slicer could not export the segments as a label map")
        except Exception:
            self.remove_labelmap(labelmap)
            raise
        finally:
            self.scene.RemoveNode(table)
        self._check_values(labelmap, convention)
        return labelmap

    @staticmethod
    def _segment_ids(segmentation) -> list[str]:
        ids, missing = merge_order(segmentation), []
        for name in EXPORT_ORDER:
            if not segmentation.GetSegmentation().GetSegmentIdBySegmentName(name):
                missing.append(name)
        if missing:
            raise ExportError(f"segment(s) {', '.join(missing)} not found in "
                              f"'{segmentation.GetName()}': keep the names NCR, ED and ET "
                              "(rename them back in the Segment Editor) and export again")
        return ids

    @staticmethod
    def _check_values(labelmap, convention: str) -> None:
        allowed = {0, *label_values(convention).values()}
        found = set(np.unique(volume_array(labelmap)).tolist())
        if not found <= allowed:
            raise ExportError(f"export produced label values {sorted(found - allowed)} outside "
                              f"{sorted(allowed)}: the colour table did not map the segments")

    def export(self, segmentation, reference_volume, path, convention: str | None = None) -> Path:
        """Write the label map as NIfTI (uint8, `reference_volume`'s geometry); returns path."""
        from vtkmodules.vtkImagingCore import vtkImageCast

        import slicer

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        labelmap = self.to_labelmap_node(segmentation, reference_volume, convention)
        try:
            cast = vtkImageCast()
            cast.SetInputData(labelmap.GetImageData())
            cast.SetOutputScalarTypeToUnsignedChar()
            cast.Update()
            labelmap.SetAndObserveImageData(cast.GetOutput())
            writer = slicer.vtkMRMLVolumeArchetypeStorageNode()
            writer.SetFileName(str(path))
            writer.SetUseCompression(True)
            if not writer.WriteData(labelmap):
                raise ExportError(f"could not write {path}: check the folder's permissions")
        finally:
            self.remove_labelmap(labelmap)
        return path

    def remove_labelmap(self, labelmap) -> None:
        """Remove a label map made by `to_labelmap_node` with its display node."""
        remove_with_helpers(self.scene, labelmap)
