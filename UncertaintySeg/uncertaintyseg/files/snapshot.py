"""The PNG at a glance: one axial slice of a case with its segmentation, uncertainty
heatmap and refinement boxes (docs/OUTPUT-CONTRACT.md, `snapshot.png`).

Left panel: FLAIR in grey with the ET / TC / WT outlines. Right panel: FLAIR with the
normalised entropy (max over the three regions; transparent below `HEAT_FLOOR`) and
the refinement boxes that cut the slice, labelled `region#rank`. The slice goes
through the centre of the highest-scoring box (or, without boxes, holds the most
tumour). Arrays are in SimpleITK order (Z, Y, X), axis 0 is the axial slice axis.

The view is radiological, as in 3D Slicer: anterior up, the patient's right on the
image's left. The orientation comes from the SimpleITK direction (`direction`, 9 numbers
row-major, LPS); None means the identity, which is what SimpleITK reports for BraTS
files (index x runs to the patient's left, index y to posterior), so those arrays are
shown unflipped with row 0 at the top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
# A bare Figure on the Agg canvas: no display needed, and pyplot's global backend and
# figure registry (a notebook's, say) stay untouched.
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize, to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from scipy import ndimage

from uncertaintyseg_shared.palette import MAP_LABELS, OWN_MAP_METHODS, written_map  # noqa: F401

from .. import REGIONS, palette
from .label_maps import labels_to_regions
from .output_safety import atomic_path

FIGSIZE_IN = (12.0, 6.0)
DPI = 100
# The heatmap and the box colours are Slicer's (uncertaintyseg.palette): the PNG, the
# module and the .mrb scene look alike.
HEAT_FLOOR = palette.HEATMAP_THRESHOLD   # a voxel-map value below this is transparent
HEAT_ALPHA = palette.HEATMAP_OPACITY
HEAT_CMAP = ListedColormap([palette.heatmap_rgba(i / 255) for i in range(256)],
                           name="uncertaintyseg-heatmap")
# Far from the tumour (brain edge, cortex) a model is unsure too: on a BraTS case with
# brats-mini 44 % of the brain beyond 15 mm is above HEAT_FLOOR, only 2.5 % above 0.5.
# There only FAR_FLOOR and up is drawn, faint, so the picture is not a brain-wide wash
# and a distant hot spot (a missed lesion) still shows.
FAINT_BEYOND_MM = 15.0
FAR_FLOOR = 0.5
FAINT_FACTOR = 0.5
REGION_COLOURS = {r: to_hex(c) for r, c in palette.REGION_COLOURS.items()}
REGION_NAMES = {"ET": "enhancing tumour", "TC": "tumour core", "WT": "whole tumour"}
# TC is drawn wide under a thin ET line: where the two borders coincide (a core that is
# all enhancing rim) the TC colour shows on both sides of the ET line instead of vanishing.
OUTLINE_WIDTHS = {"WT": 1.6, "TC": 3.4, "ET": 1.4}
CROP_MARGIN_VOX = 6
_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))   # (negative, positive) per LPS axis


SHOWN_RANKS = 3
NOT_CLINICAL = "research software, not for clinical use"


def _box_centre_z(box, n_slices: int) -> int:
    return int(np.clip(int(box.start[0]) + int(box.size[0]) // 2, 0, n_slices - 1))


def choose_slice(labels: np.ndarray, boxes: Sequence = (),
                 uncertainty: np.ndarray | None = None) -> int:
    """Index (axis 0) of the slice to show.

    The centre slice `start_z + size_z // 2` of the highest-scoring box (the first one
    on a tie); without boxes the slice with the most tumour voxels (labels > 0); without
    tumour the slice with the largest summed uncertainty (3, Z, Y, X) if given; else the
    middle slice.
    """
    n_slices = labels.shape[0]
    if len(boxes):
        return _box_centre_z(max(boxes, key=lambda b: float(b.score)), n_slices)
    tumour = np.count_nonzero(labels.reshape(n_slices, -1), axis=1)
    if tumour.any():
        return int(np.argmax(tumour))
    if uncertainty is not None and np.any(uncertainty > 0):
        return int(np.argmax(np.asarray(uncertainty).sum(axis=(0, 2, 3))))
    return n_slices // 2


def _check_inputs(flair, uncertainty, labels) -> None:
    if flair.ndim != 3:
        raise ValueError(f"flair must be (Z, Y, X), got shape {flair.shape}")
    if uncertainty.shape != (3,) + flair.shape:
        raise ValueError(f"uncertainty must be (3,) + {flair.shape}, got {uncertainty.shape}")
    if labels.shape != flair.shape:
        raise ValueError(f"labels must be {flair.shape} like flair, got {labels.shape}")


def view_flips(direction) -> tuple[bool, bool, np.ndarray]:
    """(flip_rows, flip_cols, axes) for a radiological view; axes[:, j] is the LPS
    direction of index axis j (x, y, z)."""
    axes = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
    x_axis, y_axis = axes[:, 0], axes[:, 1]
    # Screen right should be the patient's left (+L) and screen down posterior (+P).
    flip_cols = np.argmax(np.abs(x_axis)) == 0 and x_axis[0] < 0
    flip_rows = np.argmax(np.abs(y_axis)) == 1 and y_axis[1] < 0
    return bool(flip_rows), bool(flip_cols), axes


def _letter(vector: np.ndarray) -> str:
    k = int(np.argmax(np.abs(vector)))
    return _LETTERS[k][int(vector[k] > 0)]


def view_box(flair: np.ndarray) -> tuple[slice, slice]:
    """(rows, cols) bounding box of the non-zero FLAIR (the brain) plus a margin."""
    footprint = np.any(flair != 0, axis=0)
    if not footprint.any():
        return slice(0, flair.shape[1]), slice(0, flair.shape[2])
    box = []
    for axis in (0, 1):
        hits = np.flatnonzero(footprint.any(axis=1 - axis))
        box.append(slice(max(hits[0] - CROP_MARGIN_VOX, 0),
                         min(hits[-1] + 1 + CROP_MARGIN_VOX, footprint.shape[axis])))
    return box[0], box[1]


def _grey_limits(flair_slice: np.ndarray) -> tuple[float, float]:
    # Robust window over the brain: MR intensities have no absolute scale and a few
    # bright vessels would otherwise wash out the grey matter.
    values = flair_slice[flair_slice != 0]
    if values.size == 0:
        values = flair_slice.ravel()
    low, high = np.percentile(values, [0.5, 99.5])
    return float(low), float(max(high, low + 1e-6))


def setup_panel(ax, flair_slice, view, flips, aspect) -> None:
    """FLAIR in grey, cropped to the brain, oriented radiologically, with A/P/R/L letters."""
    rows, cols, axes = view[0], view[1], flips[2]
    low, high = _grey_limits(flair_slice)
    ax.imshow(flair_slice, cmap="gray", vmin=low, vmax=high, origin="upper",
              aspect=aspect, interpolation="nearest")
    top, bottom = rows.start - 0.5, rows.stop - 0.5
    left, right = cols.start - 0.5, cols.stop - 0.5
    ax.set_ylim((top, bottom) if flips[0] else (bottom, top))
    ax.set_xlim((right, left) if flips[1] else (left, right))
    x_right = -axes[:, 0] if flips[1] else axes[:, 0]
    y_down = -axes[:, 1] if flips[0] else axes[:, 1]
    style = dict(transform=ax.transAxes, color="white", fontsize=12, fontweight="bold")
    ax.text(0.5, 0.985, _letter(-y_down), ha="center", va="top", **style)
    ax.text(0.5, 0.015, _letter(y_down), ha="center", va="bottom", **style)
    ax.text(0.012, 0.5, _letter(-x_right), ha="left", va="center", **style)
    ax.text(0.988, 0.5, _letter(x_right), ha="right", va="center", **style)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_outlines(ax, labels_slice: np.ndarray) -> None:
    handles = []
    regions = dict(zip(REGIONS, labels_to_regions(labels_slice)))
    for region in ("WT", "TC", "ET"):  # outer first, so inner outlines are drawn on top
        mask = regions[region]
        colour = REGION_COLOURS[region]
        if mask.any():
            ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour],
                       linewidths=OUTLINE_WIDTHS[region])
        handles.append(Line2D([], [], color=colour, lw=2.5,
                              label=f"{region}  {REGION_NAMES[region]}"))
    # Below the image, not on it: a legend inside the axes would hide brain.
    ax.legend(handles=handles[::-1], loc="upper center", bbox_to_anchor=(0.5, -0.005), ncol=3,
              fontsize=9, frameon=False, labelcolor="white", handlelength=1.6)


def _shown_boxes(boxes: Sequence, z: int) -> list:
    """The boxes drawn on slice z: those cutting it, ranked up to SHOWN_RANKS."""
    return [b for b in sorted(boxes, key=lambda b: (str(b.region), int(b.rank)))
            if b.start[0] <= z < b.start[0] + b.size[0] and int(b.rank) <= SHOWN_RANKS]


def _draw_boxes(ax, boxes: Sequence, z: int, flips) -> int:
    """Rectangles for the top-ranked boxes whose z-range holds slice z; returns how many.

    Only ranks up to SHOWN_RANKS per region are drawn: with 8 boxes per region the
    overlapping outlines hide the heatmap they are meant to explain.
    """
    shown = _shown_boxes(boxes, z)
    ax.apply_aspect()  # the final axes box: label extents are measured in pixels below
    renderer = ax.figure.canvas.get_renderer()
    placed = []
    for box in shown:
        (_, y0, x0), (_, ky, kx) = box.start, box.size
        colour = REGION_COLOURS.get(str(box.region), "white")
        # A black stroke under the dashed line keeps it visible on the bright heatmap.
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), kx, ky, fill=False, edgecolor=colour,
                               linewidth=1.8, linestyle="--", path_effects=[
                                   patheffects.withStroke(linewidth=3.6, foreground="black")]))
        # Label at the corner shown top-left, whatever the flips.
        label_x = x0 + kx - 0.5 if flips[1] else x0 - 0.5
        label_y = y0 + ky - 0.5 if flips[0] else y0 - 0.5
        text = ax.text(label_x, label_y, f"{box.region}#{box.rank}", color="black",
                       fontsize=8, fontweight="bold", ha="left", va="bottom", clip_on=True,
                       bbox=dict(facecolor=colour, edgecolor="none", pad=1.0))
        placed.append(_clear_of(ax, text, placed, renderer))
    return len(shown)


def _clear_of(ax, text, placed: list, renderer):
    """Move `text` down the screen until its tag covers none already placed (boxes of
    one tumour share corners: their tags would pile up); returns its pixel extent."""
    # The text's extent leaves out the coloured tag around it (1 pt pad): 3 px more.
    extent = text.get_window_extent(renderer).padded(3)
    for _ in range(4 * SHOWN_RANKS * len(REGIONS)):
        if not any(extent.overlaps(other) for other in placed):
            break
        x, y = ax.transData.transform(text.get_position())
        text.set_position(ax.transData.inverted().transform((x, y - extent.height)))
        extent = text.get_window_extent(renderer).padded(3)
    return extent


def _near_tumour(labels_slice: np.ndarray, spacing_yx) -> np.ndarray:
    """bool (Y, X): within FAINT_BEYOND_MM of the tumour on this slice (all True when
    the slice has none: then nothing is faded)."""
    tumour = labels_slice > 0
    if not tumour.any():
        return np.ones_like(tumour)
    distance = ndimage.distance_transform_edt(~tumour, sampling=spacing_yx)
    return distance <= FAINT_BEYOND_MM


# The maps' names (MAP_LABELS, written_map) are shared with the Slicer module's legend.


def _draw_heatmap(fig, ax, cax, heat: np.ndarray, near: np.ndarray, aspect: float,
                  *, label: str = MAP_LABELS["binned"]) -> None:
    shown = np.ma.masked_where((heat < HEAT_FLOOR) | (~near & (heat < FAR_FLOOR)), heat)
    alpha = np.where(near, HEAT_ALPHA, HEAT_ALPHA * FAINT_FACTOR)
    # The colour map carries its own alpha (more opaque as uncertainty grows), which
    # matplotlib multiplies with `alpha`, as Slicer does with the layer's opacity.
    image = ax.imshow(shown, cmap=HEAT_CMAP, vmin=0.0, vmax=1.0, alpha=alpha,
                      origin="upper", aspect=aspect, interpolation="nearest")
    image.set_alpha(alpha)
    bar = fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), HEAT_CMAP), cax=cax)
    bar.ax.axhspan(0.0, HEAT_FLOOR, color="black")
    bar.set_label(f"{label} (max over ET, TC, WT)")
    ax.text(0.5, -0.01, f"shown from {HEAT_FLOOR:g}; beyond {FAINT_BEYOND_MM:g} mm of "
            f"tumour and boxes: from {FAR_FLOOR:g}, faint", transform=ax.transAxes, ha="center",
            va="top", color="#bbbbbb", fontsize=9)


QUALITY_CHARS = 170  # the quality line's length at fontsize 9 across the picture


def render_figure(flair, uncertainty, labels, boxes: Sequence, spacing_zyx: Sequence[float],
                  *, title: str = "", direction=None, note: str = NOT_CLINICAL,
                  quality: str = "", heat_label: str = MAP_LABELS["binned"]) -> Figure:
    """The snapshot as a matplotlib Figure (FIGSIZE_IN at DPI); see `write_snapshot`.

    The axes are labelled "anatomy", "uncertainty" and "colorbar" (`Axes.get_label()`).
    """
    flair, labels = np.asarray(flair), np.asarray(labels)
    uncertainty = np.asarray(uncertainty, dtype=np.float32)
    _check_inputs(flair, uncertainty, labels)
    z = choose_slice(labels, boxes, uncertainty)
    flips = view_flips(direction)
    view = view_box(flair)
    aspect = float(spacing_zyx[1]) / float(spacing_zyx[2])  # pixel height / width
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, facecolor="black")
    FigureCanvasAgg(fig)
    anatomy = fig.add_axes((0.01, 0.07, 0.44, 0.78), label="anatomy")
    heat_ax = fig.add_axes((0.46, 0.07, 0.44, 0.78), label="uncertainty")
    cax = fig.add_axes((0.915, 0.11, 0.015, 0.70), label="colorbar")
    for ax in (anatomy, heat_ax):
        setup_panel(ax, flair[z], view, flips, aspect)
    _draw_outlines(anatomy, labels[z])
    near = _near_tumour(labels[z], (float(spacing_zyx[1]), float(spacing_zyx[2])))
    for box in _shown_boxes(boxes, z):  # a box shows the uncertainty that chose it
        (_, y0, x0), (_, ky, kx) = box.start, box.size
        near[y0:y0 + ky, x0:x0 + kx] = True
    _draw_heatmap(fig, heat_ax, cax, uncertainty[:, z].max(axis=0), near, aspect,
                  label=heat_label)
    n_boxes = _draw_boxes(heat_ax, boxes, z, flips)
    cax.tick_params(colors="white")
    cax.yaxis.label.set_color("white")
    anatomy.set_title("FLAIR + segmentation", color="white", fontsize=11)
    heat_ax.set_title(f"uncertainty + top-{SHOWN_RANKS} boxes per region "
                      f"({n_boxes} here, {len(boxes)} in all)", color="white", fontsize=11)
    fig.suptitle(_headline(title, z, flair.shape[0], boxes), color="white", fontsize=12, y=0.985)
    # The model and "not for clinical use" travel with the picture wherever it is sent.
    fig.text(0.99, 0.008, note, color="#ffb000", fontsize=10, fontweight="bold",
             ha="right", va="bottom")
    if quality:  # the case flag and its reason (report.json `quality`), red when flagged;
        # between the headline and the panel titles, cut to one line (the bottom holds the
        # legend and the provenance note).
        shown = quality if len(quality) <= QUALITY_CHARS else quality[:QUALITY_CHARS - 3] + "..."
        fig.text(0.5, 0.905, shown, color="#ff4040" if "review" in quality else "white",
                 fontsize=9, ha="center", va="center")
    return fig


def _headline(title: str, z: int, n_slices: int, boxes: Sequence) -> str:
    parts = [title] if title else []
    parts.append(f"axial slice {z + 1} / {n_slices}")
    if len(boxes):
        top = max(boxes, key=lambda b: float(b.score))
        parts.append(f"through the centre of box {top.region}#{top.rank} (highest score)")
    else:
        parts.append("slice with the most tumour (no refinement boxes)")
    return "   ".join(parts) + "\n(radiological view: patient's right on image left)"


def write_snapshot(path, flair, uncertainty, labels, boxes: Sequence, spacing_zyx: Sequence[float],
                   *, title: str = "", direction=None, note: str = NOT_CLINICAL,
                   quality: str = "", heat_label: str = MAP_LABELS["binned"]) -> Path:
    """Write the snapshot PNG atomically and return its path.

    flair: (Z, Y, X) any float; uncertainty: (3, Z, Y, X) voxel map in [0, 1] (ET, TC,
    WT), named on the colour bar by `heat_label` (MAP_LABELS); labels: (Z, Y, X) uint8 (1 NCR, 2 ED, 3 or 4 ET); boxes: objects with
    .region, .rank, .score, .start (z, y, x) and .size (kz, ky, kx) in voxels;
    spacing_zyx: (sz, sy, sx) mm, sets the pixel aspect; direction: SimpleITK
    `GetDirection()` (9 numbers) or None for the identity (see module doc); note: the
    line at the bottom (the model, untrained or not, not for clinical use); quality: the
    case flag and its first reason (uncertaintyseg_shared.quality.quality_line), bottom left.
    The picture is FIGSIZE_IN * DPI pixels (1200 x 600).
    """
    path = Path(path)
    fig = render_figure(flair, uncertainty, labels, boxes, spacing_zyx, title=title,
                        direction=direction, note=note, quality=quality,
                        heat_label=heat_label)
    # A reader never sees a half-written PNG; a crash leaves the previous snapshot.
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream:
            fig.savefig(stream, format="png", dpi=DPI, facecolor=fig.get_facecolor())
    return path
