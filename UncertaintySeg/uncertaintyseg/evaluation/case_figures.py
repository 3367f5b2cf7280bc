"""Case figures for the report: the best, the median and the worst case by the fused WT
Dice, on the axial slice where the fused WT differs most from the reference: the four
modalities, then the reference, the 2D-only and the fused outlines on FLAIR and the
uncertainty map."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import MODALITIES, REGIONS
# The snapshot's panel set-up (brain crop, radiological orientation, grey window) is
# reused so the report and predict's snapshot show a slice the same way.
from ..snapshot import HEAT_CMAP, REGION_COLOURS, setup_panel, view_box, view_flips
from .pairing import KIND_2D, KIND_FUSED, load_output, load_reference, result_path

WT = REGIONS.index("WT")


def pick_cases(records: dict[str, dict]) -> list[tuple[str, str]]:
    """[(label, case)] for the best, median and worst fused WT Dice (fewer when there
    are fewer cases)."""
    ranked = sorted(records, key=lambda c: records[c]["voxel"]["WT"]["dice"], reverse=True)
    if not ranked:
        return []
    chosen = [("best", ranked[0]), ("median", ranked[len(ranked) // 2]), ("worst", ranked[-1])]
    seen, result = set(), []
    for label, case in chosen:
        if case not in seen:
            seen.add(case)
            result.append((label, case))
    return result


def error_slice(reference_wt: np.ndarray, predicted_wt: np.ndarray) -> int:
    """Axial index with the most voxels where the two WT masks differ."""
    return int(np.argmax((reference_wt != predicted_wt).sum(axis=(1, 2))))


def _outlines(ax, regions_slice: np.ndarray) -> None:
    for region in ("WT", "TC", "ET"):
        mask = regions_slice[REGIONS.index(region)]
        if mask.any():
            ax.contour(mask.astype(np.float32), levels=[0.5], colors=[REGION_COLOURS[region]],
                       linewidths=1.4)


def render_case(reference, fused, two_d, title: str) -> bytes:
    """PNG of one case (see module doc); fused and two_d are pairing.Output."""
    z = error_slice(reference.regions[WT], fused.regions[WT])
    flips = view_flips(reference.grid.GetDirection())
    flair = reference.image[MODALITIES.index("flair")]
    view = view_box(flair)
    aspect = reference.spacing[1] / reference.spacing[2]
    figure = Figure(figsize=(12, 6.4), dpi=90, facecolor="black")
    FigureCanvasAgg(figure)
    panels = [(m, reference.image[i][z], None) for i, m in enumerate(MODALITIES)]
    panels += [("reference", flair[z], reference.regions[:, z]),
               ("2D-only", flair[z], None if two_d is None else two_d.regions[:, z]),
               ("fused", flair[z], fused.regions[:, z]), ("uncertainty", flair[z], None)]
    for k, (name, image, regions) in enumerate(panels):
        ax = figure.add_subplot(2, 4, k + 1)
        setup_panel(ax, image, view, flips, aspect)
        if regions is not None:
            _outlines(ax, regions)
        if name == "uncertainty" and fused.uncertainty is not None:
            heat = np.ma.masked_less(fused.uncertainty[:, z].max(axis=0), 0.05)
            limits = ax.get_xlim(), ax.get_ylim()
            ax.imshow(heat, cmap=HEAT_CMAP, vmin=0, vmax=1, alpha=0.8, aspect=aspect,
                      interpolation="nearest")
            ax.set_xlim(limits[0])  # imshow resets the view to the whole slice
            ax.set_ylim(limits[1])
        ax.set_title(name, color="white", fontsize=10)
    figure.suptitle(f"{title}: axial slice {z} (largest WT error); outlines WT cyan, TC "
                    "yellow, ET red", color="white", fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", facecolor="black")
    return buffer.getvalue()


def case_figures(cases_dir, evaluation) -> dict[str, bytes]:
    """{file name: PNG} for the picked cases of the first (fused) method."""
    from pathlib import Path

    fused_method = evaluation.methods[0]
    two_d_method = next((m for m in evaluation.methods if m.kind == KIND_2D
                         and m.root == fused_method.root), None)
    figures = {}
    for label, case_id in pick_cases(evaluation.records[fused_method.name]):
        reference = load_reference(Path(cases_dir) / case_id)
        fused = load_output(fused_method, result_path(fused_method, case_id), reference)
        two_d = (load_output(two_d_method, result_path(two_d_method, case_id), reference)
                 if two_d_method is not None and fused_method.kind == KIND_FUSED else None)
        dice = evaluation.records[fused_method.name][case_id]["voxel"]["WT"]["dice"]
        figures[f"case_{label}_{case_id}.png"] = render_case(
            reference, fused, two_d, f"{label} case {case_id} (fused WT Dice {dice:.3f})")
    return figures
