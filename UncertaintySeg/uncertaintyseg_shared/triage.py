"""The case-level triage default, shown by the Slicer module and used by the pipeline."""

# Case-level triage threshold when a model.json has none (`evaluate --calibrate-triage`
# or `train` store one chosen on validation cases).
DEFAULT_TRIAGE_THRESHOLD = 0.25
