"""The "Cohort worklist" section of the module panel: Qt glue over worklist_scene.

The only Lib file that imports qt/ctk/slicer's GUI helpers: it runs inside the Slicer
application only (the module file builds it); no other Lib file imports it, so the rest
of the Lib stays importable under the slicer-core wheel. All behaviour is in
`worklist` / `worklist_scene` (tested there); this file lays out widgets and forwards
clicks.

Every Qt / CTK / Slicer API used here, checked against Slicer v5.10.0 and CTK (the
revision Slicer's SuperBuild pins is a CTK master commit; HEAD 868d56c7 read):
- ctk.ctkCollapsibleButton(), .text, .collapsed: CTK Libs/Widgets/ctkCollapsibleButton.h
  (Q_PROPERTY collapsed L48; text from QAbstractButton); used the same way in Slicer
  Base/Python/slicer/ScriptedLoadableModule.py (the Reload & Test section) and
  Applications/SlicerApp/Testing/Python/AtlasTests.py L55-60.
- ctk.ctkPathLineEdit(), .filters = ctk.ctkPathLineEdit.Dirs, .settingKey, .currentPath:
  CTK Libs/Widgets/ctkPathLineEdit.h L73-96, L128; Slicer
  Modules/Scripted/DICOMPatcher/DICOMPatcher.py L60-66. addCurrentPathToHistory() (a
  slot, ctkPathLineEdit.h:272 at dd4caeae7e, the commit Slicer v5.10.0 pins; called as
  in DICOMPatcher.py:187); comboBox() (Q_INVOKABLE, ctkPathLineEdit.h:234; the combo box
  is editable, ctkPathLineEdit.cpp createPathLineEditWidget) and Qt's
  QComboBox.lineEdit().editingFinished. Not currentPathChanged: it fires on every
  keystroke that forms a valid path (ctkPathLineEdit.cpp:825-841, review W3).
- qt.QFormLayout(parent).addRow(label, widget), qt.QHBoxLayout(), addWidget, addLayout:
  Slicer Applications/SlicerApp/Testing/Python/RSNAQuantTutorial.py L77-88,
  Base/Python/slicer/ScriptedLoadableModule.py L147.
- qt.QPushButton(text), .clicked.connect, .enabled, .toolTip; qt.QLineEdit(),
  .text, textChanged.connect; qt.QLabel(), .wordWrap: Slicer
  Modules/Scripted/DICOMLib/DICOMBrowser.py L709, parameterNodeWrapper/guiConnectors.py L531.
- qt.QTableWidget(): setColumnCount, setHorizontalHeaderLabels, setRowCount, setItem,
  qt.QTableWidgetItem(text), item.flags() ^ qt.Qt.ItemIsEditable, setSelectionBehavior(
  qt.QTableView.SelectRows), horizontalHeader().setSectionResizeMode(
  qt.QHeaderView.ResizeToContents): Slicer Modules/Scripted/DICOMLib/DICOMBrowser.py
  L740-780; cellDoubleClicked(int, int): QTableWidget's signal beside cellClicked(int, int)
  (which the module already uses; Qt 5 QTableWidget documentation), selectRow:
  Modules/Scripted/DICOMLib/DICOMRecentActivityWidget.py L140.
- qt.QFileDialog.getSaveFileName(parent, caption, dir, filter): as in UncertaintySeg.py
  (review finding V15).
- slicer.util.tryWithErrorDisplay(message, waitCursor=...): Base/Python/slicer/util.py L3368.
"""

from __future__ import annotations

import getpass
from pathlib import Path

import ctk
import qt
import slicer
from slicer.i18n import tr as _

from .worklist import TABLE_COLUMNS, WORKLIST_FILE, summary, table_cells
from .worklist_scene import WorklistSession, folder_to_open


