"""One case, end to end: 2D projections -> uncertainty -> kernels -> 3D refinement -> fusion.

`run_case` orchestrates the stage modules; it holds no method of its own, so the CLI,
the Slicer module and notebooks get the same result from the same functions.
"""

from __future__ import annotations

import platform
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .. import DEFAULT_TRIAGE_THRESHOLD, REGIONS, __version__
from ..networks import feature_distance
from ..files.contract import CaseResult, region_volumes_ml
from ..contract_names import DEFAULT_OUTPUTS, OUTPUT_SETS
# AUTO_BATCH_SIZE and auto_batch_size are imported from here by older code and tests.
from ..networks.devices import AUTO_BATCH_SIZE, Resolved, auto_batch_size, resolve_run  # noqa: F401
from ..networks.estimators import ESTIMATORS, check_network, estimate
from ..stages.fusion import fuse, normalized_weights
from ..networks.inference_backend import choose_backend, use_backend
from ..stages.error_map import ERROR_MAP, ERROR_MAP_KEY, FALLBACK_MAP, error_probability
from ..errors import InputError
from ..files.io import Case
from ..files.label_maps import regions_to_labels
from ..stages.kernels import search_regions
from ..options import OPTIONS, check
from ..stages.orientation import describe, result_to_input, to_canonical
from ..stages.postprocess import nest, remove_small_components
from ..stages.preprocess import brain_mask
from ..stages.projection import default_radius
from ..stages.refine import refine
from ..networks.working_grid import WorkingGrid, from_crop, from_nnunet

TRIAGE_THRESHOLD = DEFAULT_TRIAGE_THRESHOLD  # a model's own (model.triage_threshold) wins
TRIAGE_DILATION_VOXELS = 3


def _default(name: str):
    """The option's default (options.OPTIONS): a Settings default is never retyped."""
    return OPTIONS[name].default


@dataclass(frozen=True)
class Settings:
    """Every parameter of a run, as asked (checked, `auto` kept); units in the names or
    the comments. Frozen: `dataclasses.replace` makes a changed copy, and
    `devices.resolve_run` turns the `auto` values into the concrete ones of a run.

    `projections`: origins per slice, an int or a preset name (preview, standard,
    paper) or auto; `kernel_mm`: cube side per region (ET, TC, WT) in mm, None = the
    model's; `max_overlap`: fraction of a cube's volume; `min_score_fraction`: of the
    region's first score; `crop_margin`: voxels kept around the brain's bounding box.
    """

    method: str = _default("method")  # estimators.ESTIMATORS says what each does
    projections: int | str = _default("projections")  # auto: devices.auto_projections
    radius: float | None = _default("radius")
    stride: int = 8
    kernel_mm: tuple[float, float, float] | None = _default("kernel_mm")
    max_overlap: float = _default("max_overlap")
    min_score_fraction: float = _default("min_score_fraction")
    max_boxes: int = _default("max_boxes")
    batch_size_2d: int | str = _default("batch_size_2d")  # auto: devices.auto_batch_size
    batch_size_3d: int = _default("batch_size_3d")
    tile_step: float = _default("tile_step")  # full-3d: a fraction of the patch
    uncertainty_map: str = _default("uncertainty_map")  # uncertainty.UNCERTAINTY_MAPS
    device: str = _default("device")
    precision: str = _default("precision")
    postprocess: bool = _default("postprocess")
    min_component_fraction: float | None = _default("min_component_fraction")  # the model's
    crop_to_brain: bool = True
    crop_margin: int = 4
    label_convention: str | None = _default("label_convention")
    outputs: str = _default("outputs")  # the maps made on the input grid (OUTPUT_SETS)
    threads: int | str = _default("threads")  # torch CPU threads; auto: the free cores
    backend: str = _default("backend")  # torch or openvino; auto: inference_backend

    def __post_init__(self):
        # Checked before any work: a bad value must not surface after hours of 2D
        # inference. The ranges are the CLI's (options.OPTIONS), so a library caller and
        # the Slicer module get the same message as the command line.
        for name in OPTION_FIELDS:
            check(name, getattr(self, name))
        if self.stride < 1:
            raise InputError(f"stride {self.stride}: must be 1 px or more")
        if self.crop_margin < 0:
            raise InputError(f"crop_margin {self.crop_margin}: must be 0 voxels or more")


# The Settings fields that are user-facing options, checked against options.OPTIONS.
OPTION_FIELDS = tuple(name for name in OPTIONS if name in Settings.__dataclass_fields__)


