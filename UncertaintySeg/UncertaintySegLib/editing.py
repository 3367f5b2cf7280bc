"""Setting up the Segment Editor on a result, leaving the user's overwrite mode alone.

BraTS *labels* are exclusive (one class per voxel) although the regions are nested (ET in
TC in WT), so Slicer's default "Overwrite all" is the right mode: painting enhancing
voxels as NCR or ED moves them out of ET, and the export shows the correction (review
W2). The editor's parameter node is one per scene (SegmentEditor.py), so the mode is not
changed here: a user who chose another mode for other work keeps it (review m8). Where
a mode without overwriting left a voxel in two segments, the exporter gives it to the
segment edited last (export.py `merge_order`).
"""

from __future__ import annotations


def configure_segment_editor(editor_node, segmentation, source_volume=None,
                             selected_segment: str = "ET") -> None:
    """Point a vtkMRMLSegmentEditorNode at `segmentation`, painting allowed everywhere.

    `selected_segment` is a segment name (NCR, ED, ET); `source_volume` is the volume the
    effects read intensities from (the FLAIR or T1ce input). The overwrite mode is kept.
    """
    editor_node.SetAndObserveSegmentationNode(segmentation)
    if source_volume is not None:
        editor_node.SetAndObserveSourceVolumeNode(source_volume)
    editor_node.SetMaskMode(_paint_allowed_everywhere(segmentation))
    editor_node.SetSourceVolumeIntensityMask(False)
    segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName(selected_segment)
    if segment_id:
        editor_node.SetSelectedSegmentID(segment_id)


def _paint_allowed_everywhere(segmentation) -> int:
    # The mask mode constants live on vtkMRMLSegmentationNode (EditAllowed*).
    return segmentation.EditAllowedEverywhere


def editor_overwrites(editor_node) -> bool:
    """False when the editor is in "Allow overlap" (OverwriteNone): then the export's
    edited-last rule decides voxels that two segments hold (review_panel says so)."""
    return editor_node.GetOverwriteMode() != editor_node.OverwriteNone
