"""The plausible mistakes (and valid controls) that tools/mutate_slicer.py injects, one
at a time, into the module file, its .ui and UncertaintySegLib.

Each edit names its file, an anchor (text that must occur exactly once there) and its
replacement: when the code moves, the script stops with "anchor not found" instead of
silently testing nothing, so the list is kept up to date with the module.
"""

from __future__ import annotations

from dataclasses import dataclass

MODULE = "UncertaintySeg/UncertaintySeg.py"
UI = "UncertaintySeg/Resources/UI/UncertaintySeg.ui"
LIB = "UncertaintySeg/UncertaintySegLib/"
# The panel's Qt glue that moved out of the module file (the box table, Edit/Export; Apply,
# progress and its timer): the same mistakes, now made there.
REVIEW_PANEL = LIB + "review_panel.py"
RUN_PANEL = LIB + "run_panel.py"


@dataclass(frozen=True)
class Mutation:
    ident: str
    kind: str
    edits: tuple  # ((file, anchor, replacement), ...)
    control: bool = False  # a valid change: no tier may fail on it


def _m(ident, kind, file, old, new, control=False):
    return Mutation(ident, kind, ((file, old, new),), control)


_PNW_IMPORT = "from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper"
_PNW_IMPORT_ALL = ("from slicer.parameterNodeWrapper import (Choice, Decimals, Maximum, Minimum, "
                   "WithinRange,\n                                         parameterNodeWrapper)")

