"""Validation of a finished model folder with the real pipeline (`predict`'s code).

This module stands at the CLI's level (it imports `pipeline`), above the trainers; the
chain never imports it, `training.cli` passes it in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import REGIONS


def _region_means(per_case: dict) -> dict:
    return {r: {k: float(np.mean([c[r][k] for c in per_case.values()]))
                for k in ("dice", "hd95")} for r in REGIONS}


def validate_model(model_dir: Path, source: Path, case_ids: list[str],
                   projections: str | int = "preview", *, progress=None,
                   outputs_dir: Path | None = None, device: str = "cpu") -> dict:
    """Dice and HD95 per region of the fused result and of the 2D-only result (P2D > 0.5,
    same post-processing) on `case_ids` (sub-folders of `source`), and their means.

    With `outputs_dir`, each case's output contract is kept in outputs_dir/<case>, for
    `evaluate` (the uncertainty measures and the card's estimator table) without a
    second run of the pipeline. `device`: the training's (train --device)."""
    from ..files.contract import write_outputs
    from ..files.convert import label_file
    from ..files.io import load_case
    from ..files.label_maps import load_labels, regions_to_labels
    from ..evaluation.metrics import case_metrics
    from ..networks.models import load_model
    from ..run.pipeline import segment
    from ..run.predict import run

    import torch

    model = load_model(str(model_dir))
    # The training's own thread count (train --threads): `run` sets torch's threads, and
    # its `auto` would leave the rest of the training on another count.
    values = {"projections": projections, "device": device,
              "threads": torch.get_num_threads()}
    fused, only_2d = {}, {}
    for done, case_id in enumerate(case_ids):
        case = load_case(case_dir=Path(source) / case_id)
        result, settings = run(case, values, model=model)
        if outputs_dir is not None:
            write_outputs(result, Path(outputs_dir) / case_id, overwrite=True)
        reference, _ = load_labels(label_file(Path(source) / case_id),
                                   reference=case.reference)
        fused[case_id] = case_metrics(reference, result.labels, case.spacing)
        labels_2d = regions_to_labels(segment(result.probabilities_2d, settings, model),
                                      case.naming)
        only_2d[case_id] = case_metrics(reference, labels_2d, case.spacing)
        if progress is not None:
            progress("validate", done + 1, len(case_ids),
                     f"{case_id}: WT Dice {fused[case_id]['WT']['dice']:.3f}")
    return {"projections": projections, "cases": fused, "mean": _region_means(fused),
            "cases_2d_only": only_2d, "mean_2d_only": _region_means(only_2d)}
