"""UncertaintySeg: uncertainty-guided glioma segmentation in 3D Slicer (5.10 or newer).

Thin on purpose: the Widget wires the GUI to a parameter node, the Logic delegates to
UncertaintySegLib (which never imports torch and runs under the slicer-core wheel too),
and the pipeline runs in a separate process (`python -m uncertaintyseg predict`).
Testing/module/ checks this file and its .ui against Slicer's parameterNodeWrapper rules
and the Slicer 5.10 API without the application.
"""

import logging
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from uncertaintyseg_shared.options import OPTIONS  # stdlib only: importable before any install
from UncertaintySegLib.context import SceneLogics
from UncertaintySegLib.deps import ensure_dependencies, slicer_installers
from UncertaintySegLib.inputs import MODALITIES, VolumeSelection, auto_pick, candidate_volumes
from UncertaintySegLib.process import STAGE_LABELS, overall_fraction
from UncertaintySegLib.review_panel import ReviewPanel
from UncertaintySegLib.runner import RunOptions
from UncertaintySegLib.session import RunSession
from UncertaintySegLib.worklist_panel import WorklistPanel
from UncertaintySegLib.demo_case import load_demo_case
from UncertaintySegLib.run_panel import RunPanel
from UncertaintySegLib.inputs import heatmap_ids

DOCS_URL = "https://github.com/UncertaintySeg/UncertaintySeg/blob/main/docs/SLICER-USER.md"
# The model folders used before, kept in Slicer's settings (QSettings), review section 6.
MODEL_FOLDER_KEY = "UncertaintySeg/ModelFolder"


class UncertaintySeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("UncertaintySeg")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        # The logics and widgets the module uses (context.SceneLogics, Edit): without them
        # Slicer names the missing module instead of an AttributeError later (review m5).
        self.parent.dependencies = ["Segmentations", "SegmentEditor", "Markups", "Volumes",
                                    "SubjectHierarchy", "Colors"]
        self.parent.contributors = ["UncertaintySeg developers"]
        self.parent.helpText = _(
            "Segments glioma sub-regions (necrosis NCR, edema ED, enhancing tumour ET) from "
            "FLAIR, T1, T1ce and T2 and shows where the model is unsure: a 2D nnU-Net on "
            "spherical projections gives a voxel-wise entropy map, the most uncertain cubes are "
            "re-segmented by a 3D nnU-Net and the two are fused.<br>Load the four volumes, check "
            "the selectors, press Apply; review the heatmap and the boxes (click a row to jump "
            "to it), correct the segments in the Segment Editor and export a BraTS label map."
            "<br>No data at hand? Press \"Load demo case\". Needs 3D Slicer 5.10 or newer. "
            "Research software: not for clinical use.") + "<br>" + _(
            'See the <a href="{url}">user guide</a>.').format(url=DOCS_URL)
        self.parent.acknowledgementText = _(
            "Method: Yang Z., Yang C., Zhang R., Wang C., Chen M., Yin F.-F., A voxel-wise "
            "uncertainty-guided framework for glioma segmentation using spherical projection-"
            "based U-Net and localized refinement, Medical Physics (2026). Spherical projection: "
            "Yang Z. et al., Quantifying U-Net uncertainty in multi-parametric MRI-based glioma "
            "segmentation by spherical image projection, Medical Physics 51(3):1931-1943 (2024), "
            "doi:10.1002/mp.16695. Networks: Isensee F. et al., nnU-Net, Nature Methods 18, "
            "203-211 (2021).")


def _range(name):
    """The run option's bounds (uncertaintyseg/options.py), so that the panel allows what
    the command line allows. Without a range the connectors overwrite the .ui limits."""
    option = OPTIONS[name]
    return WithinRange(option.kind(option.low), option.kind(option.high))


def _choice(name):
    return Choice(list(OPTIONS[name].choices))


def _default(name):
    return OPTIONS[name].default


