"""Setting up the Segment Editor on a result so that correcting one region keeps the others.

BraTS classes are disjoint but the regions are nested (ET in TC in WT): painting NCR
into edema must not erase the edema's extent of the whole tumour, and painting ED must
not cut holes in the core. With overwrite-none every edit adds to (or removes from) the
selected segment only; the exporter then resolves overlaps toward the inner class.
"""

from __future__ import annotations


def configure_segment_editor(editor_node, segmentation, source_volume=None,
                             selected_segment: str = "ET") -> None:
    """Point a vtkMRMLSegmentEditorNode at `segmentation` with overwrite-none masking.

    `selected_segment` is a segment name (NCR, ED, ET); `source_volume` is the volume the
    effects read intensities from (the FLAIR or T1ce input).
    """
    editor_node.SetAndObserveSegmentationNode(segmentation)
    if source_volume is not None:
        editor_node.SetAndObserveSourceVolumeNode(source_volume)
    editor_node.SetOverwriteMode(editor_node.OverwriteNone)
    editor_node.SetMaskMode(_paint_allowed_everywhere(segmentation))
    editor_node.SetSourceVolumeIntensityMask(False)
    segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName(selected_segment)
    if segment_id:
        editor_node.SetSelectedSegmentID(segment_id)


def _paint_allowed_everywhere(segmentation) -> int:
    # The mask mode constants live on vtkMRMLSegmentationNode (EditAllowed*).
    return segmentation.EditAllowedEverywhere


def editor_is_overwrite_none(editor_node) -> bool:
    """True when the editor keeps other segments intact (used by the Widget's status)."""
    return editor_node.GetOverwriteMode() == editor_node.OverwriteNone
