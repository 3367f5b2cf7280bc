"""The estimators behind `predict --method`: their views, statistics and results."""

import math

import numpy as np
import pytest
import torch

from uncertaintyseg import options
from uncertaintyseg.stages import projection as P
from uncertaintyseg.networks.estimators import ESTIMATORS
from uncertaintyseg.files.io import load_case
from uncertaintyseg.networks.models import load_model
from uncertaintyseg.files.phantom import write_phantom_case
from uncertaintyseg.run.pipeline import Settings, run_case
from uncertaintyseg.stages.uncertainty import predict_slice
from uncertaintyseg.stages.views import FLIPS, FlipViews, IdentityViews, ProjectionViews

from test_uncertainty import _reference_stats, _smooth_slice, _TinyNet

torch.set_num_threads(1)
SHAPE = (72, 60)
ORIGINS = np.array([[36.0, 30.0], [4.0, 4.0], [68.0, 12.0], [20.0, 52.0]], np.float32)


def test_every_method_name_has_an_estimator():
    assert set(ESTIMATORS) == set(options.METHODS)
    assert [m for m, e in ESTIMATORS.items() if e.refines] == ["hybrid"]


@pytest.mark.parametrize("radius", [15.0, P.default_radius(SHAPE), 200.0])
def test_linear_map_is_a_bijection_with_a_fixed_border(radius):
    rng = np.random.default_rng(1)
    points = torch.tensor(rng.uniform(0, 1, (2000, 2)) * (np.array(SHAPE) - 1),
                          dtype=torch.float32)
    inverse = P.map_points(points, ORIGINS, SHAPE, radius, True, profile="linear")
    forward = P.map_points(points, ORIGINS, SHAPE, radius, False, profile="linear")
    assert (P.map_points(inverse, ORIGINS, SHAPE, radius, False, "linear")
            - points).abs().max() < 2e-3
    assert (P.map_points(forward, ORIGINS, SHAPE, radius, True, "linear")
            - points).abs().max() < 2e-3
    border = torch.tensor([[0.0, 17.0], [71.0, 40.0], [33.0, 0.0], [50.0, 59.0]])
    for inverse_map in (False, True):
        moved = P.map_points(border, ORIGINS, SHAPE, radius, inverse_map, "linear")
        assert (moved - border).abs().max() < 1e-3


def test_linear_map_has_the_spherical_magnification_at_the_origin_but_is_linear():
    radius, origin = P.default_radius(SHAPE), ORIGINS[:1]
    border = SHAPE[1] - 1 - 30.0  # along +col from (36, 30)
    expect = border / (radius * math.atan(border / radius))
    steps = torch.tensor([[36.0, 30.0 + d] for d in (0.5, 1.0, 2.0, 4.0)])
    moved = P.map_points(steps, origin, SHAPE, radius, False, "linear")[0]
    ratios = (moved[:, 1] - 30.0) / (steps[:, 1] - 30.0)
    assert torch.allclose(ratios, torch.full_like(ratios, expect), rtol=1e-4)  # constant
    spherical = P.map_points(steps, origin, SHAPE, radius, False)[0]
    sph_ratios = (spherical[:, 1] - 30.0) / (steps[:, 1] - 30.0)
    assert sph_ratios[0] == pytest.approx(expect, rel=1e-3)
    assert (sph_ratios.diff() < 0).all()  # the spherical one falls off: a different shape


def test_flip_views_undo_themselves_and_are_nnunets_four_mirrorings():
    image = torch.from_numpy(_smooth_slice((32, 48)))
    views = FlipViews()
    params = torch.from_numpy(views.params(np.ones((32, 48), bool)))
    assert len(params) == len(FLIPS) == 4
    flipped = views.forward(image, params)
    assert torch.equal(flipped[3], torch.flip(image, (-2, -1)))
    assert torch.equal(views.back(flipped, params), image.expand(4, -1, -1, -1))
    assert len(views.params(np.zeros((32, 48), bool))) == 0  # no brain, no views


@pytest.mark.parametrize("views", [FlipViews(), ProjectionViews(20.0, "linear"),
                                   IdentityViews(5)])
def test_predict_slice_matches_holding_every_view(views):
    network, image = _TinyNet().eval(), _smooth_slice((32, 48))
    params = views.params(np.ones((32, 48), bool), 6 if isinstance(views, ProjectionViews)
                          else None)
    mean, raw, norm = predict_slice(network, image, params, 20.0, batch_size=3, divisor=16,
                                    views=views)
    maps = []
    with torch.no_grad():
        for start in range(0, len(params), 3):
            chunk = torch.from_numpy(params[start:start + 3])
            outputs = torch.sigmoid(network(views.forward(torch.from_numpy(image), chunk)))
            maps.append(views.back(outputs, chunk))
    ref_mean, ref_raw, ref_norm = _reference_stats(torch.cat(maps).numpy())
    np.testing.assert_allclose(mean, ref_mean, atol=1e-6)
    np.testing.assert_allclose(raw, ref_raw, atol=1e-5)
    np.testing.assert_allclose(norm, ref_norm, atol=1e-5)
    if isinstance(views, IdentityViews):  # a deterministic network never disagrees
        assert raw.max() == 0.0
    else:
        assert raw.max() > 0.3


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = write_phantom_case(tmp_path_factory.mktemp("case"), seed=3, shape=(20, 48, 40))
    case, model = load_case(case_dir=folder), load_model("analytic")
    return {method: run_case(case, model, Settings(method=method, projections=4,
                                                   kernel_mm=(12.0, 12.0, 24.0),
                                                   max_boxes=2, batch_size_2d=4,
                                                   outputs="all"))
            for method in options.METHODS if method not in options.TRAINED_NETWORKS}


def test_2d_only_methods_refine_nothing_and_keep_their_own_boxes(runs):
    for method in ("projection-2d", "tta-2d", "lsu-2d"):
        result = runs[method]
        assert (result.probabilities_3d == -1.0).all()
        np.testing.assert_array_equal(result.probabilities, result.probabilities_2d)
        assert result.report["method"] == method
        # the same kernel search, on the method's own binned entropy (uncertainty_raw,
        # whatever --uncertainty-map shows): boxes where it has any
        assert bool(result.boxes) == bool(result.uncertainty_raw.any()), method
    assert runs["projection-2d"].boxes and runs["lsu-2d"].boxes
    assert "refine" not in runs["tta-2d"].report["timings_s"]


def test_projection_2d_is_the_hybrids_own_2d_stage(runs):
    np.testing.assert_array_equal(runs["projection-2d"].probabilities_2d,
                                  runs["hybrid"].probabilities_2d)
    np.testing.assert_array_equal(runs["projection-2d"].uncertainty, runs["hybrid"].uncertainty)
    assert (runs["hybrid"].probabilities_3d > -1.0).any()


def test_tta_uses_four_views_and_differs_from_the_projections(runs):
    assert runs["tta-2d"].report["projections_per_slice"]["max"] == 4
    # The analytic network works voxel by voxel, so flips cannot change its output: TTA
    # sees no spread at all (binned entropy 0, uncertainty_raw), while any projection
    # moves the voxels it sees.
    assert not runs["tta-2d"].uncertainty_raw.any()
    assert runs["projection-2d"].uncertainty_raw.any()
    assert not np.array_equal(runs["lsu-2d"].uncertainty, runs["projection-2d"].uncertainty)
