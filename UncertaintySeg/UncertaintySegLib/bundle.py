"""A whole review scene from an output folder, without the Slicer application.

Used by `uncertaintyseg scene` (and `demo`): the input volumes, the result (segmentation,
heatmap, boxes) in one subject-hierarchy folder, the slice views set to FLAIR under the
heatmap, written as a Slicer data bundle (.mrb) with a 3D thumbnail; optionally the
axial and 3D views as PNG screenshots. Needs the slicer-core wheel.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uncertaintyseg_shared.brats import REGIONS
from uncertaintyseg_shared.contract_names import IMAGE_FILES

from .context import SceneLogics, create_headless_logics
from .inputs import LABELS, MODALITIES, guess_modality
from .scene import (ATTR, HeatmapSettings, LoadedRun, ResultLoader, legend_title,
                    place_in_folder,
                    read_contract, show_in_slice_views)
from .volumes import ResultFolderError, array_to_volume, read_channel, read_scalar_volume


@dataclass
class SceneBundle:
    """A headless scene holding one loaded run and its input volumes."""

    logics: SceneLogics
    run: LoadedRun
    inputs: dict  # modality -> volume node (those found)


def find_input_files(report: dict, inputs_dir=None) -> dict[str, Path]:
    """Input files per modality: from `inputs_dir` (matched by name) when given, else
    from the paths recorded in report.json; only files that exist."""
    return locate_inputs(report, inputs_dir)[0]


def locate_inputs(report: dict, inputs_dir=None) -> tuple[dict[str, Path], dict[str, str]]:
    """(found, missing): the input files per modality, and for each modality not found
    where it was looked for (report.json's path, or `inputs_dir`)."""
    if inputs_dir is not None:
        found = {}
        for path in sorted(Path(inputs_dir).glob("*.nii*")):
            modality = guess_modality(path.name.split(".nii")[0])
            if modality is not None and modality not in found:
                found[modality] = path
        return found, {m: f"no {m} file in {inputs_dir}" for m in MODALITIES if m not in found}
    paths = (report.get("input") or {}).get("paths") or {}
    found = {m: Path(paths[m]) for m in MODALITIES if m in paths and Path(paths[m]).is_file()}
    missing = {m: str(paths.get(m, "not recorded in report.json")) for m in MODALITIES
               if m not in found}
    return found, missing


def check_scene_request(results_dir, out, inputs_dir=None, overwrite: bool = False,
                        allow_missing_inputs: bool = False) -> list[str]:
    """Refuse, before any work, to replace an existing scene without `overwrite` (it may
    hold the user's edits) or to write one without its input MRIs unless
    `allow_missing_inputs`; returns the warnings to show (the inputs left out)."""
    out = Path(out)
    if not str(out).lower().endswith(".mrb"):
        raise ResultFolderError(f"{out}: the scene bundle must end with .mrb")
    if out.exists() and not overwrite:
        raise ResultFolderError(f"{out}: exists (a scene you may have edited); choose "
                                "another --out or pass --overwrite to replace it")
    report, _ = read_contract(results_dir)
    _, missing = locate_inputs(report, inputs_dir)
    if not missing:
        return []
    listed = "; ".join(f"{m}: {where}" for m, where in missing.items())
    if not allow_missing_inputs:
        raise ResultFolderError(
            f"{results_dir}: input MRIs not found ({listed}). Give the folder they are in "
            "now with --inputs DIR, or pass --allow-missing-inputs to write the scene "
            "without them")
    return [f"warning: the scene has no {m} volume (not found: {where})"
            for m, where in missing.items()]


def build_scene(results_dir, inputs_dir=None, region: str = "WT",
                logics: SceneLogics | None = None) -> SceneBundle:
    """Load inputs and results into a new headless scene (or `logics`'s scene)."""
    logics = logics or create_headless_logics()
    report, _ = read_contract(results_dir)
    files = find_input_files(report, inputs_dir)
    inputs = {m: read_scalar_volume(logics.volumes, files[m], LABELS[m])
              for m in MODALITIES if m in files}
    loader = ResultLoader(logics)
    run = loader.load(results_dir, reference_volume=inputs.get("flair"), region=region)
    add_region_heatmaps(loader, run)
    if inputs:
        sh = logics.scene.GetSubjectHierarchyNode()
        folder = sh.CreateFolderItem(run.folder_item, "Inputs")
        for node in inputs.values():
            place_in_folder(logics.scene, node, folder)
    return SceneBundle(logics, run, inputs)


def add_region_heatmaps(loader: ResultLoader, run: LoadedRun) -> list:
    """The uncertainty of the regions the run's heatmap does not show, as volumes styled
    the same way, in the run's folder (`run.extra_nodes`): a scene bundle is read
    without the output folder, so it carries all of ET, TC and WT."""
    shown = run.uncertainty.GetName()
    base = shown[: -len(run.uncertainty_region)].rstrip()
    added = []
    for region in REGIONS:
        if region == run.uncertainty_region:
            continue
        array = read_channel(Path(run.output_dir) / IMAGE_FILES["uncertainty"],
                             REGIONS.index(region), run.uncertainty)
        volume = array_to_volume(loader.scene, array, run.uncertainty, f"{base} {region}")
        loader.style_heatmap(volume, legend_title(run.report))
        volume.SetAttribute(ATTR + "Region", region)
        place_in_folder(loader.scene, volume, run.folder_item)
        added.append(volume)
    run.extra_nodes.extend(added)
    return added


def _background(bundle: SceneBundle):
    return bundle.inputs.get("flair") or next(iter(bundle.inputs.values()), None)


def top_box_centre(run: LoadedRun):
    """RAS centre of the highest-scoring box, or of the segmentation when there is none."""
    if run.boxes:
        return max(run.boxes, key=lambda b: float(b["score"]))["center_ras"]
    bounds = [0.0] * 6
    run.segmentation.GetRASBounds(bounds)
    return [(bounds[2 * i] + bounds[2 * i + 1]) / 2.0 for i in range(3)]


def set_up_views(bundle: SceneBundle, size=(640, 640)):
    """Slice views (Red/Yellow/Green) showing FLAIR under the heatmap, their slices
    through the top box (the axial view fitted to the whole volume); a 3D view from the
    front. Returns (red view, 3D view) for rendering."""
    from .render import OffscreenSliceView, OffscreenThreeDView, add_slice_views

    red = OffscreenSliceView(bundle.logics, "Red", "Axial", size)
    others = add_slice_views(bundle.logics, (("Yellow", "Sagittal"), ("Green", "Coronal")))
    show_in_slice_views(bundle.logics.scene, _background(bundle), bundle.run.uncertainty,
                        HeatmapSettings().opacity)
    red.fit()
    for node in (red.node, *others):
        node.JumpSliceByOffsetting(*map(float, top_box_centre(bundle.run)))
    threed = OffscreenThreeDView(bundle.logics, "1", size)
    threed.look_from("Anterior", nodes=[bundle.run.segmentation, *bundle.run.rois])
    return red, threed


def render_views(bundle: SceneBundle, red, threed, max_rank: int | None = None):
    """(axial, 3D) RGB arrays; boxes ranked below `max_rank` are hidden while rendering
    (an overview picture reads better with the top box of each region only)."""
    hidden = [roi for roi, box in zip(bundle.run.rois, bundle.run.boxes)
              if max_rank is not None and int(box["rank"]) > max_rank
              and roi.GetDisplayNode().GetVisibility()]
    for roi in hidden:
        roi.GetDisplayNode().SetVisibility(False)
    try:
        return red.render(), threed.render()
    finally:
        for roi in hidden:
            roi.GetDisplayNode().SetVisibility(True)


def write_screenshots(axial: np.ndarray, volume: np.ndarray, out_dir) -> list[Path]:
    """axial.png, 3d.png and overview.png (the two side by side) into `out_dir`."""
    from .render import save_png

    out_dir = Path(out_dir)
    gap = np.full((axial.shape[0], 8, 3), 255, np.uint8)
    return [save_png(axial, out_dir / "axial.png"), save_png(volume, out_dir / "3d.png"),
            save_png(np.hstack([axial, gap, volume]), out_dir / "overview.png")]


def write_mrb(bundle: SceneBundle, path, thumbnail: np.ndarray | None = None) -> Path:
    """Write the scene as a Slicer data bundle, atomically (temporary name, then rename)."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData

    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    image = None
    if thumbnail is not None:
        image = vtkImageData()
        image.SetDimensions(thumbnail.shape[1], thumbnail.shape[0], 1)
        image.GetPointData().SetScalars(
            numpy_to_vtk(np.ascontiguousarray(thumbnail[::-1]).reshape(-1, 3), deep=True))
    # Written under its final name in a hidden sibling folder (the bundle's inner folder
    # is named after the file), then moved into place.
    staging = Path(tempfile.mkdtemp(prefix=f".{path.stem}.partial-", dir=path.parent))
    try:
        if not bundle.logics.scene.WriteToMRB(str(staging / path.name), image):
            raise OSError(f"could not write the scene bundle {path}: check the folder's "
                          "permissions and the free disk space")
        os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def write_scene_bundle(results_dir, out, inputs_dir=None, screenshots_dir=None,
                       *, region: str = "WT", size=(640, 640), screenshot_max_rank: int | None = 1,
                       overwrite: bool = False, allow_missing_inputs: bool = False) -> Path:
    """Build the scene for `results_dir` and write it to `out` (.mrb); returns the path.
    Refuses as `check_scene_request` does (warnings are the caller's to show, from it).

    With `screenshots_dir`, also writes PNGs of the views showing the boxes ranked up to
    `screenshot_max_rank` in each region (None: all); the bundle keeps all boxes visible.
    """
    check_scene_request(results_dir, out, inputs_dir, overwrite, allow_missing_inputs)
    bundle = build_scene(results_dir, inputs_dir, region)
    red, threed = set_up_views(bundle, size)
    axial, volume = render_views(bundle, red, threed, screenshot_max_rank)
    if screenshots_dir is not None:
        write_screenshots(axial, volume, screenshots_dir)
    return write_mrb(bundle, out, volume)