class StageTimer:
    """Collects wall-clock seconds per stage for report.json."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)

    def total(self) -> dict[str, float]:
        return {**self.seconds, "total": round(time.perf_counter() - self._start, 3)}


def _prepare(case: Case, model, settings: Settings) -> WorkingGrid:
    """nnU-Net's preprocessing for models trained with it, our crop otherwise."""
    if not (case.image != 0).any():
        raise InputError(f"{case.case_id}: every modality is zero; nothing to segment")
    if model.plans is not None:
        return from_nnunet(model, case.image, case.spacing)
    return from_crop(case.image, case.spacing, settings.crop_margin, settings.crop_to_brain)


def component_fraction(settings: Settings, model) -> float:
    """The WT component fraction of a run: the user's, else the model's."""
    if settings.min_component_fraction is not None:
        return settings.min_component_fraction
    return float(model.min_component_fraction)


def segment(probabilities: np.ndarray, settings: Settings, model) -> np.ndarray:
    """Probabilities (3, Z, Y, X) -> nested bool regions, post-processed as `settings`
    (and, for the component fraction, the model) say."""
    regions = nest(probabilities > 0.5)
    if settings.postprocess:
        regions = remove_small_components(regions, component_fraction(settings, model))
    return regions


def run_case(case: Case, model, settings: Settings | None = None, progress=None,
             timer: StageTimer | None = None, *, resolved: Resolved | None = None
             ) -> CaseResult:
    """Segment one case and quantify its uncertainty (design section 4).

    `case` comes from `io.load_case`; `model` from `models.load_model`; `progress` is
    called as progress(stage, done, total, message); `timer` carries stages timed
    before (loading the case), so report.json's timings are one record; `resolved`:
    `devices.resolve_run(settings)` when the caller resolved it already (predict.run,
    which set torch's threads from it), else resolved here. Returns a
    CaseResult on the input's full grid and direction, ready for
    `contract.write_outputs`. A case stored in another orientation than the axial one is
    segmented in the axial orientation (`orientation`) and its outputs brought back.
    """
    canonical, turn = to_canonical(case)
    settings = settings or Settings()
    result = _run_canonical(canonical, model, settings, resolved or resolve_run(settings),
                            progress, timer or StageTimer())
    result = result_to_input(result, turn, case)
    result.report["input"].update(shape_zyx=list(case.image.shape[1:]),
                                  spacing_zyx=list(case.spacing))
    result.report["orientation"] = describe(turn)
    return result


def _run_canonical(case: Case, model, settings: Settings, resolved: Resolved, progress,
                   timer: StageTimer) -> CaseResult:
    """`run_case` on a case in the canonical orientation."""
    method = ESTIMATORS[settings.method]
    check_network(method, model)  # before the preprocessing, which takes seconds
    backend, backend_reason = choose_backend(settings.backend, resolved.device, model)
    use_backend(model, backend, resolved.threads, resolved.autocast)
    with timer.stage("preprocess"):
        grid = _prepare(case, model, settings)
    with timer.stage("feature_distance"):  # a quality signal; None without a fit
        distance = feature_distance.for_run(model, grid)
    radius = settings.radius or model.radius or default_radius(grid.mask.shape[1:])
    with timer.stage("uncertainty"):
        projected = estimate(method, model, grid, settings, resolved, radius=radius,
                             progress=progress)
    if method.refines:
        boxes, p3d, fused = _refine_and_fuse(model, settings, resolved, grid, projected,
                                             timer=timer, progress=progress)
    else:
        boxes = _search(model, settings, grid, projected, timer, progress)
        p3d, fused = np.full_like(projected.p2d, -1.0), projected.p2d
    with timer.stage("export"):
        result = _to_input_grid(case, grid, projected, p3d, fused, boxes,
                                dims=method.dims, outputs=settings.outputs)
    with timer.stage("postprocess"):
        regions = segment(result.probabilities, settings, model)
        result.labels = regions_to_labels(regions, settings.label_convention or case.naming)
    map_note = None
    # uncertainty-head and full-3d keep their own maps (--uncertainty-map's help).
    if (settings.uncertainty_map == ERROR_MAP and method.dims == 2
            and method.name != "uncertainty-head"):
        with timer.stage("error_map"):
            map_note = _error_map(result, model, case, grid, projected, regions)
    result.report = build_report(case, model, settings, resolved, projected, result,
                                 timer=timer, radius=radius, grid=grid,
                                 triage_map=_triage_map(result, projected, grid))
    if map_note is not None:
        result.report["uncertainty_map"] = map_note
    result.report["device"].update(backend=backend, backend_reason=backend_reason)
    result.report[feature_distance.FIT_KEY] = distance  # quality_block moves it on
    return result


