"""The module panel's review sections: triage text, the box table and its ticks, Edit in
the Segment Editor and Export.

Qt glue over review.py (which holds the behaviour and is tested under the slicer-core
wheel), like worklist_panel.py: imported only by the module file, never by another Lib
file. It works on widgets of the module's .ui (boxTable, triageLabel, hintLabel,
reviewProgressLabel), so Testing/module checks their names with the module's.

Qt names used, as in UncertaintySeg.py before they moved here: QTableWidget
setColumnCount, setHorizontalHeaderLabels, setRowCount, setItem, resizeColumnsToContents,
blockSignals, cellClicked(int, int), itemChanged(QTableWidgetItem*); QTableWidgetItem
setFlags, setCheckState, checkState, row, column; qt.Qt.ItemIsUserCheckable,
ItemIsEnabled, ItemIsSelectable, Checked, Unchecked (review-3 section 2, step 3);
qt.QFileDialog.getSaveFileName(parent, caption, dir, filter); slicer.util.selectModule
(util.py:1242), tryWithErrorDisplay (:3368); the Segment Editor's
widgetRepresentation().self().editor (SegmentEditor.py:60) with setSegmentationNode,
setSourceVolumeNode and mrmlSegmentEditorNode (qMRMLSegmentEditorWidget.h:97,294,300).
"""

from __future__ import annotations

from pathlib import Path

import qt
import slicer
from slicer.i18n import tr as _

from .editing import configure_segment_editor, editor_overwrites
from .review import COLUMNS, box_rows, review_progress, set_reviewed, triage_summary

class ReviewPanel:
    """`ui` is the module's childWidgetVariables; `session` its RunSession (centring the
    views, export); `current_run()` the run shown; `record_export(run, path)` tells the
    worklist (WorklistPanel.recordExport)."""

    def __init__(self, ui, session, current_run, record_export):
        self.ui, self.session = ui, session
        self.current_run, self.record_export = current_run, record_export
        self.rows = []
        ui.editButton.clicked.connect(self.onEdit)
        ui.exportButton.clicked.connect(self.onExport)
        table = ui.boxTable
        table.setColumnCount(len(COLUMNS))
        table.setHorizontalHeaderLabels(list(COLUMNS))
        table.cellClicked.connect(self.onBoxClicked)
        table.itemChanged.connect(self.onBoxItemChanged)

    def show(self, run) -> None:
        """The triage text and one row per refinement box of a loaded run."""
        headline, hint = triage_summary(run.report)
        self.ui.triageLabel.text = headline
        self.ui.hintLabel.text = hint
        self.rows = box_rows(run.boxes, run.rois)
        table = self.ui.boxTable
        table.blockSignals(True)  # filling the ticks is not the user ticking them
        table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            tick = qt.QTableWidgetItem()
            tick.setFlags(qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsEnabled | qt.Qt.ItemIsSelectable)
            tick.setCheckState(qt.Qt.Checked if row.reviewed else qt.Qt.Unchecked)
            table.setItem(r, 0, tick)
            for c, text in enumerate(row.cells(), start=1):
                table.setItem(r, c, qt.QTableWidgetItem(text))
        table.resizeColumnsToContents()
        table.blockSignals(False)
        self.ui.reviewProgressLabel.text = review_progress(self.rows)

    def clear(self) -> None:
        """No run shown (scene closed, or the worklist closed its case)."""
        self.rows = []
        self.ui.boxTable.setRowCount(0)
        self.ui.hintLabel.text = self.ui.reviewProgressLabel.text = ""
        self.ui.triageLabel.text = _("Run the pipeline to see the case's triage score.")

    def onBoxClicked(self, rowIndex, column):
        if 0 <= rowIndex < len(self.rows):
            self.session.centre_on(self.rows[rowIndex])

    def onBoxItemChanged(self, item):
        if item.column() == 0 and item.row() < len(self.rows):
            set_reviewed(self.rows[item.row()], item.checkState() == qt.Qt.Checked)
            self.ui.reviewProgressLabel.text = review_progress(self.rows)

    def onEdit(self):
        run = self.current_run()
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(run.segmentation)
        editor.setSourceVolumeNode(run.reference_volume)
        node = editor.mrmlSegmentEditorNode()
        configure_segment_editor(node, run.segmentation, run.reference_volume)
        if not editor_overwrites(node):  # the user's "Allow overlap" is kept (review m8)
            self.ui.statusLabel.text = _(
                'The Segment Editor is in "Allow overlap": where two segments hold a voxel, '
                "Export gives it to the segment edited last.")

    def onExport(self):
        run = self.current_run()
        path = qt.QFileDialog.getSaveFileName(None, _("Export label map"),
                                              str(Path.home() / "segmentation.nii.gz"),
                                              "NIfTI (*.nii.gz *.nii)")
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            written = self.session.export_labels(run, path)
            self.ui.statusLabel.text = _("Exported {path}").format(path=written)
        # Outside the block above: the file is written by then, and a review.json
        # failure is its own message (review m7).
        self.record_export(run, written)