MUTATIONS = (
    # -- made-up or misplaced methods on MRML / VTK objects --------------------------
    _m("M1", "made-up MRML method", LIB + "scene.py", "roi.SetSize(", "roi.SetSizeMm("),
    _m("M2", "method of another class", MODULE, "self.run.uncertainty.GetScene()",
       "self.run.uncertainty.GetMRMLScene()"),
    _m("M12", "made-up MRML enum", LIB + "editing.py",
       "editor_node.GetOverwriteMode() != editor_node.OverwriteNone",
       "editor_node.GetOverwriteMode() != editor_node.OverwriteNoneSegments"),
    _m("M13", "real method, wrong arguments", LIB + "bundle.py",
       'sh.CreateFolderItem(run.folder_item, "Inputs")', 'sh.CreateFolderItem("Inputs")'),
    _m("M14", "MRML method newer than 5.10", LIB + "scene.py", "display.AutoWindowLevelOff()",
       "display.SetWindowMappingMethod(0)"),
    _m("M24", "vtkSegment method not in 5.8", LIB + "scene.py", "segment.SetColor(*item.colour)",
       "segment.SetTerminology('')"),
    _m("M31", "wrong case in a vtkSegmentation method", LIB + "editing.py",
       "GetSegmentIdBySegmentName(selected_segment)", "GetSegmentIDBySegmentName(selected_segment)"),
    _m("M32", "made-up method on a node built by class name", LIB + "export.py",
       "labelmap.CreateDefaultDisplayNodes()", "labelmap.CreateDefaultDisplayNode()"),
    _m("M33", "made-up method on a markups ROI", LIB + "review.py",
       "self.roi.GetAttribute(ATTR_REVIEWED)", "self.roi.GetAttr(ATTR_REVIEWED)"),
    _m("M21", "made-up VTK event", MODULE, "if self.hasObserver(parameterNode, vtk.vtkCommand.ModifiedEvent",
       "if self.hasObserver(parameterNode, vtk.vtkCommand.ModifyEvent"),
    _m("M34", "made-up scene event", MODULE, "slicer.mrmlScene.StartCloseEvent",
       "slicer.mrmlScene.CloseStartEvent"),
    # -- Qt / CTK / qMRML widgets -----------------------------------------------------
    _m("M3", "wrong Qt signal (.ui widget)", REVIEW_PANEL, "table.cellClicked.connect",
       "table.rowClicked.connect"),
    _m("M4", "wrong CTK signal (.ui widget)", MODULE, "modelFolderPathLineEdit.currentPathChanged",
       "modelFolderPathLineEdit.pathChanged"),
    _m("M5", "wrong Qt property", MODULE, "self.ui.exportButton.enabled =",
       "self.ui.exportButton.enable ="),
    _m("M18", "wrong Qt signal (Lib widget)", LIB + "worklist_panel.py",
       "table.cellDoubleClicked.connect", "table.rowDoubleClicked.connect"),
    _m("M23", "made-up widget method", RUN_PANEL, "self.ui.progressBar.value = 100",
       "self.ui.progressBar.setVal(100)"),
    _m("M25", "wrong CTK signal (Lib widget)", LIB + "worklist_panel.py",
       "self.folderEdit.comboBox().lineEdit().editingFinished.connect",
       "self.folderEdit.pathChanged.connect"),
    _m("M26", "made-up CTK enum", LIB + "worklist_panel.py", "self.folderEdit.filters = ctk.ctkPathLineEdit.Dirs",
       "self.folderEdit.filters = ctk.ctkPathLineEdit.Directories"),
    _m("M35", "made-up Qt enum", REVIEW_PANEL, "qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsEnabled",
       "qt.Qt.ItemIsCheckable | qt.Qt.ItemIsEnabled"),
    _m("M36", "wrong QTimer signal", RUN_PANEL, "self.timer.timeout.connect",
       "self.timer.timedOut.connect"),
    _m("M37", "wrong Qt property (Lib)", LIB + "worklist_panel.py",
       "self.statusLabel.wordWrap = True", "self.statusLabel.wrap = True"),
    _m("M38", "wrong CTK property (Lib)", LIB + "worklist_panel.py",
       "self.section.collapsed = True", "self.section.collapse = True"),
    _m("M39", "real Qt method, wrong arguments", REVIEW_PANEL, "table.resizeColumnsToContents()",
       "table.resizeColumnToContents()"),
    _m("M40", "made-up qMRML method", REVIEW_PANEL, "editor.setSourceVolumeNode(",
       "editor.setSourceVolume("),
    _m("M41", "made-up method on the .ui's root qMRMLWidget", MODULE,
       "uiWidget.setMRMLScene(slicer.mrmlScene)", "uiWidget.setScene(slicer.mrmlScene)"),
    _m("M15", "made-up Qt class", REVIEW_PANEL, "tick = qt.QTableWidgetItem()", "tick = qt.QTableItem()"),
    # -- the .ui ------------------------------------------------------------------------
    _m("M16", ".ui: bound widget of another class", UI,
       '<widget class="ctkSliderWidget" name="thresholdSliderWidget">',
       '<widget class="ctkRangeWidget" name="thresholdSliderWidget">'),
    _m("M17", ".ui: a name the module uses is gone", UI, '<widget class="QPushButton" name="exportButton">',
       '<widget class="QPushButton" name="exportPushButton">'),
    _m("M42", ".ui: the table becomes a view", UI, '<widget class="QTableWidget" name="boxTable">',
       '<widget class="QTableView" name="boxTable">'),
    _m("M43", ".ui: the progress bar becomes a label", UI,
       '<widget class="QProgressBar" name="progressBar">', '<widget class="QLabel" name="progressBar">'),
    # -- slicer.util -------------------------------------------------------------------
    _m("M9", "made-up slicer.util function", REVIEW_PANEL,
       'slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True)',
       'slicer.util.tryWithErrorMessage(_("Export failed."), waitCursor=True)'),
    _m("M10", "wrong slicer.util keyword", REVIEW_PANEL,
       'slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True)',
       'slicer.util.tryWithErrorDisplay(_("Export failed."), busyCursor=True)'),
    _m("M44", "slicer.util function with an extra argument", REVIEW_PANEL,
       'slicer.util.selectModule("SegmentEditor")', 'slicer.util.selectModule("SegmentEditor", True)'),
    _m("M22", "slicer.util function newer than 5.10", REVIEW_PANEL,
       'slicer.util.selectModule("SegmentEditor")', 'slicer.util.executePythonModule("SegmentEditor")'),
    # -- parameterNodeWrapper and the module class ---------------------------------------
    _m("M6", "wrong validator keyword", MODULE, "Annotated[float, WithinRange(0.0, 1.0)]",
       "Annotated[float, WithinRange(0.0, 1.0, inclusive=True)]"),
    _m("M7", "wrong decorator keyword", MODULE, "@parameterNodeWrapper\n",
       "@parameterNodeWrapper(prefix='UncertaintySeg')\n"),
    _m("M8", "wrong Choice keyword", MODULE, 'Choice(["WT", "TC", "ET"])',
       'Choice(options=["WT", "TC", "ET"])'),
    _m("M20", "renamed Widget class", MODULE, "class UncertaintySegWidget(",
       "class UncertaintySegModuleWidget("),
    _m("M19", "parameter type the bound widget refuses", MODULE,
       'maxBoxes: Annotated[int, _range("max_boxes")]', 'maxBoxes: Annotated[float, _range("max_boxes")]'),
    _m("M29", "reserved parameter name (extra parameter)", MODULE, "    force: bool = False",
       "    force: bool = False\n    default: bool = False"),
    Mutation("M29b", "reserved parameter name (in .py and .ui)", (
        (MODULE, "    force: bool = False", "    default: bool = False"),
        (UI, "<string>force</string>", "<string>default</string>"))),
    _m("M30", "parameter type without a serializer", MODULE, "    force: bool = False",
       "    force: bool = False\n    seenCases: set = set()"),
    _m("M45", "validator used without import", MODULE, "Annotated[float, WithinRange(0.0, 1.0)]",
       "Annotated[float, WithinRange(0.0, 1.0), Decimals(2)]"),
    # -- the load chain ----------------------------------------------------------------
    _m("M11", "third-party import on the load chain", LIB + "scene.py", "import numpy as np\n",
       "import numpy as np\nimport pandas\n"),
    # -- valid changes: no tier may fail ---------------------------------------------------
    _m("C1", "@parameterNodeWrapper()", MODULE, "@parameterNodeWrapper\n",
       "@parameterNodeWrapper()\n", control=True),
    Mutation("C2", "Minimum/Maximum instead of WithinRange", (
        (MODULE, _PNW_IMPORT, _PNW_IMPORT_ALL),
        (MODULE, "Annotated[float, WithinRange(0.0, 1.0)]",
         "Annotated[float, Minimum(0.0), Maximum(1.0)]")), control=True),
    Mutation("C3", "WithinRange with Decimals", (
        (MODULE, _PNW_IMPORT, _PNW_IMPORT_ALL),
        (MODULE, "Annotated[float, WithinRange(0.0, 1.0)]",
         "Annotated[float, WithinRange(0.0, 1.0), Decimals(2)]")), control=True),
    _m("C4", "Choice(choices=...)", MODULE, 'Choice(["WT", "TC", "ET"])',
       'Choice(choices=["WT", "TC", "ET"])', control=True),
    _m("C5", "a real but different signal", REVIEW_PANEL, "table.cellClicked.connect",
       "table.cellActivated.connect", control=True),
    _m("C6", "a base class's method instead of a property", MODULE,
       'self.ui.applyButton.text = _("Cancel") if running else _("Apply")',
       'self.ui.applyButton.setText(_("Cancel") if running else _("Apply"))', control=True),
    _m("C7", "a property instead of a setter", MODULE, "self.pickTimer.setSingleShot(True)",
       "self.pickTimer.singleShot = True", control=True),
    _m("C8", "a CTK setter instead of its property", LIB + "worklist_panel.py",
       "self.section.collapsed = True", "self.section.setCollapsed(True)", control=True),
    _m("C9", "a VTK boolean macro instead of its setter", LIB + "editing.py",
       "editor_node.SetSourceVolumeIntensityMask(False)",
       "editor_node.SourceVolumeIntensityMaskOff()", control=True),
    _m("C10", "a real slicer.util keyword", REVIEW_PANEL,
       'slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True)',
       'slicer.util.tryWithErrorDisplay(_("Export failed."), show=True, waitCursor=True)',
       control=True),
)

# The CI sample (Testing/module/test_mutations.py): one mistake per checker that the
# review found missing (a per-class MRML method, a signal on a .ui widget connected in a
# Lib panel through its `ui` parameter, a reserved name) and the two valid constructs
# the old tier refused.
CI_SAMPLE = ("M2", "M3", "M29b", "C1", "C2")
