"""The module panel's run section: Apply (and Cancel), the first-run installation, the
demo case, progress and the pipeline log.

Qt glue like review_panel.py and worklist_panel.py: imported only by the module file,
never by another Lib file; the rules it follows live in Qt-free modules tested under the
slicer-core wheel (install_guard, runner.different_cases, demo_case, session).

Slicer and Qt names used, as in UncertaintySeg.py before they moved here: qt.QTimer
(setInterval, timeout, start, stop); slicer.util.tryWithErrorDisplay(message,
waitCursor=...) (util.py:3368), confirmOkCancelDisplay(text, windowTitle) (:3081),
errorDisplay(text, detailedText=...) (:3068), infoDisplay (:3042);
slicer.app.processEvents; ctkPathLineEdit.addCurrentPathToHistory (CTK
ctkPathLineEdit.h:272 at dd4caeae7e, used in DICOMPatcher.py:187); QWidget.enabled,
QLabel.text, QProgressBar.value, QPushButton.text.
"""

from __future__ import annotations

import qt
import slicer
from slicer.i18n import tr as _

from .estimate import TimeEstimate
from .install_guard import InstallGuard
from .runner import RunOptions, different_cases


class RunPanel:
    """`ui`: the module's childWidgetVariables; `logic`: the module's Logic;
    `parameters()`: its parameter node (or None); `on_run(run)`: a run was loaded;
    `set_busy(busy)`: switch the rest of the panel (the worklist) during installation;
    `update_gui()`: the module's updateGUI; `show_progress(events)`: the module's
    progress bar and status line (it weighs the pipeline's progress stages)."""

    def __init__(self, ui, logic, parameters, on_run, *, set_busy, update_gui, show_progress):
        self.ui, self.logic, self.parameters = ui, logic, parameters
        self.on_run, self.set_busy, self.update_gui = on_run, set_busy, update_gui
        self.show_progress = show_progress
        self.guard = InstallGuard(self.setInstalling)
        self.timer = qt.QTimer()
        self.timer.setInterval(200)
        self.timer.timeout.connect(self.onTimer)
        ui.applyButton.clicked.connect(self.onApply)
        self.estimate = TimeEstimate(logic.runner)
        self.estimateTimer = qt.QTimer()
        self.estimateTimer.setInterval(300)
        self.estimateTimer.timeout.connect(self.onEstimateTimer)
        ui.estimateButton.clicked.connect(self.onEstimate)
        ui.loadDemoButton.clicked.connect(self.onLoadDemo)
        ui.logButton.clicked.connect(self.onShowLog)

    # -- installation (review W4) ----------------------------------------------------

    def setInstalling(self, busy):
        """Off while Python packages install: pip's output handler processes Qt events,
        so a click would re-enter (util.py:3944). InstallGuard calls this around it."""
        for widget in (self.ui.inputsCollapsibleButton, self.ui.modelCollapsibleButton,
                       self.ui.advancedCollapsibleButton):
            widget.enabled = not busy
        self.set_busy(busy)
        self.ui.applyButton.enabled = not busy
        if not busy:
            self.update_gui()

    def showInstalling(self):
        self.ui.statusLabel.text = _("Installing Python packages... (details in the Python "
                                     "console; this can take several minutes)")
        slicer.app.processEvents()  # paint it before pip blocks

    def dependenciesReady(self):
        """True when the pipeline's packages are there (installed now if the user agrees);
        None while an installation already runs, False when declined."""
        def ensure():
            with slicer.util.tryWithErrorDisplay(_("UncertaintySeg could not start.")):
                return self.logic.ensureDependencies(self.parameters(), self.showInstalling)
        ready = self.guard.run(ensure)
        if ready:
            self.ui.statusLabel.text = ""
        return ready

    # -- actions ----------------------------------------------------------------------

    def onApply(self):
        if self.logic.runner.running():
            self.cancel(_("Cancelled; the scene was left as it was."))
            return
        # Outside the wait cursor: this may ask a question and run pip (review #25).
        if not self.dependenciesReady():
            return
        parameters = self.parameters()
        selection = self.logic.selection(parameters)
        warning = different_cases({m: n.GetName() for m, n in selection.nodes.items()})
        if warning and not slicer.util.confirmOkCancelDisplay(
                warning + " " + _("Run anyway?"), "UncertaintySeg"):
            return
        with slicer.util.tryWithErrorDisplay(_("UncertaintySeg could not start."), waitCursor=True):
            self.logic.start(parameters)
            if parameters.modelFolder:
                self.ui.modelFolderPathLineEdit.addCurrentPathToHistory()
            self.ui.statusLabel.text = _("Starting...")
            self.ui.logButton.enabled = True
            self.timer.start()
        self.update_gui()

    def onEstimate(self):
        """The expected time of Apply with the panel's settings, in the background."""
        if not self.dependenciesReady():
            return
        with slicer.util.tryWithErrorDisplay(_("The time could not be estimated.")):
            self.estimate.start(RunOptions.from_parameters(self.parameters()))
            self.ui.expectedTimeLabel.text = _("Estimating...")
            self.estimateTimer.start()

    def onEstimateTimer(self):
        sentence = self.estimate.poll()
        if sentence is not None:
            self.estimateTimer.stop()
            self.ui.expectedTimeLabel.text = sentence

    def cancel(self, status=""):
        """Stop polling and kill a running pipeline (nothing is loaded) and estimate."""
        self.timer.stop()
        self.estimateTimer.stop()
        self.estimate.cancel()
        if self.logic.runner.running():
            self.logic.runner.cancel()
        self.ui.statusLabel.text = status
        self.ui.progressBar.value = 0
        self.update_gui()

    def onLoadDemo(self):
        """The bundled phantom as four volumes, with the model trained on such cases."""
        if not self.dependenciesReady():
            return
        parameters = self.parameters()
        with slicer.util.tryWithErrorDisplay(_("The demo case could not be loaded."),
                                             waitCursor=True):
            for modality, node in self.logic.loadDemoCase().items():
                setattr(parameters, modality, node)
            parameters.modelName = "phantom"
            self.ui.statusLabel.text = _('Demo case loaded, model "phantom" (trained on such '
                                         "cases). Press Apply.")

    def onTimer(self):
        self.show_progress(self.logic.runner.poll())
        if self.logic.runner.running():
            return
        self.timer.stop()
        try:
            run = self.logic.session.finish()
        except Exception as error:  # the process's own readable message, or a load error
            self.ui.statusLabel.text = _("Failed.")
            process = self.logic.runner.process
            slicer.util.errorDisplay(str(error),
                                     detailedText="\n".join(process.log if process else []))
        else:
            self.show_progress(self.logic.session.last_events)
            self.ui.progressBar.value = 100
            self.ui.statusLabel.text = _("Done: {folder}").format(folder=run.output_dir)
            self.on_run(run)
        self.update_gui()

    def onShowLog(self):
        process = self.logic.runner.process
        text = "\n".join(process.log) if process else ""
        slicer.util.infoDisplay(_("Pipeline log (details below)."),
                                detailedText=text or _("(empty)"))
