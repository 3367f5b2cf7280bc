"""Case figures for the report: the best, the median and the worst case by the fused WT
Dice, on the axial slice where the fused WT differs most from the reference: the four
modalities, then the reference, the 2D-only and the fused outlines on FLAIR and the
uncertainty map; below them offscreen 3D renders of the reference, 2D-only and fused
surfaces, made by the Slicer Lib's renderer (UncertaintySegLib.surfaces) when the
slicer-core wheel is installed, and left out with a note when it is not."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .. import MODALITIES, REGIONS
from ..files.io import to_image
from ..files.label_maps import regions_to_labels
# The snapshot's panel set-up (brain crop, radiological orientation, grey window) is
# reused so the report and predict's snapshot show a slice the same way.
from ..files.snapshot import HEAT_CMAP, REGION_COLOURS, setup_panel, view_box, view_flips
from .pairing import KIND_2D, KIND_FUSED, load_output, load_reference, result_path, safe_name

WT = REGIONS.index("WT")
RENDER_SIZE = (360, 360)
RENDER_CAPTION = ("3D: closed surfaces seen from the front, tilted up 25 degrees, one camera "
                  "for the three; NCR plum, ED pale cyan (translucent), ET blue, as in Slicer")
# Rendering needs slicer-core's VTK with EGL or OSMesa; a machine without a usable
# OpenGL context raises one of these, and the report goes on without the renders.
RENDER_ERRORS = (ImportError, RuntimeError, OSError, ValueError, AttributeError)


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


def _slice_panels(figure, grid, reference, fused, two_d, z: int) -> None:
    """The two upper rows: the modalities, the outlines and the uncertainty at slice z."""
    flips = view_flips(reference.grid.GetDirection())
    flair = reference.image[MODALITIES.index("flair")]
    view = view_box(flair)
    aspect = reference.spacing[1] / reference.spacing[2]
    panels = [(m, reference.image[i][z], None) for i, m in enumerate(MODALITIES)]
    panels += [("reference", flair[z], reference.regions[:, z]),
               ("2D-only", flair[z], None if two_d is None else two_d.regions[:, z]),
               ("fused", flair[z], fused.regions[:, z]), ("uncertainty", flair[z], None)]
    for k, (name, image, regions) in enumerate(panels):
        ax = figure.add_subplot(grid[k // 4, 3 * (k % 4):3 * (k % 4) + 3])
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


def _render_panels(figure, grid, renders: dict[str, np.ndarray]) -> None:
    for k, (name, pixels) in enumerate(renders.items()):
        ax = figure.add_subplot(grid[2, 4 * k:4 * k + 4])
        ax.imshow(pixels, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"{name}, 3D", color="white", fontsize=10)


def render_case(reference, fused, two_d, title: str,
                renders: dict[str, np.ndarray] | None = None) -> bytes:
    """PNG of one case (see module doc); fused and two_d are pairing.Output; `renders`
    ({name: RGB}, from `surface_renders`) adds a third row when given."""
    z = error_slice(reference.regions[WT], fused.regions[WT])
    rows = 3 if renders else 2
    figure = Figure(figsize=(12, 6.4 + 3.6 * (rows - 2)), dpi=90, facecolor="black")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(rows, 12, height_ratios=[1, 1, 1.25][:rows], left=0.02,
                               right=0.98, bottom=0.05 if renders else 0.02, top=0.9,
                               wspace=0.3, hspace=0.15)
    _slice_panels(figure, grid, reference, fused, two_d, z)
    if renders:
        _render_panels(figure, grid, renders)
    figure.suptitle(f"{title}: axial slice {z} (largest WT error)", color="white",
                    fontsize=11)
    # The outline colours are the palette's (as in snapshot.png), shown, not named.
    handles = [Line2D([], [], color=REGION_COLOURS[r], lw=2.5, label=f"{r} outline")
               for r in ("WT", "TC", "ET")]
    figure.legend(handles=handles, loc="upper center", ncol=3, bbox_to_anchor=(0.5, 0.965),
                  frameon=False, labelcolor="white", fontsize=9)
    if renders:
        figure.text(0.5, 0.01, RENDER_CAPTION, color="white", fontsize=9, ha="center")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", facecolor="black")
    return buffer.getvalue()


def surface_renders(reference, sources: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{name: (H, W, 3) uint8} 3D renders of each source's regions (bool (3, Z, Y, X) on
    the reference grid), by the Slicer Lib; ImportError (with the install hint) when
    slicer-core is missing. The label maps go through temporary NIfTI files so that the
    Lib reads them with Slicer's own reader, as it reads an output folder."""
    # The Slicer side is imported only here, as `uncertaintyseg scene` does: the pipeline
    # itself never imports slicer or vtk.
    from ..runtime.slicer_core import require_slicer_core

    require_slicer_core()
    from UncertaintySegLib.surfaces import render_label_surfaces

    with tempfile.TemporaryDirectory(prefix="uncertaintyseg-renders-") as folder:
        files = {}
        for name, regions in sources.items():
            files[name] = Path(folder) / f"{safe_name(name)}.nii.gz"
            labels = regions_to_labels(regions, "brats2018")
            sitk.WriteImage(to_image(labels, reference.grid), str(files[name]))
        return render_label_surfaces(files, "brats2018", RENDER_SIZE)


def _renders_or_note(reference, fused, two_d) -> tuple[dict | None, str]:
    sources = {"reference": reference.regions}
    if two_d is not None:
        sources["2D-only"] = two_d.regions
    sources["fused"] = fused.regions
    try:
        return surface_renders(reference, sources), ""
    except RENDER_ERRORS as error:
        return None, f"3D surface renders left out ({type(error).__name__}: {error})."


def case_figures(cases_dir, evaluation) -> dict:
    """{"markdown": a note, "figures": {file name: PNG}} for the picked cases of the
    first (fused) method."""
    fused_method = evaluation.methods[0]
    two_d_method = next((m for m in evaluation.methods if m.kind == KIND_2D
                         and m.root == fused_method.root), None)
    figures, notes = {}, set()
    for label, case_id in pick_cases(evaluation.records[fused_method.name]):
        reference = load_reference(Path(cases_dir) / case_id)
        fused = load_output(fused_method, result_path(fused_method, case_id), reference)
        two_d = (load_output(two_d_method, result_path(two_d_method, case_id), reference)
                 if two_d_method is not None and fused_method.kind == KIND_FUSED else None)
        renders, note = _renders_or_note(reference, fused, two_d)
        notes.add(note)
        dice = evaluation.records[fused_method.name][case_id]["voxel"]["WT"]["dice"]
        figures[f"case_{label}_{case_id}.png"] = render_case(
            reference, fused, two_d, f"{label} case {case_id} (fused WT Dice {dice:.3f})",
            renders)
    return {"markdown": "\n".join(sorted(n for n in notes if n)) + "\n", "figures": figures}
