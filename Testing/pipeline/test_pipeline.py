"""One case end to end with the analytic model: offsets, contract invariants, triage."""

import numpy as np
import pytest

from uncertaintyseg import REGIONS
from uncertaintyseg.io import load_case, labels_to_regions
from uncertaintyseg.models import load_model
from uncertaintyseg.phantom import write_phantom_case
from uncertaintyseg.pipeline import Settings, run_case, triage

SHAPE = (24, 56, 48)


@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory):
    folder = write_phantom_case(tmp_path_factory.mktemp("case"), seed=3, shape=SHAPE,
                                spacing=(2.0, 1.5, 1.5))
    case = load_case(case_dir=folder)
    settings = Settings(projections=4, kernel_mm=(12.0, 12.0, 24.0), max_boxes=3,
                        batch_size_2d=4)
    return case, run_case(case, load_model("analytic"), settings)


def test_outputs_live_on_the_input_grid(phantom_run):
    case, result = phantom_run
    assert result.labels.shape == SHAPE and result.labels.dtype == np.uint8
    for name in ("probabilities", "probabilities_2d", "probabilities_3d", "uncertainty"):
        assert getattr(result, name).shape == (3, *SHAPE)
    assert set(np.unique(result.labels)) <= {0, 1, 2, 4}
    assert 0.0 <= result.uncertainty.min() and result.uncertainty.max() <= 1.0


def test_boxes_point_at_their_uncertainty_on_the_full_grid(phantom_run):
    # The search runs on the brain's bounding box; shifting the boxes back must keep the
    # score equal to the uncertainty summed inside the box on the full grid.
    _, result = phantom_run
    assert result.boxes, "the phantom must produce at least one refinement box"
    for box in result.boxes:
        region = REGIONS.index(box.region)
        inside = result.uncertainty[(region, *box.slices)]
        assert inside.shape == tuple(box.size)
        assert inside.sum() == pytest.approx(box.score, rel=1e-4)


def test_fusion_only_where_cubes_cover(phantom_run):
    _, result = phantom_run
    uncovered = result.probabilities_3d < 0
    np.testing.assert_allclose(result.probabilities[uncovered],
                               result.probabilities_2d[uncovered])
    for box in result.boxes:
        region = REGIONS.index(box.region)
        assert (result.probabilities_3d[(region, *box.slices)] >= 0).all()


def test_labels_nested_and_from_fused_probabilities(phantom_run):
    _, result = phantom_run
    regions = labels_to_regions(result.labels)
    assert not (regions[0] & ~regions[1]).any() and not (regions[1] & ~regions[2]).any()
    # Post-processing may only remove voxels, never add them.
    assert not (regions[2] & ~(result.probabilities[2] > 0.5)).any()


def test_report_records_the_run(phantom_run):
    case, result = phantom_run
    report = result.report
    assert report["model"]["name"] == "analytic" and report["model"]["trained"] is False
    assert report["projections_per_slice"]["max"] <= 4
    assert sum(report["boxes_per_region"].values()) == len(result.boxes)
    assert {"uncertainty", "kernels", "refine", "fusion", "total"} <= set(report["timings_s"])
    voxel_ml = np.prod(case.spacing) / 1000
    wt = labels_to_regions(result.labels)[2].sum() * voxel_ml
    assert report["volumes_ml"]["WT"] == pytest.approx(wt)


def test_triage_score():
    labels = np.zeros((10, 10, 10), np.uint8)
    uncertainty = np.zeros((3, 10, 10, 10), np.float32)
    assert triage(uncertainty, labels)["score"] == 0.0
    labels[4:6, 4:6, 4:6] = 2
    uncertainty[2] = 0.8
    high = triage(uncertainty, labels)
    assert high["score"] == pytest.approx(0.8) and high["flag"] == "review"
    uncertainty[2] = 0.05
    assert triage(uncertainty, labels)["flag"] == "routine"


def test_crop_is_optional_and_consistent(tmp_path):
    folder = write_phantom_case(tmp_path, seed=4, shape=(16, 40, 36))
    case = load_case(case_dir=folder)
    settings = Settings(projections=2, kernel_mm=(8.0, 8.0, 16.0), max_boxes=1,
                        crop_to_brain=False, postprocess=False)
    result = run_case(case, load_model("analytic"), settings)
    assert result.labels.shape == (16, 40, 36)
    outside_brain = ~(case.image != 0).any(axis=0)
    assert result.labels[outside_brain].max(initial=0) == 0 or outside_brain.sum() == 0
