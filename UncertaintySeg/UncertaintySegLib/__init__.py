"""UncertaintySegLib: the Slicer side of UncertaintySeg.

Small classes that receive their collaborators (the scene and module logics) so that they
run the same inside the Slicer application and under the slicer-core wheel:

- inputs:  choosing FLAIR/T1/T1ce/T2 from volume names, grid checks, writing inputs
- process: the pipeline as a background process (JSON-lines progress, cancel = kill tree)
- runner:  one run on scene volumes, from inputs to loaded results
- session: the runs of a scene (what the module's Logic does), shown and exported
- scene:   an output folder into MRML nodes (segmentation, heatmap, ROIs, hierarchy)
- export:  the edited segmentation back to a BraTS label map
- review:  box table, reviewed ticks, centring the views, triage text
- editing: the Segment Editor on a result (the user's overwrite mode is kept)
- install_guard: one dependency installation at a time, panel off meanwhile
- demo_case: the bundled phantom as four volumes, to try the module
- render:  offscreen slice and 3D views (EGL) to PNG
- bundle:  a whole scene (.mrb) from the command line
- deps:    installing the pipeline's packages into Slicer's Python on first use
- worklist, worklist_scene: a cohort of output folders ranked by triage score, review
  state in review.json
- run_panel, review_panel, worklist_panel: the Qt glue of the panel's sections (the only
  Lib files importing qt, imported only by the module file)

Nothing here imports torch; submodules import slicer/vtk only when they need them, so
importing this package is cheap.
"""

__all__ = ["bundle", "context", "demo_case", "deps", "editing", "export", "inputs",
           "install_guard", "process", "render", "review", "runner", "scene", "segments",
           "session", "volumes", "worklist", "worklist_scene"]
