"""`uncertaintyseg explain`: teaching figures, one per stage of the method, for one slice.

    uncertaintyseg explain --case DIR --out DIR [--slice Z] [--model NAME]

The model is `predict`'s (brats-mini unless --model says otherwise: the phantom model
draws misleading figures on a real case). tqdm bars (or --progress json) show each stage.

Runs the real pipeline once (`pipeline.run_case`) and redoes the 2D stage of the chosen
slice origin by origin, so every panel shows what the pipeline computed:
01 the slice projected from 16 origins, 02 the 16 back-projected WT predictions,
03 P2D and the normalised entropy, 04 the cubes the kernel search keeps at overlap
10 / 40 / 70 %, 05 P3D inside the cubes, 06 fused and 2D-only against the reference.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

from .. import MODALITIES, REGIONS

WT = REGIONS.index("WT")
FLAIR = MODALITIES.index("flair")
OVERLAPS = (0.1, 0.4, 0.7)
PROJECTIONS = 16
CAPTIONS = {
    "01_projections.png": "The slice (FLAIR channel of the network's input) projected onto "
                          "a sphere from 16 origins (+): each projection magnifies the "
                          "tissue around its origin and compresses the rest.",
    "02_backprojected.png": "The 2D network's WT probability for each projection, mapped "
                            "back onto the slice: 16 views that disagree where the "
                            "network is unsure.",
    "03_p2d_entropy.png": "P2D, the mean of the 16 back-projected predictions, and the "
                          "normalised entropy of their distribution (the paper's "
                          "voxel-wise uncertainty, which the kernel search uses). The "
                          "heatmap and uncertainty.nii.gz show by default the error "
                          "probability: how likely each voxel's label is wrong, from its "
                          "distance to the predicted border and the entropy of P2D, "
                          "fitted on the model's validation cases (--uncertainty-map "
                          "error-probability; the entropy of P2D when the model has no "
                          "fit).",
    "04_boxes.png": "Cubes the kernel search keeps on this slice, on the WT uncertainty, "
                    "when a new cube may overlap a kept one by at most 10, 40 or 70 % of "
                    "its volume.",
    "05_p3d.png": "P3D: the 3D network's WT probability inside the cubes it refined "
                  "(grey: no cube).",
    "06_fused.png": "Result: 2D-only (P2D > 0.5) and fused (sigmoid of the weighted P2D "
                    "and P3D) against the reference; Dice of the whole volume.",
}


def _figure(columns: int, rows: int, title: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.0 * columns, 3.1 * rows + 0.6), dpi=80)
    FigureCanvasAgg(figure)
    figure.suptitle(title, fontsize=11)
    axes = [figure.add_subplot(rows, columns, k + 1) for k in range(rows * columns)]
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return figure, axes


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def slice_stages(network, image_chw: np.ndarray, mask_hw: np.ndarray, radius: float,
                 divisor: int) -> dict:
    """The 2D stage of one working-grid slice, origin by origin.

    Returns {"origins" (N, 2), "projected" (N, C, H, W), "back" (N, 3, H, W)
    back-projected probabilities, "mean", "entropy" (3, H, W) from predict_slice}.
    """
    import torch

    from ..stages.projection import back_project, project, select_origins
    from ..stages.uncertainty import _network_probs, predict_slice

    origins = select_origins(mask_hw, PROJECTIONS)
    image = torch.as_tensor(image_chw, dtype=torch.float32)
    with torch.inference_mode():
        projected = project(image, torch.from_numpy(origins), radius)
        # the pipeline's own sigmoid, padding and cropping of one network call
        probs = _network_probs(network, projected, divisor, None)
        back = back_project(probs, torch.from_numpy(origins), radius)
    mean, _, entropy = predict_slice(network, image_chw, origins, radius,
                                     batch_size=PROJECTIONS, divisor=divisor)
    return {"origins": origins, "projected": projected.numpy(), "back": back.numpy(),
            "mean": mean, "entropy": entropy}


def _grid_figure(maps: np.ndarray, origins: np.ndarray, title: str, cmap: str,
                 limits=(None, None)) -> bytes:
    columns = int(np.ceil(np.sqrt(len(maps))))
    rows = int(np.ceil(len(maps) / columns))
    figure, axes = _figure(columns, rows, title)
    for ax, image, origin in zip(axes, maps, origins):
        ax.imshow(image, cmap=cmap, vmin=limits[0], vmax=limits[1])
        ax.plot(origin[1], origin[0], "+", color="red", markersize=10, markeredgewidth=2)
    return _png(figure)


def _outline(ax, mask: np.ndarray, colour: str) -> None:
    if mask.any():
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.5)


def _draw_boxes(ax, boxes, z: int) -> int:
    from matplotlib.patches import Rectangle

    shown = 0
    for box in boxes:
        (z0, y0, x0), (kz, ky, kx) = box.start, box.size
        if z0 <= z < z0 + kz:
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), kx, ky, fill=False,
                                   edgecolor="cyan", linewidth=1.5))
            shown += 1
    return shown


def _box_figure(flair, uncertainty_wt, boxes_by_overlap: dict, z: int) -> bytes:
    figure, axes = _figure(len(boxes_by_overlap), 1, "Kernel search: cubes kept on the WT "
                                                     "uncertainty")
    for ax, (overlap, boxes) in zip(axes, boxes_by_overlap.items()):
        ax.imshow(flair, cmap="gray")
        ax.imshow(np.ma.masked_less(uncertainty_wt, 0.05), cmap="inferno", vmin=0, vmax=1,
                  alpha=0.7)
        limits = ax.get_xlim(), ax.get_ylim()
        shown = _draw_boxes(ax, boxes, z)
        ax.set_xlim(limits[0])  # cubes reach past the slice: keep the view on the image
        ax.set_ylim(limits[1])
        ax.set_title(f"overlap <= {overlap:.0%}: {len(boxes)} cubes, {shown} here",
                     fontsize=9)
    return _png(figure)


def _result_figure(flair, reference, two_d, fused, dice_2d, dice_fused) -> bytes:
    figure, axes = _figure(3, 1, "Fused vs 2D-only vs reference (WT cyan, TC yellow, ET red)")
    colours = {"WT": "cyan", "TC": "yellow", "ET": "red"}
    for ax, (name, regions) in zip(axes, (("reference", reference),
                                          (f"2D-only, WT Dice {dice_2d:.3f}", two_d),
                                          (f"fused, WT Dice {dice_fused:.3f}", fused))):
        ax.imshow(flair, cmap="gray")
        for region, colour in colours.items():
            _outline(ax, regions[REGIONS.index(region)], colour)
        ax.set_title(name, fontsize=9)
    return _png(figure)


def _input_slice_to_grid(grid, z_input: int) -> int:
    """The working-grid slice that lands on input slice `z_input` (the grid crops, and
    resamples in-plane only, so slices map one to one)."""
    planes = np.arange(1, grid.mask.shape[0] + 1, dtype=np.float32)
    index_map = np.broadcast_to(planes[:, None, None], grid.mask.shape)[None]
    z_grid = int(round(float(grid.to_input(index_map)[0, z_input].max()))) - 1
    if z_grid < 0:
        raise ValueError(f"slice {z_input} lies outside the brain; choose another --slice")
    return z_grid


def _reference_regions(case_dir: Path, case):
    from ..files.convert import label_file
    from ..files.io import InputError
    from ..files.label_maps import labels_to_regions, load_labels

    try:
        labels, convention = load_labels(label_file(case_dir), reference=case.reference,
                                         allow_cavity=True)
    except InputError:
        return None  # a case without a reference: the last figure shows the outputs only
    return labels_to_regions(labels, convention)


def run_stages(case_dir, model_name: str | None = None, slice_index: int | None = None,
               progress=None) -> dict:
    """Run the pipeline on the case and collect every figure's data (see module doc).

    `model_name` None is `predict`'s default model; `progress(stage, done, total,
    message)` as in `pipeline.run_case`.
    """
    from ..files.io import load_case
    from ..stages.kernels import kernel_voxels, search_kernels
    from ..run.pipeline import Settings, _prepare, run_case, segment
    from ..run.predict import load_run_model
    from ..stages.projection import default_radius

    case_dir = Path(case_dir)
    case = load_case(case_dir=case_dir)
    model = load_run_model(model_name, "cpu", note_stream=sys.stderr)
    settings = Settings(projections=PROJECTIONS, device="cpu", precision="fp32")
    result = run_case(case, model, settings, progress=progress)
    reference = _reference_regions(case_dir, case)
    two_d = segment(result.probabilities_2d, settings, model)
    fused = segment(result.probabilities, settings, model)
    shown = reference if reference is not None else fused
    z = int(np.argmax(shown[WT].sum(axis=(1, 2)))) if slice_index is None else int(slice_index)
    if not 0 <= z < case.image.shape[1]:
        raise ValueError(f"--slice {z}: the case has slices 0-{case.image.shape[1] - 1}")
    grid = _prepare(case, model, settings)  # the working grid run_case used
    z_grid = _input_slice_to_grid(grid, z)
    radius = settings.radius or model.radius or default_radius(grid.mask.shape[1:])
    size = kernel_voxels(model.kernel_mm[WT], case.spacing, case.image.shape[1:])
    if progress is not None:
        progress("explain", 0, 1, f"slice {z}: 16 projections and 3 kernel searches")
    return {"model": model.name, "case": case, "z": z, "z_grid": z_grid, "result": result, "reference": reference,
            "two_d": two_d, "fused": fused,
            "stages": slice_stages(model.network_2d, grid.image[:, z_grid], grid.mask[z_grid],
                                   radius, model.divisor_2d),
            "boxes": {o: search_kernels(result.uncertainty[WT], size, "WT", max_overlap=o)
                      for o in OVERLAPS}}


def render_stages(data: dict) -> dict[str, bytes]:
    """{file name: PNG} of the six figures."""
    from .metrics import dice

    stages, z, result = data["stages"], data["z"], data["result"]
    flair = data["case"].image[FLAIR][z]
    figures = {
        "01_projections.png": _grid_figure(stages["projected"][:, FLAIR], stages["origins"],
                                           "The slice projected from 16 origins", "gray"),
        "02_backprojected.png": _grid_figure(stages["back"][:, WT], stages["origins"],
                                             "Back-projected WT predictions", "viridis",
                                             (0, 1)),
    }
    figure, axes = _figure(2, 1, "P2D (mean) and normalised entropy, WT")
    axes[0].imshow(stages["mean"][WT], cmap="viridis", vmin=0, vmax=1)
    axes[1].imshow(stages["entropy"][WT], cmap="inferno", vmin=0, vmax=1)
    axes[0].set_title("P2D", fontsize=9)
    axes[1].set_title("normalised entropy", fontsize=9)
    figures["03_p2d_entropy.png"] = _png(figure)
    figures["04_boxes.png"] = _box_figure(flair, result.uncertainty[WT][z], data["boxes"], z)
    figure, axes = _figure(1, 1, "P3D inside the refined WT cubes")
    p3d = result.probabilities_3d[WT][z]
    axes[0].imshow(flair, cmap="gray")
    axes[0].imshow(np.ma.masked_less(p3d, 0), cmap="viridis", vmin=0, vmax=1)
    _draw_boxes(axes[0], [b for b in result.boxes if b.region == "WT"], z)
    figures["05_p3d.png"] = _png(figure)
    reference = data["reference"] if data["reference"] is not None else data["fused"]
    figures["06_fused.png"] = _result_figure(
        flair, reference[:, z], data["two_d"][:, z], data["fused"][:, z],
        dice(reference[WT], data["two_d"][WT]), dice(reference[WT], data["fused"][WT]))
    return figures


def explain_case(case_dir, out_dir, slice_index: int | None = None,
                 model_name: str | None = None, progress=None) -> list[Path]:
    """Write the six figures and captions.md into out_dir; returns the paths.

    `model_name` None is `predict`'s default model (brats-mini).
    """
    from .store import write_bytes_atomic, write_text_atomic

    data = run_stages(case_dir, model_name, slice_index, progress)
    out = Path(out_dir)
    paths = [write_bytes_atomic(out / name, png) for name, png in render_stages(data).items()]
    if progress is not None:
        progress("explain", 1, 1, f"{len(paths)} figures")
    lines = [f"# How UncertaintySeg works, on {data['case'].case_id}, axial slice "
             f"{data['z']}, model {data['model']}", ""]
    lines += [f"![{name}]({name})\n\n{CAPTIONS[name]}\n" for name in CAPTIONS]
    paths.append(write_text_atomic(out / "captions.md", "\n".join(lines)))
    return paths
