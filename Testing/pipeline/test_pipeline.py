"""One case end to end with the analytic model: offsets, contract invariants, triage."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from uncertaintyseg import REGIONS
from uncertaintyseg.files.io import Case, InputError, load_case
from uncertaintyseg.files.label_maps import labels_to_regions, load_labels
from uncertaintyseg.networks.models import Model, load_model
from uncertaintyseg.files.phantom import make_phantom, write_phantom_case
from uncertaintyseg.stages.preprocess import bounding_box, brain_mask, normalize
from uncertaintyseg.run.pipeline import Settings, component_fraction, run_case, segment, triage
from uncertaintyseg.stages.uncertainty import mean_entropy

SHAPE = (24, 56, 48)


@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory):
    folder = write_phantom_case(tmp_path_factory.mktemp("case"), seed=3, shape=SHAPE,
                                spacing=(2.0, 1.5, 1.5))
    case = load_case(case_dir=folder)
    settings = Settings(projections=4, kernel_mm=(12.0, 12.0, 24.0), max_boxes=3,
                        batch_size_2d=4)
    return case, run_case(case, load_model("analytic"), settings)


@pytest.fixture(scope="module")
def binned_run(phantom_run):
    """The same case with --uncertainty-map binned: the map the kernel search uses."""
    case, _ = phantom_run
    settings = Settings(projections=4, kernel_mm=(12.0, 12.0, 24.0), max_boxes=3,
                        batch_size_2d=4, uncertainty_map="binned")
    return run_case(case, load_model("analytic"), settings)


FIT = {r: {"lambda": 0.3, "a": 9.0, "b": -6.0} for r in REGIONS}


def test_a_fitted_model_writes_the_error_probability(phantom_run, binned_run):
    """With an error_map fit the run's uncertainty is the error probability: in [0, 1],
    high at the predicted border, 0 outside the brain; boxes and labels unchanged."""
    case, default = phantom_run
    model = load_model("analytic")
    model.error_map = FIT
    settings = Settings(projections=4, kernel_mm=(12.0, 12.0, 24.0), max_boxes=3,
                        batch_size_2d=4)
    fitted = run_case(case, model, settings)
    assert fitted.report["uncertainty_map"] == {"map": "error-probability", "fit": FIT}
    u = fitted.uncertainty
    assert u.min() >= 0.0 and u.max() <= 1.0
    assert np.all(u[:, ~brain_mask(case.image)] == 0)
    wt = labels_to_regions(fitted.labels)[2]
    border = wt & ~ndimage.binary_erosion(wt)
    far = brain_mask(case.image) & ~ndimage.binary_dilation(wt, iterations=3)
    assert u[2][border].mean() > 3 * u[2][far].mean()
    np.testing.assert_array_equal(fitted.labels, default.labels)
    assert [(b.region, b.start) for b in fitted.boxes] == [(b.region, b.start)
                                                           for b in binned_run.boxes]


def test_outputs_live_on_the_input_grid(phantom_run):
    case, result = phantom_run
    assert result.labels.shape == SHAPE and result.labels.dtype == np.uint8
    for name in ("probabilities", "probabilities_2d", "probabilities_3d", "uncertainty"):
        assert getattr(result, name).shape == (3, *SHAPE)
    assert set(np.unique(result.labels)) <= {0, 1, 2, 4}
    assert 0.0 <= result.uncertainty.min() and result.uncertainty.max() <= 1.0


def test_boxes_point_at_their_uncertainty_on_the_full_grid(binned_run):
    # The search runs on the brain's bounding box; shifting the boxes back must keep the
    # score equal to the uncertainty summed inside the box on the full grid.
    result = binned_run
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


def test_another_voxel_map_moves_neither_the_boxes_nor_the_triage(phantom_run, binned_run):
    """--uncertainty-map changes uncertainty.nii.gz only; the boxes and the triage score
    stay on the binned entropy the 3D network, the fusion and the triage threshold were
    fitted on (DECISIONS #21)."""
    case, default = phantom_run
    assert default.report["settings"]["uncertainty_map"] == "error-probability"
    # the analytic model has no error_map fit: the run falls back to the entropy of P2D
    # in bits, point by point (a crop, no resampling), and says so
    assert default.report["uncertainty_map"]["map"] == "mean-entropy"
    assert "no error_map fit" in default.report["uncertainty_map"]["note"]
    np.testing.assert_allclose(
        default.uncertainty, mean_entropy(torch.from_numpy(default.probabilities_2d)).numpy(),
        atol=1e-5)
    binned = binned_run
    assert binned.report["settings"]["uncertainty_map"] == "binned"
    assert np.abs(binned.uncertainty - default.uncertainty).max() > 0.1
    assert binned.boxes and [(b.region, b.start, b.size) for b in default.boxes] == \
        [(b.region, b.start, b.size) for b in binned.boxes]
    for box in default.boxes:
        inside = binned.uncertainty[(REGIONS.index(box.region), *box.slices)]
        assert inside.sum() == pytest.approx(box.score, rel=1e-4)
    np.testing.assert_array_equal(default.labels, binned.labels)
    for result in (binned, default):
        assert result.report["triage"]["score"] == pytest.approx(
            triage(binned.uncertainty, result.labels)["score"], abs=1e-4)


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
    uncertainty[2] = 0.5  # the model's own threshold decides, and is recorded
    assert triage(uncertainty, labels, threshold=0.6) == {**triage(uncertainty, labels, 0.6),
                                                          "flag": "routine", "threshold": 0.6}
    assert triage(uncertainty, labels, threshold=0.4)["flag"] == "review"


def test_crop_is_optional_and_consistent(tmp_path):
    folder = write_phantom_case(tmp_path, seed=4, shape=(16, 40, 36))
    case = load_case(case_dir=folder)
    settings = Settings(projections=2, kernel_mm=(8.0, 8.0, 16.0), max_boxes=1,
                        crop_to_brain=False, postprocess=False)
    result = run_case(case, load_model("analytic"), settings)
    assert result.labels.shape == (16, 40, 36)
    outside_brain = ~(case.image != 0).any(axis=0)
    assert result.labels[outside_brain].max(initial=0) == 0 or outside_brain.sum() == 0


class _Pointwise(torch.nn.Module):
    """Logits that are a fixed function of each voxel's own intensities: the projection
    round trip then gives back (almost) the same map, whatever the origins."""

    def forward(self, x):
        return 2.0 * x[:, [0, 2, 3]]


def _padded_case(pad):
    phantom = make_phantom(shape=(20, 44, 40), spacing=(2.0, 1.5, 1.5), seed=6)
    image = np.pad(phantom.image, ((0, 0), *pad))
    reference = sitk.GetImageFromArray(np.zeros(image.shape[1:], np.uint8))
    reference.SetSpacing((1.5, 1.5, 2.0))
    return Case(image=image, reference=reference, spacing=(2.0, 1.5, 1.5), paths={},
                case_id="padded", naming="brats2018")


def _pointwise_model():
    return Model(name="pointwise", version="test", network_2d=_Pointwise(),
                 network_3d=_Pointwise(), fusion_weights=np.array([[1.0, 1.0, 0.0]] * 3),
                 radius=None, divisor_2d=1, divisor_3d=1, kernel_mm=(12.0, 12.0, 24.0),
                 trained=False, description="test network")


def test_crop_offsets_on_every_axis():
    # Zero margins wider than the crop margin make the brain's bounding box start at a
    # non-zero voxel on every axis, so an offset bug in pasting back shows.
    pad = ((7, 5), (9, 6), (11, 8))
    case = _padded_case(pad)
    result = run_case(case, _pointwise_model(), Settings(projections=3, max_boxes=2,
                                                         uncertainty_map="binned"))
    normalised = normalize(case.image, brain_mask(case.image))
    expected = 1.0 / (1.0 + np.exp(-2.0 * normalised[[0, 2, 3]]))
    brain = brain_mask(case.image)
    error = np.abs(result.probabilities_2d - expected)[:, brain].mean()
    shifted = np.roll(expected, (1, 2, 2), axis=(1, 2, 3))
    error_shifted = np.abs(result.probabilities_2d - shifted)[:, brain].mean()
    assert error < 0.5 * error_shifted
    outside = np.ones(brain.shape, bool)
    outside[bounding_box(brain, Settings().crop_margin)] = False
    assert outside.any() and (result.probabilities_2d[:, outside] == 0).all()
    assert (result.probabilities_3d[:, outside] == -1).all()
    for box in result.boxes:
        region = REGIONS.index(box.region)
        assert result.uncertainty[(region, *box.slices)].sum() == pytest.approx(box.score, rel=1e-4)
        # 12 mm (ET, TC) and 24 mm (WT) cubes at (2, 1.5, 1.5) mm spacing.
        expected_size = (6, 8, 8) if box.region != "WT" else (12, 16, 16)
        assert tuple(box.size) == expected_size


def test_bad_settings_fail_before_any_work():
    for kwargs, flag in [({"projections": "foo"}, "--projections"),
                         ({"projections": -3}, "--projections"),
                         ({"max_overlap": 2.0}, "--max-overlap"),
                         ({"kernel_mm": (0.0, 1.0, 1.0)}, "--kernel-mm"),
                         ({"batch_size_3d": 0}, "--batch-size-3d"),
                         ({"min_component_fraction": 1.5}, "--min-component-fraction")]:
        with pytest.raises(InputError, match=flag):
            Settings(**kwargs)


def test_component_fraction_is_the_models_unless_asked():
    model = load_model("analytic")
    model.min_component_fraction = 1.0  # as a trained model.json may say
    probabilities = np.zeros((3, 20, 20, 20), dtype=np.float32)
    probabilities[:, 2:10, 2:10, 2:10] = 0.9    # 512 voxels
    probabilities[:, 14:18, 14:18, 14:18] = 0.9  # 64 voxels: 12.5 % of the largest
    assert component_fraction(Settings(), model) == 1.0
    assert segment(probabilities, Settings(), model)[2].sum() == 512
    asked = Settings(min_component_fraction=0.1)
    assert component_fraction(asked, model) == 0.1
    assert segment(probabilities, asked, model)[2].sum() == 576
    assert segment(probabilities, Settings(postprocess=False), model)[2].sum() == 576


def test_nnunet_model_sees_its_training_spacing(tmp_path):
    # The phantom model was trained at 1 mm; a 2 mm in-plane input is resampled by nnU-Net's
    # preprocessing and exported back, so the outputs land on the input grid.
    from uncertaintyseg.evaluation.metrics import case_metrics

    folder = write_phantom_case(tmp_path, seed=21, shape=(40, 64, 56), spacing=(2.0, 2.0, 2.0))
    case = load_case(case_dir=folder)
    reference, _ = load_labels(next(folder.glob("*_seg.nii.gz")))
    # torch: the grid is the subject, not the backend (test_inference_backend's), and an
    # OpenVINO export and compile of both networks cost most of this test's time.
    settings = Settings(projections=4, max_boxes=2, backend="torch")
    result = run_case(case, load_model("phantom"), settings)
    grid = result.report["working_grid"]
    assert grid["resampled"] and grid["spacing_zyx"][1] == pytest.approx(1.0, rel=0.05)
    assert result.labels.shape == reference.shape
    assert case_metrics(reference, result.labels, case.spacing)["WT"]["dice"] > 0.85
    for box in result.boxes:
        assert all(0 <= s and s + n <= dim for s, n, dim in zip(box.start, box.size, reference.shape))


def test_nnunet_grid_cut_to_the_brain_first_is_nnunets_own(tmp_path):
    # from_nnunet hands nnU-Net the non-zero box (memory: a 0.5 mm head is mostly air);
    # nnU-Net on the whole volume must give the same working image, offset and export.
    from uncertaintyseg.networks.working_grid import nnunet_export, nnunet_preprocess
    from uncertaintyseg.files.phantom import make_phantom
    from uncertaintyseg.networks.working_grid import from_nnunet

    image = np.zeros((4, 30, 72, 64), np.float32)
    image[:, 3:27, 5:69, 6:62] = make_phantom((24, 64, 56), (2.0, 2.0, 2.0), seed=4).image
    model, spacing = load_model("phantom"), (2.0, 2.0, 2.0)
    grid = from_nnunet(model, image, spacing)
    data, properties = nnunet_preprocess(model, image, spacing)
    np.testing.assert_array_equal(grid.image, data)
    assert grid.offset == tuple(int(b[0]) for b in properties["bbox_used_for_cropping"])
    maps = np.random.default_rng(0).random((3, *data.shape[1:]), dtype=np.float32)
    np.testing.assert_allclose(grid.to_input(maps), nnunet_export(model, maps, properties),
                               atol=1e-6)
    shifted = nnunet_export(model, maps + 1.0, properties) - 1.0   # -1 outside, as P3D
    np.testing.assert_allclose(grid.to_input(maps, fill=-1.0), shifted, atol=1e-6)
