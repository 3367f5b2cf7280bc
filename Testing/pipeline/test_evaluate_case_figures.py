"""The report's case figures: slices of the four modalities and outlines, and below them
the Slicer Lib's 3D renders of the reference, 2D-only and fused surfaces; without the
slicer-core wheel the figure is made without the renders and the report says why."""

import io

import matplotlib.image
import numpy as np
import pytest

from uncertaintyseg.files.contract import CaseResult, write_outputs
from uncertaintyseg.files.convert import label_file
from uncertaintyseg.evaluation import case_figures as figures_module
from uncertaintyseg.evaluation.case_figures import case_figures
from uncertaintyseg.evaluation.pairing import parse_results
from uncertaintyseg.evaluation.runner import evaluate_cases
from uncertaintyseg.files.io import load_case
from uncertaintyseg.files.label_maps import labels_to_regions, load_labels, regions_to_labels
from uncertaintyseg.files.phantom import write_phantom_case
from uncertaintyseg.runtime import slicer_core

SHAPE = (24, 48, 40)


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures")
    case_dir = write_phantom_case(root / "cases", seed=1, shape=SHAPE)
    case = load_case(case_dir=case_dir)
    labels, convention = load_labels(label_file(case_dir))
    regions = labels_to_regions(labels)
    no_et = regions.copy()
    no_et[0] = False  # the 2D-only result misses ET entirely
    write_outputs(CaseResult(
        reference=case.reference, labels=regions_to_labels(regions, convention),
        probabilities=np.where(regions, 0.9, 0.1).astype(np.float32),
        probabilities_2d=np.where(no_et, 0.8, 0.2).astype(np.float32),
        probabilities_3d=np.full(regions.shape, -1.0, np.float32),
        uncertainty=np.full(regions.shape, 0.1, np.float32), boxes=[],
        report={"settings": {"min_component_fraction": None}}),
        root / "results" / case.case_id, snapshot=False)
    methods = parse_results([str(root / "results")])
    return root / "cases", evaluate_cases(root / "cases", methods, root / "eval", {"voxel"})


def _png(data):
    return (matplotlib.image.imread(io.BytesIO(data)) * 255).round().astype(np.uint8)


def _blue(pixels):
    p = pixels[..., :3].astype(int)
    return (p[..., 2] > 60) & (p[..., 2] > p[..., 0] + 40) & (p[..., 2] > p[..., 1] + 10)


def test_figure_has_the_3d_renders_below_the_slices(evaluation):
    pytest.importorskip("slicer", reason="the renders need the slicer-core wheel")
    cases_dir, result = evaluation
    section = case_figures(cases_dir, result)
    (name, png), = section["figures"].items()
    assert name.startswith("case_best_Phantom_0001")
    assert section["markdown"].strip() == ""
    pixels = _png(png)
    assert pixels.shape[0] == 900  # three rows: (6.4 + 3.6) in at 90 dpi
    third = pixels[int(0.64 * 900):]
    width = pixels.shape[1]
    # ET's blue surface in the reference and the fused render, not in the 2D-only one
    # (which has no ET); the three renders sit in thirds of the row.
    blue = [_blue(third[:, k * width // 3:(k + 1) * width // 3]).sum() for k in range(3)]
    assert blue[0] > 200 and blue[2] > 200 and blue[1] < blue[0] / 20


def test_without_slicer_core_the_figure_is_made_and_the_report_says_so(evaluation,
                                                                       monkeypatch):
    def missing():
        raise ImportError(slicer_core.INSTALL_HINT)

    monkeypatch.setattr(slicer_core, "require_slicer_core", missing)
    cases_dir, result = evaluation
    section = case_figures(cases_dir, result)
    (png,) = section["figures"].values()
    assert _png(png).shape[0] == 576  # the two rows of slices only
    assert "3D surface renders left out" in section["markdown"]
    assert "pip install .[scene]" in section["markdown"]
    assert figures_module.RENDER_CAPTION not in section["markdown"]