class WorklistPanel:
    """A collapsible "Cohort worklist" section added to `parent_layout`.

    `logics` is the module's context.SceneLogics; `loader` its ResultLoader (so loaded
    cases share its heatmap settings); `on_case_loaded(run)` is called with the
    scene.LoadedRun of each case the worklist opens (the module shows it like a run), and
    with None whenever the open case closes (its ticks are no longer recorded, W3).
    """

    def __init__(self, parent_layout, logics, loader, on_case_loaded):
        self.logics, self.loader, self.on_case_loaded = logics, loader, on_case_loaded
        self.session: WorklistSession | None = None
        self.section = ctk.ctkCollapsibleButton()
        self.section.text = _("Cohort worklist")
        self.section.collapsed = True
        form = qt.QFormLayout(self.section)
        form.addRow(_("Folder:"), self._make_folder_row())
        self.reviewerEdit = qt.QLineEdit()
        self.reviewerEdit.text = getpass.getuser()
        form.addRow(_("Reviewer:"), self.reviewerEdit)
        self.table = self._make_table()
        form.addRow(self.table)
        form.addRow(self._make_buttons())
        self.summaryLabel = qt.QLabel()
        form.addRow(self.summaryLabel)
        self.statusLabel = qt.QLabel()
        self.statusLabel.wordWrap = True
        form.addRow(self.statusLabel)
        self.reviewerEdit.textChanged.connect(self.onReviewerChanged)
        parent_layout.addWidget(self.section)
        self.updateButtons()

    def _make_folder_row(self):
        row = qt.QHBoxLayout()
        self.folderEdit = ctk.ctkPathLineEdit()
        self.folderEdit.filters = ctk.ctkPathLineEdit.Dirs
        # The history of opened folders is kept in Slicer's settings (QSettings) under
        # this key; addCurrentPathToHistory writes it (review m2).
        self.folderEdit.settingKey = "UncertaintySeg/WorklistFolder"
        self.folderEdit.toolTip = _("A folder of output folders (OUT/<case>/, as predict or a "
                                    "cohort run writes them), or one output folder; press "
                                    "Return or Open")
        self.folderEdit.comboBox().lineEdit().editingFinished.connect(self.onOpen)
        self.openButton = qt.QPushButton(_("Open"))
        self.openButton.toolTip = _("Open the folder as a worklist (saves the open case first)")
        self.openButton.clicked.connect(self.onOpen)
        row.addWidget(self.folderEdit)
        row.addWidget(self.openButton)
        return row

    def _make_table(self):
        table = qt.QTableWidget()
        table.setColumnCount(len(TABLE_COLUMNS))
        table.setHorizontalHeaderLabels(list(TABLE_COLUMNS))
        table.setSelectionBehavior(qt.QTableView.SelectRows)
        table.horizontalHeader().setSectionResizeMode(qt.QHeaderView.ResizeToContents)
        table.toolTip = _("Most uncertain case first; double-click a case to load it")
        table.cellDoubleClicked.connect(self.onRowDoubleClicked)
        return table

    def _make_buttons(self):
        row = qt.QHBoxLayout()
        self.nextButton = qt.QPushButton(_("Load next"))
        self.nextButton.toolTip = _("Save this case's review, close it and load the most "
                                    "uncertain case not yet reviewed")
        self.reviewedButton = qt.QPushButton(_("Mark reviewed"))
        self.csvButton = qt.QPushButton(_("Export worklist CSV..."))
        self.refreshButton = qt.QPushButton(_("Refresh"))
        for button, slot in ((self.nextButton, self.onLoadNext),
                             (self.reviewedButton, self.onMarkReviewed),
                             (self.csvButton, self.onExportCsv),
                             (self.refreshButton, self.onRefresh)):
            button.clicked.connect(slot)
            row.addWidget(button)
        return row

    # -- actions ------------------------------------------------------------------------
    # tryWithErrorDisplay shows the error and re-raises it (util.py L3400); `_refreshing`
    # keeps the table true to review.json whatever happened.

    def _refreshing(self, message, action, wait=False):
        try:
            with slicer.util.tryWithErrorDisplay(message, waitCursor=wait):
                return action()
        finally:
            self.fillTable()

    def onOpen(self):
        """Open the folder the user confirmed (Return, focus leaving the field, Open)."""
        folder = folder_to_open(self.folderEdit.currentPath,
                                self.session.folder if self.session is not None else None)
        if folder is None:
            return
        self.closeSession()
        self._refreshing(_("Could not open the worklist folder."), lambda: self._start(folder))
        self.folderEdit.addCurrentPathToHistory()

    def _start(self, path):
        self.session = WorklistSession(self.logics, path, self.reviewerEdit.text or None,
                                       loader=self.loader)
        self.session.on_saved = lambda case: self.fillTable()
        self.session.on_closed = lambda case: self.on_case_loaded(None)
        self.statusLabel.text = ""

    def onReviewerChanged(self, text):
        if self.session is not None and text:
            self.session.reviewer = text

    def onLoadNext(self):
        if self.session.next_row() is None:
            self.statusLabel.text = _("No case left to review.")
            return
        self._open(_("Could not load the next case."), self.session.open_next)

    def onRowDoubleClicked(self, row, column):
        if self.session is not None and 0 <= row < len(self.session.rows):
            case = self.session.rows[row].case
            self._open(_("Could not load this case."), lambda: self.session.open(case))

    def _open(self, message, opener):
        # Opening closes (and removes) the previous case first; the session's on_closed
        # tells the module, also when the new case then fails to load.
        self._refreshing(message, lambda: self._shown(opener()), wait=True)

    def _shown(self, case):
        self.on_case_loaded(case.run)
        note = f" Note: {case.inputs.note}." if case.inputs.note else ""
        self.statusLabel.text = f"Loaded {case.row.case} ({case.row.state}).{note}"

    def onMarkReviewed(self):
        self._refreshing(_("Could not record the review."), self.session.mark_reviewed, wait=True)

    def onExportCsv(self):
        default = str(self.session.folder / WORKLIST_FILE)
        path = qt.QFileDialog.getSaveFileName(None, _("Export worklist CSV"), default,
                                              "CSV (*.csv)")
        if path:
            written = self._refreshing(_("Could not write the worklist CSV."),
                                       lambda: self.session.write_csv(Path(path)))
            self.statusLabel.text = f"Wrote {written}"

    def onRefresh(self):
        self._refreshing(_("Could not read the worklist folder."), self.session.refresh)

    def recordExport(self, run, path):
        """The module exported `run`'s label map to `path`: mark the case corrected if edited.

        The label map is written by then: a failure here is shown once, as what it is
        (review m7), and not raised into the module's "Export failed." box."""
        current = self.session.current if self.session is not None else None
        if current is None or current.run is not run:
            return
        try:
            self._refreshing(_("The label map was exported, but review.json was not updated."),
                             lambda: self.session.record_export(path), wait=True)
        except Exception:  # shown by _refreshing's tryWithErrorDisplay
            self.statusLabel.text = _("Exported {path}; review.json not updated.").format(
                path=path)

    def sceneClosing(self):
        """The scene is being closed: save the review, then forget the (vanishing) nodes."""
        if self.session is not None and self.session.current is not None:
            try:
                self._refreshing(_("Could not save the review."),
                                 lambda: self.session.close(remove_nodes=False))
            finally:
                self.session.forget()  # the scene's nodes go whether it was saved or not

    def closeSession(self):
        try:
            self.sceneClosing()
        finally:
            self.session = None
            self.fillTable()

    # -- display ------------------------------------------------------------------------

    def fillTable(self):
        rows = self.session.rows if self.session else []
        self.table.setRowCount(len(rows))
        for r, cells in enumerate(table_cells(rows)):
            for c, text in enumerate(cells):
                item = qt.QTableWidgetItem(text)
                item.setFlags(item.flags() ^ qt.Qt.ItemIsEditable)
                self.table.setItem(r, c, item)
        current = self.session.current if self.session else None
        if current is not None:
            self.table.selectRow(rows.index(current.row))
        self.summaryLabel.text = summary(rows) if self.session is not None else ""
        self.updateButtons()

    def setBusy(self, busy: bool) -> None:
        """Off while the module installs Python packages (review W4)."""
        self.section.enabled = not busy

    def updateButtons(self):
        has_session = self.session is not None
        has_case = has_session and self.session.current is not None
        self.nextButton.enabled = has_session and self.session.next_row() is not None
        self.reviewedButton.enabled = has_case
        self.csvButton.enabled = self.refreshButton.enabled = has_session
