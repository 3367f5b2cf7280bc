"""The runs of one scene: start on four volumes, load, show, adjust the heatmap, export.

Qt-free, so that the module's Logic is a thin shell over it and this is tested under the
slicer-core wheel. What only the application has (resetting the views of the layout,
processing Qt events while blocking) is passed in as callables.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .export import LabelExporter
from .review import centre_views_on
from .runner import CaseRunner, RunOptions
from .scene import HeatmapSettings, ResultLoader, show_in_slice_views


class RunSession:
    """`logics` is a context.SceneLogics; `reset_views()` fits the application's views to
    the loaded data (nothing outside the application); the rest goes to CaseRunner."""

    def __init__(self, logics, work_root=None, reset_views=lambda: None, **runner_options):
        self.logics = logics
        self.runner = CaseRunner(logics, work_root, **runner_options)
        self.loader = ResultLoader(logics)
        self.reset_views = reset_views
        self.runs = []
        self.last_events = []

    def start(self, selection, options: RunOptions, threshold: float = 0.2):
        """Start the pipeline on a VolumeSelection; the heatmap will start at `threshold`."""
        self.loader.heatmap = HeatmapSettings(threshold=threshold)
        return self.runner.start(selection, options)

    def finish(self):
        """Load the finished run and show it; RuntimeError with the pipeline's message
        when it failed. `last_events` holds the progress read last (review #15)."""
        run, self.last_events = self.runner.load_result(self.loader)
        return self.show(run)

    def run_blocking(self, selection, options: RunOptions, threshold: float = 0.2,
                     timeout_s: float = 3600.0, process_events=lambda: None):
        self.start(selection, options, threshold)
        self.runner.wait(timeout_s, process_events)
        return self.finish()

    def load_output_folder(self, folder, reference_volume=None, region: str = "WT"):
        """An existing output folder (e.g. from the command line) into the scene, shown."""
        return self.show(self.loader.load(folder, reference_volume=reference_volume,
                                            region=region))

    def show(self, run):
        """Show a loaded run (this session's, or one the worklist opened) and keep it."""
        show_in_slice_views(self.logics.scene, run.reference_volume, run.uncertainty,
                            self.loader.heatmap.opacity)
        self.reset_views()
        self.runs.append(run)
        return run

    def prune_runs(self) -> list:
        """Forget the runs whose nodes left the scene (deleted, scene closed, worklist
        moved on) and delete their output folders where this session's runner made them
        under its temporary work folder; a worklist's or user's folder is never touched
        (review m10). Returns the runs dropped."""
        gone = [run for run in self.runs if run.segmentation.GetScene() is None
                or run.uncertainty.GetScene() is None]
        self.runs = [run for run in self.runs if run not in gone]
        root = self.runner.work_root.resolve()
        for run in gone:
            folder = Path(run.output_dir).resolve()
            run_dir = next((p for p in (folder, *folder.parents) if p.parent == root), None)
            if run_dir is not None:  # each run has its own folder (mkdtemp)
                shutil.rmtree(run_dir, ignore_errors=True)
        return gone

    def set_region(self, run, region: str) -> None:
        if region != run.uncertainty_region:
            self.loader.set_uncertainty_region(run, region)

    @staticmethod
    def set_threshold(run, threshold: float) -> None:
        """Heatmap transparent under `threshold` (the upper end stays at least 1)."""
        display = run.uncertainty.GetDisplayNode()
        display.SetThreshold(threshold, max(display.GetUpperThreshold(), 1.0))

    def centre_on(self, row) -> None:
        centre_views_on(self.logics.scene, row.center_ras)

    def export_labels(self, run, path):
        return LabelExporter(self.logics).export(run.segmentation, run.reference_volume, path)
