"""The worklist in a scene: open a case, keep its review.json in step with the nodes.

`WorklistSession(logics, folder, reviewer)` scans the folder (`worklist.scan`), opens a
case through the existing `scene.ResultLoader` (with the input volumes the report
names, when they are still where the run read them), and records the review:

- ticks: the "Reviewed" attribute on the ROI nodes (set by the box table) is watched
  with a VTK observer, so every tick is written to review.json as it happens, whoever
  set it (table, Python console); all boxes ticked marks the case reviewed;
- edits: the segments are compared with segmentation.nii.gz (voxel by voxel, through the
  same export the user gets) when the case is saved, closed or exported;
- export: `export_labels` writes the label map atomically and marks the case corrected
  when it differs from the pipeline's segmentation.

Review state also goes onto the segmentation node and the run's subject-hierarchy folder
as `UncertaintySeg.Review*` attributes, so it is saved with the scene. No Qt, no torch.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from uncertaintyseg_shared.atomic import atomic_path
from uncertaintyseg_shared.contract_names import SEGMENTATION_FILE

from .export import LabelExporter
from .scene import ATTR, LoadedRun, ResultLoader, place_in_folder
from .context import remove_with_helpers
from .volumes import read_scalar_volume, volume_array
from .worklist import (REVIEW_FILE, WORKLIST_FILE, CaseRow, ReviewRecord, WorklistError,
                       next_case, now_utc, scan, write_review, write_worklist_csv)

ATTR_REVIEWED = ATTR + "Reviewed"   # set on each ROI node by review.set_reviewed
MODALITY_ORDER = ("flair", "t1", "t1ce", "t2")  # the first one found is the reference


@dataclass
class InputVolumes:
    """The input volumes of a case found where its report says, and what was not."""

    nodes: dict = field(default_factory=dict)     # modality -> scalar volume node
    note: str = ""                                # why some or all are missing

    @property
    def reference(self):
        return next((self.nodes[m] for m in MODALITY_ORDER if m in self.nodes), None)


def _report_paths(report: dict, folder: Path) -> dict[str, Path]:
    """modality -> input file as report.json records it. A relative path was relative to
    wherever `predict` ran: the first of that folder's likely places that has the file."""
    paths = (report.get("input") or {}).get("paths") or {}
    resolved = {}
    for modality, text in paths.items():
        path = Path(str(text)).expanduser()
        candidates = [path] if path.is_absolute() else [path, folder / path, folder.parent / path]
        resolved[modality] = next((c for c in candidates if c.is_file()), path)
    return resolved


def load_inputs(logics, report: dict, folder: Path) -> InputVolumes:
    """Read the input volumes named in report.json that still exist and match the run's
    grid; the rest are listed in `note` (the case loads without them)."""
    found = InputVolumes()
    expected = tuple((report.get("input") or {}).get("shape_zyx") or ())
    missing, other_grid = [], []
    for modality, path in _report_paths(report, folder).items():
        if not path.is_file():
            missing.append(str(path))
            continue
        node = read_scalar_volume(logics.volumes, path, path.name.split(".nii")[0])
        dims = tuple(node.GetImageData().GetDimensions())[::-1]
        if expected and dims != expected:
            remove_with_helpers(logics.scene, node)
            other_grid.append(str(path))
            continue
        found.nodes[modality] = node
    notes = []
    if missing:
        notes.append("input volumes not found (moved or deleted?): " + ", ".join(missing))
    if other_grid:
        notes.append("input volumes on another grid than this run's input (replaced?), "
                     "not loaded: " + ", ".join(other_grid))
    if notes:
        notes.append("the case is shown on the grid of its segmentation.nii.gz")
    elif not found.nodes:
        notes.append("report.json names no input volumes; the case is shown without them")
    found.note = "; ".join(notes)
    return found


def ticked_boxes(run: LoadedRun) -> list[dict]:
    """[{"region", "rank"}] of the boxes whose ROI node is ticked, in the boxes' order."""
    return [{"region": box["region"], "rank": int(box["rank"])}
            for box, roi in zip(run.boxes, run.rois) if roi.GetAttribute(ATTR_REVIEWED) == "1"]


def restore_ticks(run: LoadedRun, ticked: list[dict]) -> None:
    keys = {(t.get("region"), int(t.get("rank", 0))) for t in ticked}
    for box, roi in zip(run.boxes, run.rois):
        roi.SetAttribute(ATTR_REVIEWED, "1" if (box["region"], int(box["rank"])) in keys else "0")


