"""UncertaintySeg: uncertainty-guided glioma segmentation in 3D Slicer.

Thin on purpose: the Widget wires the GUI to a parameter node, the Logic delegates to
UncertaintySegLib (which never imports torch and runs under the slicer-core wheel too),
and the pipeline runs in a separate process (`python -m uncertaintyseg predict`).
"""

import importlib.util
import logging
import time
from pathlib import Path

import numpy as np
import qt
import slicer
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from UncertaintySegLib.context import SceneLogics
from UncertaintySegLib.deps import ensure_dependencies
from UncertaintySegLib.editing import configure_segment_editor
from UncertaintySegLib.export import LabelExporter
from UncertaintySegLib.inputs import MODALITIES, VolumeSelection, auto_pick
from UncertaintySegLib.process import STAGE_LABELS, overall_fraction
from UncertaintySegLib.review import (COLUMNS, box_rows, centre_views_on, review_progress,
                                      set_reviewed, triage_summary)
from UncertaintySegLib.runner import CaseRunner, RunOptions
from UncertaintySegLib.scene import HeatmapSettings, ResultLoader, show_in_slice_views


class UncertaintySeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("UncertaintySeg")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["UncertaintySeg developers"]
        self.parent.helpText = _(
            "Segments glioma sub-regions (necrosis NCR, edema ED, enhancing tumour ET) from "
            "FLAIR, T1, T1ce and T2 and shows where the model is unsure: a 2D nnU-Net on "
            "spherical projections gives a voxel-wise entropy map, the most uncertain cubes are "
            "re-segmented by a 3D nnU-Net and the two are fused.<br>Load the four volumes, check "
            "the selectors, press Apply; review the heatmap and the boxes (click a row to jump "
            "to it), correct the segments in the Segment Editor and export a BraTS label map."
            "<br>Research software: not for clinical use.")
        self.parent.acknowledgementText = _(
            "Method: Yang Z., Yang C., Zhang R., Wang C., Chen M., Yin F.-F., A voxel-wise "
            "uncertainty-guided framework for glioma segmentation using spherical projection-"
            "based U-Net and localized refinement, Medical Physics (2026). Spherical projection: "
            "Yang Z. et al., Quantifying U-Net uncertainty in multi-parametric MRI-based glioma "
            "segmentation by spherical image projection, Medical Physics 51(3):1931-1943 (2024), "
            "doi:10.1002/mp.16695. Networks: Isensee F. et al., nnU-Net, Nature Methods 18, "
            "203-211 (2021).")


@parameterNodeWrapper
class UncertaintySegParameterNode:
    flair: vtkMRMLScalarVolumeNode
    t1: vtkMRMLScalarVolumeNode
    t1ce: vtkMRMLScalarVolumeNode
    t2: vtkMRMLScalarVolumeNode
    modelName: str = "default"
    modelFolder: str = ""
    device: str = "auto"
    projections: str = "auto"
    kernelEt: float = 32.0
    kernelTc: float = 32.0
    kernelWt: float = 64.0
    maxOverlap: float = 0.4
    minScoreFraction: float = 0.1
    maxBoxes: int = 8
    python: str = ""
    region: str = "WT"
    heatmapThreshold: float = 0.2


def applicationLogics(scene=None) -> SceneLogics:
    """The application's scene and module logics, as the Lib expects them."""
    return SceneLogics(scene or slicer.mrmlScene, slicer.app.applicationLogic(),
                       slicer.modules.segmentations.logic(), slicer.modules.markups.logic(),
                       slicer.modules.volumes.logic(), slicer.modules.subjecthierarchy.logic())


