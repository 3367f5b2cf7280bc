"""An output folder (docs/OUTPUT-CONTRACT.md) into MRML nodes, under one folder per run.

`ResultLoader(logics).load(out_dir)` adds:
- a segmentation node with segments NCR, ED, ET (terminology, colours, label values of
  the input's convention, reference geometry of the input, closed surfaces for 3D);
- the uncertainty of one region as a scalar volume shown as a thresholded heatmap with
  the project's own colour table (put in the slice views' foreground by
  `show_in_slice_views`);
- one locked markups ROI node per refinement box (region, rank, score as attributes);
all under one subject-hierarchy folder, so several runs can sit side by side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from uncertaintyseg_shared.brats import REGIONS
from uncertaintyseg_shared.palette import (HEATMAP_OPACITY, HEATMAP_THRESHOLD, MAP_LABELS,
                                           written_map)
from uncertaintyseg_shared.contract_names import (BOXES_FILE, IMAGE_FILES, REPORT_FILE,
                                           SEGMENTATION_FILE)

from .context import nodes_by_class
from .segments import (REGION_COLOURS, SEGMENTS, convention_from_labels, label_values,
                       normalise_convention)
from .volumes import (ResultFolderError, array_to_volume, heatmap_colour_table, read_channel,
                      read_scalar_volume, segment_colour_table, volume_array)
from .context import remove_with_helpers

# The heatmap legend's title when the report does not name its map (older folders).
LEGEND_TITLE = "Uncertainty (0-1)"


def legend_title(report: dict) -> str:
    """The legend title naming the voxel map the run wrote (report.json), so that the
    default error probability does not read as an entropy (issue 17)."""
    label = MAP_LABELS.get(written_map(report))
    return f"{label[0].upper()}{label[1:]} (0-1)" if label else LEGEND_TITLE

UNCERTAINTY_FILE = IMAGE_FILES["uncertainty"]
REQUIRED_FILES = (SEGMENTATION_FILE, UNCERTAINTY_FILE, BOXES_FILE, REPORT_FILE)
ATTR = "UncertaintySeg."  # prefix of every node / item attribute the module sets


@dataclass(frozen=True)
class HeatmapSettings:
    """How the uncertainty volume is displayed: values in [0, 1], the run's voxel map
    (by default the error probability; report.json `uncertainty_map`)."""

    threshold: float = HEATMAP_THRESHOLD  # below: transparent (as in snapshot.png)
    opacity: float = HEATMAP_OPACITY      # foreground layer opacity in the slice views
    window_min: float = 0.0
    window_max: float = 1.0


@dataclass
class LoadedRun:
    """The nodes one output folder produced (see ResultLoader.load)."""

    output_dir: Path
    folder_item: int
    segmentation: object
    uncertainty: object
    uncertainty_region: str
    rois: list
    boxes: list
    report: dict
    convention: str
    reference_volume: object = None
    extra_nodes: list = field(default_factory=list)


def read_contract(out_dir) -> tuple[dict, list]:
    """(report, boxes) of an output folder; ResultFolderError if it is incomplete."""
    out_dir = Path(out_dir)
    missing = [name for name in REQUIRED_FILES if not (out_dir / name).is_file()]
    if missing:
        raise ResultFolderError(f"{out_dir}: not a complete UncertaintySeg output folder "
                                f"(missing {', '.join(missing)}); choose the folder that "
                                "`uncertaintyseg predict --out` wrote, or run it again")
    try:
        report = json.loads((out_dir / REPORT_FILE).read_text(encoding="utf-8"))
        boxes = json.loads((out_dir / BOXES_FILE).read_text(encoding="utf-8"))
    except ValueError as error:
        raise ResultFolderError(f"{out_dir}: unreadable JSON ({error}); run the pipeline again") from error
    return report, list(boxes.get("boxes", []))


class ResultLoader:
    """Loads output folders into the scene of `logics` (a context.SceneLogics)."""

    def __init__(self, logics, heatmap: HeatmapSettings | None = None):
        self.logics = logics
        self.scene = logics.scene
        self.heatmap = heatmap or HeatmapSettings()

    def load(self, out_dir, reference_volume=None, region: str = "WT",
             run_name: str | None = None) -> LoadedRun:
        """Load one output folder; `reference_volume` (the input FLAIR, if in the scene)
        gives the segmentation its reference geometry. On any error the scene is left as
        it was (ResultFolderError names the file and the fix)."""
        out_dir = Path(out_dir)
        report, boxes = read_contract(out_dir)
        name = run_name or self._run_name(report)
        before = _node_ids(self.scene)
        folder = self._create_folder(name, out_dir, report)
        try:
            run = self._load_nodes(out_dir, report, boxes, name, folder,
                                   reference_volume=reference_volume, region=region)
        except Exception:
            for node_id in _node_ids(self.scene) - before:
                node = self.scene.GetNodeByID(node_id)
                if node is not None:
                    self.scene.RemoveNode(node)  # display and storage nodes are new too
            self.scene.GetSubjectHierarchyNode().RemoveItem(folder)
            raise
        self._file_under_folder(run)
        return run

    def _load_nodes(self, out_dir, report, boxes, name, folder, *, reference_volume, region):
        convention = normalise_convention(report.get("input", {}).get("label_convention"))
        labelmap = read_scalar_volume(self.logics.volumes, out_dir / SEGMENTATION_FILE,
                                      f"{name} labels", labelmap=True)
        try:
            convention = _checked_convention(volume_array(labelmap), convention, out_dir)
            segmentation = self.segmentation_from_labelmap(labelmap, convention, name,
                                                           reference_volume or labelmap)
            uncertainty = array_to_volume(
                self.scene, read_channel(out_dir / UNCERTAINTY_FILE, REGIONS.index(region),
                                         labelmap), labelmap, f"{name} uncertainty {region}")
        finally:
            remove_with_helpers(self.scene, labelmap)
        self.style_heatmap(uncertainty, legend_title(report))
        uncertainty.SetAttribute(ATTR + "Region", region)
        rois = [self._roi(box, name) for box in boxes]
        return LoadedRun(out_dir, folder, segmentation, uncertainty, region, rois, boxes,
                         report, convention, reference_volume)

    def _run_name(self, report: dict) -> str:
        case_id = report.get("input", {}).get("case_id") or "case"
        return f"{case_id} #{len(run_folders(self.scene)) + 1}"

    def _create_folder(self, name: str, out_dir: Path, report: dict) -> int:
        sh = self.scene.GetSubjectHierarchyNode()
        folder = sh.CreateFolderItem(sh.GetSceneItemID(), f"UncertaintySeg {name}")
        sh.SetItemAttribute(folder, ATTR + "Run", "1")
        sh.SetItemAttribute(folder, ATTR + "OutputFolder", str(out_dir))
        triage = report.get("triage", {})
        if "score" in triage:
            sh.SetItemAttribute(folder, ATTR + "TriageScore", f"{float(triage['score']):.4f}")
        return folder

    def segmentation_from_labelmap(self, labelmap, convention: str, name: str, reference):
        """A styled segmentation node (NCR, ED, ET; closed surfaces) imported from a
        label map volume node of `convention`, with the geometry of `reference`."""
        table = segment_colour_table(self.scene, convention)
        try:
            labelmap.GetDisplayNode().SetAndObserveColorNodeID(table.GetID())
            node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{name} segmentation")
            node.CreateDefaultDisplayNodes()
            node.SetReferenceImageGeometryParameterFromVolumeNode(reference)
            if not self.logics.segmentations.ImportLabelmapToSegmentationNode(labelmap, node, ""):
                raise ResultFolderError(f"{SEGMENTATION_FILE} could not be imported as segments")
        finally:
            self.scene.RemoveNode(table)
        self._style_segments(node)
        node.SetAttribute(ATTR + "LabelConvention", convention)
        node.CreateClosedSurfaceRepresentation()
        return node

    @staticmethod
    def _style_segments(node) -> None:
        segmentation = node.GetSegmentation()
        display = node.GetDisplayNode()
        for item in SEGMENTS:
            segment_id = segmentation.GetSegmentIdBySegmentName(item.name)
            if not segment_id:
                # An empty class (no voxel of that label): add it empty so that it can be
                # painted in the Segment Editor and is exported with the right value.
                segment_id = segmentation.AddEmptySegment(item.name, item.name, item.colour)
            segment = segmentation.GetSegment(segment_id)
            segment.SetColor(*item.colour)
            # vtkSegment::SetTerminology is new in Slicer 5.10; it sets this same tag
            # (vtkSegment.cxx v5.10.0), which older versions read too (review #4).
            segment.SetTag(segment.GetTerminologyEntryTagName(), item.terminology)
            display.SetSegmentOpacity3D(segment_id, item.opacity_3d)
        # Outlines with a faint fill in the slice views, so the heatmap under them stays
        # readable.
        display.SetOpacity2DFill(0.15)
        display.SetOpacity2DOutline(1.0)

    def style_heatmap(self, volume, title: str = LEGEND_TITLE) -> None:
        """Apply the heatmap display (colour table, fixed window, threshold) to a volume;
        `title`: its colour legend's (`legend_title(report)`: the map the run wrote)."""
        volume.CreateDefaultDisplayNodes()
        display = volume.GetDisplayNode()
        display.SetAndObserveColorNodeID(heatmap_colour_table(self.scene).GetID())
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(self.heatmap.window_min, self.heatmap.window_max)
        display.AutoThresholdOff()
        display.SetThreshold(self.heatmap.threshold, max(self.heatmap.window_max, 1.0))
        display.ApplyThresholdOn()
        volume.SetAttribute(ATTR + "Heatmap", "1")
        self._add_legend(volume, title)

    @staticmethod
    def _add_legend(volume, title: str) -> None:
        """A colour legend beside the heatmap in the views, so that its colours read as
        values (vtkSlicerColorLogic::AddDefaultColorLegendDisplayNode, static, v5.10.0
        vtkSlicerColorLogic.h:54; review section 6). It is one of the volume's display
        nodes, so it leaves the scene with the volume (context.remove_with_helpers)."""
        import slicer

        legend = slicer.vtkSlicerColorLogic.AddDefaultColorLegendDisplayNode(volume)
        if legend is not None:
            legend.SetTitleText(title)

    def set_uncertainty_region(self, run: LoadedRun, region: str) -> None:
        """Show another region's uncertainty in the same heatmap volume."""
        array = read_channel(run.output_dir / UNCERTAINTY_FILE, REGIONS.index(region),
                             run.uncertainty)
        array_to_volume(self.scene, array, run.uncertainty, "", node=run.uncertainty)
        run.uncertainty.SetName(run.uncertainty.GetName().rsplit(" ", 1)[0] + f" {region}")
        run.uncertainty.SetAttribute(ATTR + "Region", region)
        run.uncertainty_region = region

    def _roi(self, box: dict, name: str):
        from vtkmodules.vtkCommonMath import vtkMatrix4x4

        roi = self.scene.AddNewNodeByClass(
            "vtkMRMLMarkupsROINode", f"{name} {box['region']} box {box['rank']}")
        axes = vtkMatrix4x4()
        for row in range(3):
            for column in range(3):
                axes.SetElement(row, column, float(box["axes_ras"][row][column]))
        roi.GetObjectToNodeMatrix().DeepCopy(axes)
        roi.SetCenter(*map(float, box["center_ras"]))
        roi.SetSize(*map(float, box["size_mm"]))
        roi.SetLocked(True)
        for key in ("region", "rank", "score", "score_fraction"):
            roi.SetAttribute(ATTR + key.title().replace("_", ""), str(box.get(key, "")))
        roi.SetAttribute(ATTR + "Reviewed", "0")
        roi.SetDescription(f"{box['region']} refinement box {box['rank']}, "
                           f"uncertainty score {float(box['score']):.1f}")
        # The markups logic adds the display node only outside scene import/batch
        # processing (vtkSlicerMarkupsLogic::OnMRMLSceneNodeAdded): make sure (#23).
        roi.CreateDefaultDisplayNodes()
        display = roi.GetDisplayNode()
        display.SetSelectedColor(*REGION_COLOURS.get(box["region"], (1.0, 1.0, 1.0)))
        display.SetColor(*REGION_COLOURS.get(box["region"], (1.0, 1.0, 1.0)))
        # Outline only, small centre point: the boxes must not veil the surfaces in 3D.
        display.SetFillVisibility(False)
        display.SetGlyphScale(1.5)
        display.SetHandlesInteractive(False)
        display.SetPropertiesLabelVisibility(False)
        return roi

    def _file_under_folder(self, run: LoadedRun) -> None:
        for node in (run.segmentation, run.uncertainty):
            place_in_folder(self.scene, node, run.folder_item)
        if run.rois:
            sh = self.scene.GetSubjectHierarchyNode()
            boxes_folder = sh.CreateFolderItem(run.folder_item, "Refinement boxes")
            for roi in run.rois:
                place_in_folder(self.scene, roi, boxes_folder)