def segments_differ(logics, run: LoadedRun) -> bool:
    """Whether the segments (as exported) differ from the pipeline's segmentation.nii.gz."""
    exporter = LabelExporter(logics)
    current = exporter.to_labelmap_node(run.segmentation, run.reference_volume, run.convention)
    original = read_scalar_volume(logics.volumes, run.output_dir / SEGMENTATION_FILE,
                                  "worklist original labels", labelmap=True)
    try:
        a, b = volume_array(current), volume_array(original)
        return a.shape != b.shape or bool(np.any(a != b))
    finally:
        remove_with_helpers(logics.scene, current)
        remove_with_helpers(logics.scene, original)


def remove_folder(scene, folder_item: int) -> None:
    """Remove a run folder: its data nodes (with their display and storage nodes), then
    the subject-hierarchy items.

    Node by node because `RemoveItem(item, removeDataNode=True)` never returns under the
    slicer-core wheel (seen with 5.13), and it leaves display nodes behind.
    """
    from vtkmodules.vtkCommonCore import vtkIdList

    sh = scene.GetSubjectHierarchyNode()
    children = vtkIdList()
    sh.GetItemChildren(folder_item, children, True)
    nodes = [sh.GetItemDataNode(children.GetId(i)) for i in range(children.GetNumberOfIds())]
    for node in filter(None, nodes):
        remove_with_helpers(scene, node)
    sh.RemoveItem(folder_item, False, True)


def folder_to_open(text: str, open_folder=None) -> Path | None:
    """The worklist folder to open for the text of the folder field, or None: empty, not
    an existing folder, or the folder already open. The panel asks this when the user
    confirms a path (Return, Open, browse), never per keystroke (review W3)."""
    if not text or not text.strip():
        return None
    folder = Path(text.strip()).expanduser()
    if not folder.is_dir():
        return None
    if open_folder is not None and folder.resolve() == Path(open_folder).resolve():
        return None
    return folder


@dataclass
class OpenCase:
    """A case loaded into the scene, with its review record."""

    row: CaseRow
    run: LoadedRun
    record: ReviewRecord
    inputs: InputVolumes
    observers: list = field(default_factory=list)  # (node, tag)