def _error_map(result: CaseResult, model, case, grid, projected, regions) -> dict:
    """`--uncertainty-map error-probability` (error_map): the result's uncertainty made
    from the post-processed regions and P2D on the input grid, over the brain mask the
    evaluation scores. A model without the fit keeps the mean-entropy map the slices
    made; the returned report entry says which map the run wrote and why."""
    if not model.error_map:
        return {"map": FALLBACK_MAP, "note": f"model {model.name} has no {ERROR_MAP_KEY} "
                f"fit (tools/fit_error_map.py): the {FALLBACK_MAP} map is written instead"}
    p2d = _clipped(grid.to_input(projected.p2d), 0.0, 1.0)
    result.uncertainty = error_probability(model.error_map, p2d, regions, case.spacing,
                                           brain_mask(case.image))
    return {"map": ERROR_MAP, "fit": model.error_map}


def _triage_map(result: CaseResult, projected, grid) -> np.ndarray:
    """The map the triage score averages: the normalised binned entropy on the input
    grid, whatever --uncertainty-map chose. The model's triage threshold was calibrated
    on that map (evaluate --calibrate-triage); another map has another scale. Only its
    maximum over the regions is needed (one channel, not three)."""
    if projected.uncertainty is projected.entropy_norm:
        return result.uncertainty
    return grid.to_input(projected.entropy_norm.max(axis=0, keepdims=True))


def _refine_and_fuse(model, settings, resolved, grid, projected, *, timer, progress):
    """Kernel search, 3D refinement and fusion on the working grid."""
    boxes = _search(model, settings, grid, projected, timer, progress)
    with timer.stage("refine"):
        p3d = refine(model.network_3d, grid.image, boxes, batch_size=settings.batch_size_3d,
                     device=resolved.device, divisor=model.divisor_3d,
                     autocast_dtype=resolved.autocast,
                     progress=progress)
    with timer.stage("fusion"):
        fused = fuse(projected.p2d, p3d, model.fusion_weights)
    return boxes, p3d, fused


def _search(model, settings, grid, projected, timer, progress) -> list:
    """The kernel search (design 4.3) on the method's own normalised binned entropy,
    whatever --uncertainty-map shows: every model's 3D network was trained on cubes the
    search chose on that map (training.passes) and its fusion fitted on them. Boxes from
    another map put the 3D network where it was not trained: the phantom demo's TC Dice
    fell from 0.945 to 0.795 with boxes from the mean-entropy map (DECISIONS #21)."""
    with timer.stage("kernels"):
        boxes = search_regions(projected.entropy_norm, grid.spacing,
                               settings.kernel_mm or model.kernel_mm, settings.max_overlap,
                               settings.min_score_fraction, settings.max_boxes)
        _notify(progress, "kernels", f"{len(boxes)} boxes")
    return boxes


def _notify(progress, stage: str, message: str) -> None:
    if progress is not None:
        progress(stage, 1, 1, message)


def _to_input_grid(case, grid, projected, p3d, fused, boxes, *, dims: int = 2,
                   outputs: str = DEFAULT_OUTPUTS) -> CaseResult:
    """The maps of the `outputs` set and every box from the working grid back onto the
    input's grid (labels are made afterwards, from the fused probabilities on the input
    grid); maps outside the set stay None: on a 0.5 mm volume each is over 1 GB. With
    `dims` 3 (full-3d) the method's probabilities are a 3D network's: P3D is them, on
    the whole grid, and P2D is -1 everywhere (no 2D part, docs/OUTPUT-CONTRACT.md)."""
    wanted = OUTPUT_SETS[outputs]
    maps = {"probabilities": _clipped(grid.to_input(fused), 0.0, 1.0),
            "uncertainty": _clipped(grid.to_input(projected.uncertainty), 0.0, 1.0)}
    if "probabilities_2d" in wanted:
        maps["probabilities_2d"] = (
            # A constant: a read-only view costs no memory.
            np.broadcast_to(np.float32(-1.0), maps["probabilities"].shape) if dims == 3
            else _clipped(grid.to_input(projected.p2d), 0.0, 1.0))
    if "probabilities_3d" in wanted:
        maps["probabilities_3d"] = (maps["probabilities"] if dims == 3
                                    else grid.to_input(p3d, fill=-1.0))
    if "uncertainty_raw" in wanted:
        maps["uncertainty_raw"] = _clipped(grid.to_input(projected.entropy_raw), 0.0, None)
    return CaseResult(reference=case.reference, labels=None,
                      boxes=[grid.box_to_input(b) for b in boxes], flair=case.image[0],
                      **{name: maps.get(name) for name in MAP_NAMES})


MAP_NAMES = ("probabilities", "probabilities_2d", "probabilities_3d", "uncertainty",
             "uncertainty_raw")


