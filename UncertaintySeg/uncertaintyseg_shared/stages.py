"""The progress stages of `predict`, in the order it reports them: what the command line
emits (`--progress json`) and what the Slicer panel weighs into one progress bar.

One JSON object per line: {"stage", "done", "total", "message"}; the last line is
FINISHED (its message names the output folder) or ERROR (a readable error) before a
non-zero exit. Testing/pipeline/test_progress_stages.py runs the real command line and
checks that every stage it emits is one of PREDICT_STAGES, in this order. Other commands
(train, evaluate, convert, predict --cases) report stages of their own, which the panel
never reads.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One stage: its name on the wire, its label in the panel, and its share of a
    typical CPU run (the weights add up to 1)."""

    name: str
    label: str
    weight: float


# Loading and preprocessing come before the first event (the bar stays at 0 meanwhile),
# so their time is in the first stage's weight; fusion and post-processing run between
# refine's last event and write's first, so theirs is in refine's.
PREDICT_STAGES = (
    Stage("uncertainty", "2D projections and uncertainty", 0.65),
    Stage("kernels", "Choosing refinement boxes", 0.03),
    Stage("refine", "3D refinement and fusion", 0.28),
    Stage("write", "Writing results", 0.04),
)
FINISHED = "finished"
ERROR = "error"

STAGE_WEIGHTS = {stage.name: stage.weight for stage in PREDICT_STAGES}
STAGE_LABELS = {**{stage.name: stage.label for stage in PREDICT_STAGES},
                FINISHED: "Finished", ERROR: "Failed"}