class WorklistSession:
    """One reviewer working through one worklist folder in one scene."""

    def __init__(self, logics, folder, reviewer: str | None = None, region: str = "WT",
                 loader: ResultLoader | None = None):
        self.logics = logics
        self.folder = Path(folder)
        self.reviewer = reviewer or getpass.getuser()
        self.region = region
        self.loader = loader or ResultLoader(logics)
        self.rows = scan(self.folder)
        self.current: OpenCase | None = None
        self.on_saved = None  # called with the OpenCase after each review.json write
        # Called with the OpenCase once it is closed or forgotten: its ticks are no longer
        # recorded, so whoever shows it must drop it (review W3).
        self.on_closed = None

    def refresh(self) -> list[CaseRow]:
        """Scan the folder again (e.g. a cohort run added cases); the open case keeps its row."""
        rows = scan(self.folder)
        if self.current is not None:
            rows = [self.current.row if r.case == self.current.row.case else r for r in rows]
        self.rows = rows
        return self.rows

    def row(self, case: str) -> CaseRow:
        for row in self.rows:
            if row.case == case:
                return row
        raise WorklistError(f"{case}: not in the worklist of {self.folder}")

    def next_row(self) -> CaseRow | None:
        return next_case(self.rows, self.current.row.case if self.current else None)

    def open_next(self) -> OpenCase | None:
        """Save and close the current case, open the next one to review (None: all done)."""
        row = self.next_row()
        return self.open(row.case) if row else None

    def open(self, case: str) -> OpenCase:
        """Save and close the current case, then load `case` and record that it was opened."""
        row = self.row(case)
        if not row.loadable:
            raise WorklistError(f"{case} cannot be opened: {row.problem}")
        self.close()
        inputs = load_inputs(self.logics, row.report, row.folder)
        try:
            run = self.loader.load(row.folder, reference_volume=inputs.reference,
                                   region=self.region)
        except Exception:
            for node in inputs.nodes.values():
                remove_with_helpers(self.logics.scene, node)
            raise
        for node in inputs.nodes.values():
            place_in_folder(self.logics.scene, node, run.folder_item)
        record = row.review or ReviewRecord(row.case)
        record.boxes_total = len(run.boxes)
        restore_ticks(run, record.boxes_ticked)
        record.opened_at = record.opened_at or now_utc()
        record.log(self.reviewer, "opened")
        self.current = OpenCase(row, run, record, inputs)
        self._save_record()
        self._observe_ticks()
        return self.current

    def _observe_ticks(self) -> None:
        from vtkmodules.vtkCommonCore import vtkCommand

        for roi in self.current.run.rois:
            tag = roi.AddObserver(vtkCommand.ModifiedEvent, self._on_roi_modified)
            self.current.observers.append((roi, tag))

    def _on_roi_modified(self, caller=None, event=None) -> None:
        case = self.current
        if case is None:
            return
        ticked = ticked_boxes(case.run)
        if ticked == case.record.boxes_ticked:
            return  # another change of the ROI node (display, selection), not a tick
        case.record.boxes_ticked = ticked
        case.record.log(self.reviewer, f"{len(ticked)} of {len(case.run.boxes)} boxes ticked")
        if case.run.boxes and len(ticked) == len(case.run.boxes) and not case.record.reviewed_at:
            case.record.reviewed_at = case.record.updated_at
        self._save_record()

    def save(self) -> ReviewRecord:
        """Record the current case's ticks and whether its segments were edited."""
        case = self._require_current()
        case.record.boxes_ticked = ticked_boxes(case.run)
        edited = segments_differ(self.logics, case.run)
        if edited != case.record.edited:
            case.record.edited = edited
            case.record.log(self.reviewer, "segmentation edited" if edited else "edits undone")
        self._save_record()
        return case.record

    def mark_reviewed(self) -> ReviewRecord:
        """The reviewer says the case is done (whatever the ticks)."""
        case = self._require_current()
        self.save()
        case.record.log(self.reviewer, "marked reviewed")
        case.record.reviewed_at = case.record.updated_at
        self._save_record()
        return case.record

    def export_labels(self, path=None) -> Path:
        """Export the segments as a BraTS label map (atomically) and record it; an export
        that differs from the pipeline's segmentation marks the case corrected."""
        case = self._require_current()
        path = Path(path) if path else case.row.folder / "segmentation_reviewed.nii.gz"
        # The storage node picks the format from the extension: atomic_path keeps it.
        with atomic_path(path) as temporary:
            LabelExporter(self.logics).export(case.run.segmentation, case.run.reference_volume,
                                              temporary, case.run.convention)
        self.record_export(path)
        return path

    def record_export(self, path) -> ReviewRecord:
        """Record an export the module made itself (its own Export button)."""
        case = self._require_current()
        self.save()
        edited = case.record.edited
        case.record.log(self.reviewer, ("exported corrected" if edited else "exported unedited")
                        + f" label map {path}")
        case.record.exports.append({"path": str(path), "at": case.record.updated_at,
                                    "edited": edited, "reviewer": self.reviewer})
        # The latest export decides: an unedited export after undone edits is no correction.
        case.record.corrected = edited
        self._save_record()
        return case.record

    def close(self, remove_nodes: bool = True) -> None:
        """Save the current case's review, stop watching it and (by default) remove its
        nodes from the scene. Without a current case, nothing happens. When the review
        cannot be saved the case stays open, nodes and edits untouched, and the error is
        raised."""
        if self.current is None:
            return
        self.save()
        self.forget(remove_nodes)

    def forget(self, remove_nodes: bool = False) -> None:
        """Drop the current case without saving (e.g. the scene was closed under it)."""
        case, self.current = self.current, None
        if case is None:
            return
        for node, tag in case.observers:
            node.RemoveObserver(tag)
        if remove_nodes:
            remove_folder(self.logics.scene, case.run.folder_item)
        if self.on_closed is not None:
            self.on_closed(case)

    def write_csv(self, path=None) -> Path:
        """The worklist CSV (default: worklist.csv in the worklist folder)."""
        return write_worklist_csv(self.rows, Path(path) if path else self.folder / WORKLIST_FILE)

    def _require_current(self) -> OpenCase:
        if self.current is None:
            raise WorklistError("no case is open: load one from the worklist first")
        return self.current

    def _save_record(self) -> None:
        case = self.current
        write_review(case.row.folder, case.record)
        case.row.review = case.record
        self._set_attributes(case)
        if self.on_saved is not None:
            self.on_saved(case)

    def _set_attributes(self, case: OpenCase) -> None:
        record = case.record
        values = {"ReviewState": record.state, "Reviewer": record.reviewer,
                  "ReviewUpdatedAt": record.updated_at, "Edited": "1" if record.edited else "0",
                  "Corrected": "1" if record.corrected else "0",
                  "ReviewFile": str(case.row.folder / REVIEW_FILE)}
        sh = self.logics.scene.GetSubjectHierarchyNode()
        for key, value in values.items():
            case.run.segmentation.SetAttribute(ATTR + key, value)
            sh.SetItemAttribute(case.run.folder_item, ATTR + key, value)