def place_in_folder(scene, node, folder_item: int) -> int:
    """Move a node's subject hierarchy item under `folder_item`; returns the item.

    In the Slicer application a plugin gives every new node an item; under slicer-core
    nothing does, so the item is created here when missing.
    """
    sh = scene.GetSubjectHierarchyNode()
    item = sh.GetItemByDataNode(node)
    if not item:
        return sh.CreateItem(folder_item, node)
    sh.SetItemParent(item, folder_item)
    return item


def _node_ids(scene) -> set[str]:
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def _checked_convention(labels, convention: str, out_dir: Path) -> str:
    """The report's convention, or the one the label values show when they disagree."""
    present = {int(v) for v in np.unique(labels)}
    for candidate in (convention, convention_from_labels(present)):
        if present <= {0, *label_values(candidate).values()}:
            return candidate
    raise ResultFolderError(f"{out_dir / SEGMENTATION_FILE}: label values {sorted(present)} "
                            "are not BraTS labels (0, 1, 2 and 4 or 3); is this a pipeline output?")


def _folder_items(scene) -> list[int]:
    from vtkmodules.vtkCommonCore import vtkIdList

    sh = scene.GetSubjectHierarchyNode()
    children = vtkIdList()
    sh.GetItemChildren(sh.GetSceneItemID(), children, False)
    return [children.GetId(i) for i in range(children.GetNumberOfIds())]


def _is_run_folder(scene, item: int) -> bool:
    return scene.GetSubjectHierarchyNode().GetItemAttribute(item, ATTR + "Run") == "1"


def run_folders(scene) -> list[int]:
    """Subject hierarchy items of every loaded run, in loading order."""
    return [item for item in _folder_items(scene) if _is_run_folder(scene, item)]


def show_in_slice_views(scene, background=None, foreground=None, opacity: float = 0.6) -> int:
    """Put volumes in the background / foreground layer of every slice view.

    Returns the number of slice views changed (0 before any view exists).
    """
    composites = nodes_by_class(scene, "vtkMRMLSliceCompositeNode")
    for composite in composites:
        if background is not None:
            composite.SetBackgroundVolumeID(background.GetID())
        if foreground is not None:
            composite.SetForegroundVolumeID(foreground.GetID())
            composite.SetForegroundOpacity(opacity)
    return len(composites)
