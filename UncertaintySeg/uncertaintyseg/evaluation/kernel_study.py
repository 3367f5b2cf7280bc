"""The paper's kernel questions (its Figure 3 and Figure S-1): Dice and 3D refinement
cost for maximum overlaps 10 / 40 / 70 % and cube sides 16 / 32 / 64 mm.

For each case the run's P2D and uncertainty (its output folder) are put back on the
working grid the pipeline used (nnU-Net's crop; a resampled grid is refused), and the
kernel search, the 3D refinement, the fusion, the export and the post-processing are
redone with the run's model for every setting. Cube side applies to all three regions.
The default setting reproduces the run's own boxes only when the model's sides are used
for every region, so the model's setting is added as its own row.
"""

from __future__ import annotations

import time

import numpy as np

from .. import REGIONS

OVERLAPS = (0.1, 0.4, 0.7)
SIDES_MM = (16.0, 32.0, 64.0)


def _working_maps(grid, maps: np.ndarray) -> np.ndarray:
    """Input-grid maps (3, Z, Y, X) cropped to the working grid (no resampling)."""
    if grid.resampled:
        raise ValueError("the working grid is resampled: the kernel study needs the run's "
                         "maps on the working grid, which the output folder does not keep")
    window = tuple(slice(o, o + n) for o, n in zip(grid.offset, grid.mask.shape))
    return np.ascontiguousarray(maps[(slice(None), *window)])


def _side_label(sides) -> str:
    """"32" for one side for all regions, "32/32/64" (ET/TC/WT) otherwise."""
    if len(set(sides)) == 1:
        return f"{sides[0]:g}"
    return "/".join(f"{s:g}" for s in sides)


def study_case(case_dir, output, reference, model, settings) -> list[dict]:
    """Rows {overlap, side_mm, cubes, refined_voxels, refine_s, ET/TC/WT dice} of one case."""
    from ..stages.fusion import fuse
    from ..files.io import load_case
    from ..stages.kernels import search_regions
    from .metrics import dice
    from ..run.pipeline import _prepare, segment
    from ..stages.refine import refine

    case = load_case(case_dir=case_dir)
    grid = _prepare(case, model, settings)  # the grid the run's networks worked on
    p2d = _working_maps(grid, output.probabilities_2d)  # set by kernel_study
    uncertainty = _working_maps(grid, output.uncertainty)
    grid_settings = [(o, (s, s, s)) for o in OVERLAPS for s in SIDES_MM]
    grid_settings.append((settings.max_overlap, tuple(model.kernel_mm)))
    rows = []
    for overlap, sides in grid_settings:
        boxes = search_regions(uncertainty, grid.spacing, sides, overlap,
                               settings.min_score_fraction, settings.max_boxes)
        start = time.perf_counter()
        p3d = refine(model.network_3d, grid.image, boxes, batch_size=settings.batch_size_3d,
                     device="cpu", divisor=model.divisor_3d)
        seconds = time.perf_counter() - start
        fused = np.clip(grid.to_input(fuse(p2d, p3d, model.fusion_weights)), 0.0, 1.0)
        regions = segment(fused, settings, model)
        row = {"case": case.case_id, "overlap": overlap,
               "side_mm": _side_label(sides), "cubes": len(boxes),
               "refined_voxels": int(sum(b.volume for b in boxes)), "refine_s": round(seconds, 2)}
        row.update({f"{r} dice": dice(reference.regions[i], regions[i])
                    for i, r in enumerate(REGIONS)})
        rows.append(row)
    return rows


def kernel_study(cases_dir, method, evaluation) -> list[dict]:
    """Rows of every case the method has a readable result for."""
    from pathlib import Path

    from ..networks.models import load_model
    from ..run.pipeline import Settings
    from ..contract_names import IMAGE_FILES
    from .pairing import load_output, load_reference, read_maps, result_path

    rows, model = [], None
    for case_id in evaluation.records[method.name]:
        reference = load_reference(Path(cases_dir) / case_id)
        folder = result_path(method, case_id)
        output = load_output(method, folder, reference)
        output.probabilities_2d = read_maps(folder / IMAGE_FILES["probabilities_2d"],
                                            reference.grid)
        report = output.report or {}
        if model is None:
            model = load_model(report.get("model", {}).get("name", "brats-mini"))
        recorded = report.get("settings", {})
        # The search runs on the binned entropy (pipeline._search); the folder keeps the
        # run's --uncertainty-map, which is that map only when it was binned (runs from
        # before the option had only that one).
        if recorded.get("uncertainty_map", "binned") != "binned":
            raise ValueError(f"{folder}: the kernel study redoes the kernel search on the "
                             "binned entropy, and this run wrote its "
                             f"{recorded['uncertainty_map']} map; run predict with "
                             "--uncertainty-map binned for the study")
        settings = Settings(projections="preview", device="cpu",
                            min_component_fraction=recorded.get("min_component_fraction"),
                            postprocess=recorded.get("postprocess", True))
        rows += study_case(Path(cases_dir) / case_id, output, reference, model, settings)
    return rows


def mean_rows(rows: list[dict]) -> list[dict]:
    """Means over cases per (overlap, side)."""
    keys = sorted({(r["overlap"], r["side_mm"]) for r in rows})
    result = []
    for overlap, side in keys:
        chosen = [r for r in rows if r["overlap"] == overlap and r["side_mm"] == side]
        mean = {"overlap": overlap, "side_mm": side, "cases": len(chosen)}
        for name in ("cubes", "refined_voxels", "refine_s", *(f"{r} dice" for r in REGIONS)):
            mean[name] = float(np.mean([r[name] for r in chosen]))
        result.append(mean)
    return result


def write_kernel_study(cases_dir, evaluation, out) -> dict:
    """kernel_study.md / .csv (per case and mean) for the first (fused) method."""
    from .store import write_text_atomic
    from .summary import markdown_rows
    from .table import rows_to_csv

    rows = kernel_study(cases_dir, evaluation.methods[0], evaluation)
    if not rows:
        return {"markdown": "No case to study.\n", "figures": {}}
    means = mean_rows(rows)
    markdown = (markdown_rows(means, list(means[0]))
                + "\nOne cube side (mm) for all three regions, or ET/TC/WT sides: the "
                  "model's own setting. refine_s: wall seconds of the 3D refinement on the "
                  "CPU (shared machine).\n")
    write_text_atomic(out / "kernel_study.md", "# Kernel study\n\n" + markdown)
    write_text_atomic(out / "kernel_study.csv", rows_to_csv(rows))
    return {"markdown": markdown, "figures": {}}