class UncertaintySegLogic(ScriptedLoadableModuleLogic):
    """Runs the pipeline on scene volumes and manages the loaded runs; no GUI needed.

    >>> logic = UncertaintySegLogic()
    >>> run = logic.process(logic.getParameterNode())  # blocks until loaded
    """

    def __init__(self, scene=None):
        ScriptedLoadableModuleLogic.__init__(self)
        self.logics = applicationLogics(scene)
        self.runner = CaseRunner(self.logics, Path(slicer.app.temporaryPath) / "UncertaintySeg")
        self.loader = ResultLoader(self.logics)
        self.runs = []

    def getParameterNode(self):
        return UncertaintySegParameterNode(super().getParameterNode())

    @staticmethod
    def selection(parameters) -> VolumeSelection:
        return VolumeSelection({m: getattr(parameters, m) for m in MODALITIES})

    def ensureDependencies(self, parameters) -> bool:
        """Install torch (PyTorch extension) and the rest (pip) into Slicer's Python after
        the user confirms; skipped when the user runs the pipeline in their own Python."""
        if parameters.python:
            return True

        def installTorch():
            import PyTorchUtils  # the PyTorch extension (EXTENSION_DEPENDS)

            return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is not None

        return ensure_dependencies(
            lambda text: slicer.util.confirmOkCancelDisplay(text, "UncertaintySeg"), installTorch,
            slicer.util.pip_install, testing=slicer.app.testingEnabled())

    def start(self, parameters):
        self.loader.heatmap = HeatmapSettings(threshold=parameters.heatmapThreshold)
        return self.runner.start(self.selection(parameters), RunOptions.from_parameters(parameters))

    def poll(self):
        return self.runner.poll()

    def running(self) -> bool:
        return self.runner.running()

    def cancel(self):  # kills the process tree; the scene is left as it was
        self.runner.cancel()

    def finish(self):
        """Load the finished run into the scene and show it; raises with a readable
        message when the run failed."""
        run = self.runner.load_result(self.loader)
        self.show(run)
        self.runs.append(run)
        return run

    def process(self, parameters, timeout_s: float = 3600.0):
        """Run and load, blocking (for scripts and tests)."""
        self.start(parameters)
        deadline = time.monotonic() + timeout_s
        while self.running():
            self.poll()
            if time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"UncertaintySeg: no result after {timeout_s:.0f} s; cancelled")
            slicer.app.processEvents()
            time.sleep(0.1)
        return self.finish()

    def loadOutputFolder(self, folder, referenceVolume=None, region="WT"):
        """Load an existing output folder (e.g. from the command line) and show it."""
        run = self.loader.load(folder, reference_volume=referenceVolume, region=region)
        self.show(run)
        self.runs.append(run)
        return run

    def show(self, run):
        show_in_slice_views(self.logics.scene, run.reference_volume, run.uncertainty,
                            self.loader.heatmap.opacity)
        if slicer.app.layoutManager() is not None:
            slicer.util.resetSliceViews()
            slicer.app.layoutManager().threeDWidget(0).threeDView().resetFocalPoint()

    def setRegion(self, run, region):
        self.loader.set_uncertainty_region(run, region)

    def setThreshold(self, run, threshold):
        display = run.uncertainty.GetDisplayNode()
        display.SetThreshold(threshold, max(display.GetUpperThreshold(), 1.0))

    def centreOn(self, row):
        centre_views_on(self.logics.scene, row.center_ras)

    def exportLabels(self, run, path):
        return LabelExporter(self.logics).export(run.segmentation, run.reference_volume, path)


class UncertaintySegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self._parameterNode = self._guiObserver = self.run = None
        self.rows = []

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/UncertaintySeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = UncertaintySegLogic()
        self.timer = qt.QTimer()
        self.timer.setInterval(200)
        self.timer.timeout.connect(self.onTimer)
        self.ui.boxTable.setColumnCount(len(COLUMNS))
        self.ui.boxTable.setHorizontalHeaderLabels(list(COLUMNS))
        self.ui.applyButton.clicked.connect(self.onApply)
        self.ui.autoPickButton.clicked.connect(lambda: self.autoPick(overwrite=True))
        self.ui.logButton.clicked.connect(self.onShowLog)
        self.ui.boxTable.cellClicked.connect(self.onBoxClicked)
        self.ui.boxTable.itemChanged.connect(self.onBoxItemChanged)
        self.ui.editButton.clicked.connect(self.onEdit)
        self.ui.exportButton.clicked.connect(self.onExport)
        self.ui.modelFolderPathLineEdit.currentPathChanged.connect(
            lambda path: setattr(self._parameterNode, "modelFolder", path))
        self.ui.pythonPathLineEdit.currentPathChanged.connect(
            lambda path: setattr(self._parameterNode, "python", path))
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)
        self.initializeParameterNode()

    def cleanup(self):
        self.timer.stop()
        if self.logic and self.logic.running():
            self.logic.cancel()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onNodeAdded(self, caller, event):
        # Names are set after the node is added: pick on the next turn of the event loop.
        qt.QTimer.singleShot(0, self.autoPick)

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        self.autoPick()

    def setParameterNode(self, parameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._guiObserver)
            self.removeObserver(self._parameterNode, slicer.vtkCommand.ModifiedEvent, self.updateGUI)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._guiObserver = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, slicer.vtkCommand.ModifiedEvent, self.updateGUI)
            self.updateGUI()

    def autoPick(self, overwrite=False):
        """Fill empty selectors (all with `overwrite`) from the volume names."""
        if not self._parameterNode:
            return
        nodes = [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
                 if not n.IsA("vtkMRMLLabelMapVolumeNode")
                 and n.GetAttribute("UncertaintySeg.Heatmap") != "1"]
        for modality, index in auto_pick([n.GetName() for n in nodes]).items():
            if index is not None and (overwrite or getattr(self._parameterNode, modality) is None):
                setattr(self._parameterNode, modality, nodes[index])

    def updateGUI(self, caller=None, event=None):
        p = self._parameterNode
        running = self.logic.running()
        ready = p is not None and not VolumeSelection({m: getattr(p, m) for m in MODALITIES}).missing()
        self.ui.applyButton.enabled = running or ready
        self.ui.applyButton.text = _("Cancel") if running else _("Apply")
        hasRun = self.run is not None and not running
        self.ui.editButton.enabled = self.ui.exportButton.enabled = hasRun
        if self.run is not None and p is not None:
            if p.region != self.run.uncertainty_region:
                self.logic.setRegion(self.run, p.region)
            self.logic.setThreshold(self.run, p.heatmapThreshold)

    def onApply(self):
        if self.logic.running():
            self.timer.stop()
            self.logic.cancel()
            self.ui.statusLabel.text = _("Cancelled; the scene was left as it was.")
            self.ui.progressBar.value = 0
            self.updateGUI()
            return
        with slicer.util.tryWithErrorDisplay(_("UncertaintySeg could not start."), waitCursor=True):
            if not self.logic.ensureDependencies(self._parameterNode):
                return
            self.logic.start(self._parameterNode)
            self.ui.statusLabel.text = _("Starting...")
            self.ui.logButton.enabled = True
            self.timer.start()
        self.updateGUI()

    def onTimer(self):
        for event in self.logic.poll():
            self.ui.progressBar.value = int(100 * overall_fraction(event))
            label = STAGE_LABELS.get(event.stage, event.stage)
            self.ui.statusLabel.text = f"{label}: {event.message}" if event.message else label
        if self.logic.running():
            return
        self.timer.stop()
        try:
            self.run = self.logic.finish()
        except Exception as error:  # the process's own readable message, or a load error
            self.ui.statusLabel.text = _("Failed.")
            slicer.util.errorDisplay(str(error), detailedText="\n".join(self.logic.runner.process.log))
        else:
            self.ui.statusLabel.text = _("Done: {folder}").format(folder=self.run.output_dir)
            self.showRun(self.run)
        self.updateGUI()

    def showRun(self, run):
        headline, hint = triage_summary(run.report)
        self.ui.triageLabel.text = headline
        self.ui.hintLabel.text = hint
        self.rows = box_rows(run.boxes, run.rois)
        table = self.ui.boxTable
        table.blockSignals(True)
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

    def onBoxClicked(self, rowIndex, column):
        if 0 <= rowIndex < len(self.rows):
            self.logic.centreOn(self.rows[rowIndex])

    def onBoxItemChanged(self, item):
        if item.column() == 0 and item.row() < len(self.rows):
            set_reviewed(self.rows[item.row()], item.checkState() == qt.Qt.Checked)
            self.ui.reviewProgressLabel.text = review_progress(self.rows)

    def onShowLog(self):
        process = self.logic.runner.process
        text = "\n".join(process.log) if process else ""
        slicer.util.infoDisplay(_("Pipeline log (details below)."), detailedText=text or _("(empty)"))

    def onEdit(self):
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(self.run.segmentation)
        editor.setSourceVolumeNode(self.run.reference_volume)
        configure_segment_editor(editor.mrmlSegmentEditorNode(), self.run.segmentation,
                                 self.run.reference_volume)

    def onExport(self):
        path = qt.QFileDialog.getSaveFileName(None, _("Export label map"),
                                              str(Path.home() / "segmentation.nii.gz"),
                                              "NIfTI (*.nii.gz *.nii)")
        if path:
            with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
                written = self.logic.exportLabels(self.run, path)
                self.ui.statusLabel.text = _("Exported {path}").format(path=written)


class UncertaintySegTest(ScriptedLoadableModuleTest):
    """Builds a phantom case, runs the Logic with the bundled demo model (or, without
    torch, loads a synthetic output folder) and checks the nodes, the boxes and export.
    The case-building helpers live in Testing/Python/self_test_cases.py."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_UncertaintySeg_phantom_case()

    @staticmethod
    def _cases():
        path = Path(__file__).parent / "Testing" / "Python" / "self_test_cases.py"
        spec = importlib.util.spec_from_file_location("uncertaintyseg_self_test_cases", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def test_UncertaintySeg_phantom_case(self):
        self.delayDisplay("Starting the UncertaintySeg test")
        cases = self._cases()
        folder = cases.work_dir()
        logic = UncertaintySegLogic()
        withTorch = importlib.util.find_spec("torch") is not None
        run = (cases.pipeline_run(logic, folder) if withTorch
               else cases.stored_run(logic, folder))
        segments = run.segmentation.GetSegmentation()
        names = sorted(segments.GetNthSegment(i).GetName()
                       for i in range(segments.GetNumberOfSegments()))
        self.assertEqual(names, ["ED", "ET", "NCR"])
        self.assertTrue(segments.ContainsRepresentation("Closed surface"))
        self.assertEqual(len(run.rois), len(run.boxes))
        red = slicer.app.layoutManager().sliceWidget("Red").sliceLogic().GetSliceCompositeNode()
        self.assertEqual(red.GetForegroundVolumeID(), run.uncertainty.GetID())
        exported = logic.exportLabels(run, folder / "exported.nii.gz")
        labels = slicer.util.loadLabelVolume(str(exported))
        original = slicer.util.loadLabelVolume(str(run.output_dir / "segmentation.nii.gz"))
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(labels),
                                      slicer.util.arrayFromVolume(original))
        logging.info("UncertaintySeg: %d boxes, %s", len(run.boxes), triage_summary(run.report)[0])
        self.delayDisplay("UncertaintySeg test passed (%s)"
                          % ("pipeline run" if withTorch else "stored output"))