def _clipped(array: np.ndarray, low, high) -> np.ndarray:
    """`array` clipped in place: np.clip's copy would be a second map at once."""
    return np.clip(array, low, high, out=array)


def triage(uncertainty: np.ndarray, labels: np.ndarray,
           threshold: float = TRIAGE_THRESHOLD) -> dict:
    """Case-level uncertainty score: mean max-over-regions normalised entropy over the
    predicted whole tumour dilated by a few voxels (0 when no tumour is found); flagged
    "review" from `threshold` on (the model's, chosen on validation cases)."""
    from scipy.ndimage import binary_dilation

    tumour = labels > 0
    score = 0.0
    if tumour.any():
        zone = binary_dilation(tumour, iterations=TRIAGE_DILATION_VOXELS)
        score = float(uncertainty.max(axis=0)[zone].mean())
    flag = "review" if score >= threshold else "routine"
    hint = ("The model disagrees with itself over much of the tumour: review this case "
            "slice by slice, starting with the boxes." if flag == "review" else
            "The model is consistent over most of the tumour: check the boxes first.")
    return {"score": round(score, 4), "threshold": threshold, "flag": flag,
            "hint": hint}


def _fusion_report(weights: np.ndarray) -> dict:
    out = {}
    for index, region in enumerate(REGIONS):
        w2d, w3d, b = (float(v) for v in weights[index])
        n2d, n3d = normalized_weights(weights[index])
        out[region] = {"w2d": w2d, "w3d": w3d, "b": b,
                       "w2d_normalized": float(n2d), "w3d_normalized": float(n3d)}
    return out


def build_report(case, model, settings, resolved, projected, result, *, timer, radius,
                 grid, triage_map=None) -> dict:
    """The report.json record (docs/OUTPUT-CONTRACT.md), in one place; `resolved` the
    run's concrete values (devices.resolve_run: `settings` keeps the asked ones, `auto`
    included, and the report records the resolved device, precision, projections and
    threads, with the 2D batch size), `radius` the sphere radius used (px), `grid` the
    working grid, `triage_map` the (C, Z, Y, X) map the triage score averages (None:
    the result's uncertainty)."""
    per_slice = projected.projections_per_slice
    used = per_slice[per_slice > 0]
    return {
        "software": {"name": "uncertaintyseg", "version": __version__},
        "method": settings.method,
        "model": {"name": model.name, "version": model.version, "trained": model.trained,
                  "description": model.description},
        "input": {"case_id": case.case_id, "paths": {k: str(v) for k, v in case.paths.items()},
                  "naming": case.naming,
                  "label_convention": settings.label_convention or case.naming,
                  "shape_zyx": list(case.image.shape[1:]), "spacing_zyx": list(case.spacing)},
        "settings": {**asdict(settings), "kernel_mm": list(settings.kernel_mm or model.kernel_mm),
                     "min_component_fraction": (component_fraction(settings, model)
                                                if settings.postprocess else None),
                     **_resolved_settings(resolved),
                     "radius_px": round(float(radius), 3),
                     "fits_note": _fits_note(model, resolved)},
        "working_grid": {"spacing_zyx": list(grid.spacing), "shape_zyx": list(grid.mask.shape),
                         "resampled": grid.resampled},
        "device": {"name": str(resolved.device), "torch": torch.__version__,
                   "threads": torch.get_num_threads(), "machine": platform.machine(),
                   "precision": resolved.precision},
        "timings_s": timer.total(),
        "projections_per_slice": {"min": int(used.min()) if used.size else 0,
                                  "max": int(used.max()) if used.size else 0,
                                  "mean": float(used.mean()) if used.size else 0.0,
                                  "slices": int(used.size)},
        "boxes_per_region": {r: sum(b.region == r for b in result.boxes) for r in REGIONS},
        "fusion_weights": _fusion_report(np.asarray(model.fusion_weights, dtype=float)),
        "volumes_ml": region_volumes_ml(result.labels, case.spacing),
        "triage": triage(result.uncertainty if triage_map is None else triage_map,
                         result.labels, model.triage_threshold),
    }


def _resolved_settings(resolved: Resolved) -> dict:
    """The report's settings that had `auto` values, as the run resolved them (the
    device and precision are in the report's device block)."""
    return {"projections": resolved.projections, "threads": resolved.threads,
            "batch_size_2d": resolved.batch_size_2d,
            "projections_per_slice_asked": resolved.projections_per_slice}


def _fits_note(model, resolved: Resolved) -> str | None:
    from ..stages.projection_curve import counts_note

    return counts_note(model.fitted_at, resolved.projections_per_slice)