# Combo boxes need Choice, sliders a range: parameterNodeWrapper/guiConnectors.py raises in
# connectGui otherwise (review #1, #2; Testing/module/test_parameter_node.py checks).
@parameterNodeWrapper
class UncertaintySegParameterNode:
    flair: vtkMRMLScalarVolumeNode
    t1: vtkMRMLScalarVolumeNode
    t1ce: vtkMRMLScalarVolumeNode
    t2: vtkMRMLScalarVolumeNode
    modelName: Annotated[str, Choice(["default", "phantom", "analytic"])] = "default"
    modelFolder: str = ""
    device: Annotated[str, _choice("device")] = _default("device")
    projections: Annotated[str, _choice("projections")] = _default("projections")
    method: Annotated[str, _choice("method")] = _default("method")
    outputs: Annotated[str, _choice("outputs")] = _default("outputs")
    useModelKernels: bool = True
    kernelEt: Annotated[float, _range("kernel_mm")] = 32.0
    kernelTc: Annotated[float, _range("kernel_mm")] = 32.0
    kernelWt: Annotated[float, _range("kernel_mm")] = 64.0
    maxOverlap: Annotated[float, _range("max_overlap")] = _default("max_overlap")
    minScoreFraction: Annotated[float, _range("min_score_fraction")] = _default("min_score_fraction")
    maxBoxes: Annotated[int, _range("max_boxes")] = _default("max_boxes")
    python: str = ""
    force: bool = False  # predict --force: run a case that fails the input checks
    region: Annotated[str, Choice(["WT", "TC", "ET"])] = "WT"
    heatmapThreshold: Annotated[float, WithinRange(0.0, 1.0)] = 0.2


def _resetViews():
    # resetThreeDViews loops over the 3D views there are: a layout restored without one
    # has none, and threeDWidget(0) would be None (review m3; qMRMLLayoutManager).
    if slicer.app.layoutManager() is not None:
        slicer.util.resetSliceViews()
        slicer.util.resetThreeDViews()


class UncertaintySegLogic(ScriptedLoadableModuleLogic):
    """Runs the pipeline on scene volumes and manages the loaded runs; no GUI needed.
    The work is UncertaintySegLib.session.RunSession's (`self.session`).

    >>> logic = UncertaintySegLogic()
    >>> run = logic.process(logic.getParameterNode())  # blocks until loaded
    """

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.session = RunSession(SceneLogics.from_application(),
                                  Path(slicer.app.temporaryPath) / "UncertaintySeg",
                                  reset_views=_resetViews,
                                  startup_environment=slicer.util.startupEnvironment)
        self.runner = self.session.runner

    def getParameterNode(self):
        return UncertaintySegParameterNode(super().getParameterNode())

    @staticmethod
    def selection(parameters) -> VolumeSelection:
        return VolumeSelection({m: getattr(parameters, m) for m in MODALITIES})

    def ensureDependencies(self, parameters, started=lambda: None) -> bool:
        """Check the Slicer version, then install what the pipeline lacks (after the user
        confirms; `started()` then); skipped when the user runs the pipeline in their own
        Python."""
        if parameters.python:
            return True
        version = f"{slicer.app.majorVersion}.{slicer.app.minorVersion}"
        return ensure_dependencies(slicer_installers(started), slicer_version=version,
                                   testing=slicer.app.testingEnabled())

    def loadDemoCase(self) -> dict:
        """The bundled phantom as {modality: volume node} (after ensureDependencies)."""
        return load_demo_case(self.runner, self.session.logics.volumes,
                              Path(slicer.app.temporaryPath) / "UncertaintySeg" / "demo")

    def start(self, parameters):
        return self.session.start(self.selection(parameters), RunOptions.from_parameters(parameters),
                                  parameters.heatmapThreshold)

    def process(self, parameters, timeout_s: float = 3600.0):
        """Run and load, blocking (for scripts and tests)."""
        return self.session.run_blocking(self.selection(parameters),
                                         RunOptions.from_parameters(parameters),
                                         parameters.heatmapThreshold, timeout_s,
                                         slicer.app.processEvents)

    def loadOutputFolder(self, folder, referenceVolume=None, region="WT"):
        """Load an existing output folder (e.g. from the command line) and show it."""
        return self.session.load_output_folder(folder, referenceVolume, region)

    def exportLabels(self, run, path):
        return self.session.export_labels(run, path)


class UncertaintySegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self._parameterNode = self._guiTag = self.run = None
        self._guiConnected = False

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/UncertaintySeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = UncertaintySegLogic()
        self.review = ReviewPanel(self.ui, self.logic.session, lambda: self.run,
                                  lambda run, path: self.worklist.recordExport(run, path))
        self.runPanel = RunPanel(self.ui, self.logic, lambda: self._parameterNode, self.onRun,
                                 set_busy=lambda busy: self.worklist.setBusy(busy),
                                 update_gui=self.updateGUI, show_progress=self.showProgress)
        # One deferred pick however many nodes a scene load adds (review #21).
        self.pickTimer = qt.QTimer()
        self.pickTimer.setSingleShot(True)
        self.pickTimer.setInterval(0)
        self.pickTimer.timeout.connect(self.autoPick)
        self.connectWidgets()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)
        self.worklist = WorklistPanel(self.layout, self.logic.session.logics,
                                      self.logic.session.loader, self.onWorklistCase)
        # The .ui ends without a spacer, so the worklist section follows the others; the
        # stretch keeps all of them at the top (review m9).
        self.layout.addStretch(1)
        self.initializeParameterNode()

    def connectWidgets(self):
        self.ui.autoPickButton.clicked.connect(lambda: self.autoPick(overwrite=True))
        # str parameters: the path connector takes only pathlib types (guiConnectors.py
        # ctkPathLineEditToPathConnector), so these two are synced by hand (review #9).
        self.ui.modelFolderPathLineEdit.currentPathChanged.connect(
            lambda path: self.setParameter("modelFolder", path))
        self.ui.pythonPathLineEdit.currentPathChanged.connect(
            lambda path: self.setParameter("python", path))
        # Model folders used before are offered again, from Slicer's settings (QSettings;
        # written by addCurrentPathToHistory when a run starts).
        self.ui.modelFolderPathLineEdit.settingKey = MODEL_FOLDER_KEY

    def cleanup(self):
        # Stop the pipeline first: it runs in its own session and would outlive Slicer if
        # saving the worklist's review raised (review m6).
        self.pickTimer.stop()
        self.runPanel.cancel()
        try:
            self.worklist.closeSession()
        except Exception:  # already shown; the module must still let go of the scene
            logging.exception("UncertaintySeg: the worklist review was not saved")
        self.setParameterNode(None)
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        # Stop reacting while hidden; the GUI connectors stay (see setParameterNode).
        if self._parameterNode:
            self.stopObserving(self._parameterNode)

    def stopObserving(self, parameterNode):
        if self.hasObserver(parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI):
            self.removeObserver(parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI)

    def onSceneStartClose(self, caller, event):
        # The nodes of the run are about to go: forget them, stop a run (review #6, #16).
        self.worklist.sceneClosing()
        self.run = None
        self.review.clear()
        self.runPanel.cancel()  # also turns Edit and Export off
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        self.logic.session.prune_runs()  # their nodes are gone: so are their folders (m10)
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onNodeAdded(self, caller, event):
        # Names are set after the node is added: pick on the next turn of the event loop.
        self.pickTimer.start()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        self.autoPick()

    def setParameterNode(self, parameterNode):
        """Observe a parameter node; connect the GUI only when the MRML node changes.

        getParameterNode() makes a new wrapper each time, and in Slicer 5.10 each
        connectGui adds a ModifiedEvent observer that disconnectGui does not remove
        (wrapper.py _connectParametersToGui; from 5.12.0 it does, commit 16069d367e), so
        connecting on every enter() would stack work (review #8, m13).
        """
        old = self._parameterNode
        if old and parameterNode and old.parameterNode is parameterNode.parameterNode:
            parameterNode = old
        elif old and self._guiConnected:
            old.disconnectGui(self._guiTag)  # 5.6/5.8 return no tag: then a no-op
            self._guiConnected = False
        if old:
            self.stopObserving(old)
        self._parameterNode = parameterNode
        if parameterNode:
            if not self._guiConnected:
                self._guiTag, self._guiConnected = parameterNode.connectGui(self.ui), True
            self.addObserver(parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUI)
            self.updateGUI()

    def setParameter(self, name, value):
        if self._parameterNode:
            setattr(self._parameterNode, name, value)

    def autoPick(self, overwrite=False):
        """Fill empty selectors (all with `overwrite`) from the volume names; hide the
        heatmaps of earlier runs from the selectors (review m4)."""
        hidden = heatmap_ids(slicer.mrmlScene)
        for modality in MODALITIES:
            getattr(self.ui, f"{modality}Selector").sortFilterProxyModel().hiddenNodeIDs = hidden
        if not self._parameterNode:
            return
        nodes = candidate_volumes(slicer.mrmlScene)
        for modality, index in auto_pick([n.GetName() for n in nodes]).items():
            if index is not None and (overwrite or getattr(self._parameterNode, modality) is None):
                setattr(self._parameterNode, modality, nodes[index])

    def updateGUI(self, caller=None, event=None):
        p = self._parameterNode
        running = self.logic.runner.running()
        ready = p is not None and not self.logic.selection(p).missing()
        self.ui.applyButton.enabled = not self.runPanel.guard.busy and (running or ready)
        self.ui.applyButton.text = _("Cancel") if running else _("Apply")
        if self.run is not None and self.run.uncertainty.GetScene() is None:
            self.run = None  # its nodes were deleted
            self.review.clear()
        self.logic.session.prune_runs()
        hasRun = self.run is not None and not running
        self.ui.exportButton.enabled = hasRun
        # A worklist case whose input MRIs moved has no volume to edit on.
        self.ui.editButton.enabled = hasRun and self.run.reference_volume is not None
        if p is None:
            return
        for widget, value in ((self.ui.modelFolderPathLineEdit, p.modelFolder),
                              (self.ui.pythonPathLineEdit, p.python)):
            if widget.currentPath != value:
                wasBlocked = widget.blockSignals(True)
                widget.currentPath = value
                widget.blockSignals(wasBlocked)
        for spinBox in (self.ui.kernelEtSpinBox, self.ui.kernelTcSpinBox, self.ui.kernelWtSpinBox):
            spinBox.enabled = not p.useModelKernels
        if self.run is not None:
            self.logic.session.set_region(self.run, p.region)
            self.logic.session.set_threshold(self.run, p.heatmapThreshold)

    def showProgress(self, events):
        for event in events:
            self.ui.progressBar.value = int(100 * overall_fraction(event))
            label = STAGE_LABELS.get(event.stage, event.stage)
            self.ui.statusLabel.text = f"{label}: {event.message}" if event.message else label

    def onRun(self, run):
        self.run = run
        self.review.show(run)

    def onWorklistCase(self, run):
        """A case opened from the worklist, or None: the open case closed (its ticks are no
        longer recorded, so its table goes, review W3)."""
        self.run = run
        if run is not None:
            self.logic.session.show(run)
            self.review.show(run)
        else:
            self.review.clear()
        self.updateGUI()


class UncertaintySegTest(ScriptedLoadableModuleTest):
    """Runs the Logic on a phantom case with the bundled demo model when every pipeline
    requirement is installed in Slicer's Python (deps.pipeline_ready), else loads a
    synthetic output folder; checks the nodes, the boxes and export. The cases and the
    checks live in Testing/Python/self_test_cases.py."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_UncertaintySeg_phantom_case()

    def test_UncertaintySeg_phantom_case(self):
        self.delayDisplay("Starting the UncertaintySeg test")
        cases, logic = _selfTestCases(), UncertaintySegLogic()
        run, how = cases.run_case(logic)
        logging.info("UncertaintySeg self-test: %s", cases.check_run(self, logic, run))
        self.delayDisplay(f"UncertaintySeg test passed ({how})")


def _selfTestCases():
    import importlib.util

    path = Path(__file__).parent / "Testing" / "Python" / "self_test_cases.py"
    spec = importlib.util.spec_from_file_location("uncertaintyseg_self_test_cases", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
