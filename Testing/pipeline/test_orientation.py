"""Cases stored sagittally, coronally or with flipped axes give the axial case's result."""

import itertools

import numpy as np
import pytest
import SimpleITK as sitk

from uncertaintyseg.files.contract import boxes_to_json
from uncertaintyseg.files.io import load_case, write_image_atomic
from uncertaintyseg.stages.kernels import Box
from uncertaintyseg.stages.orientation import CANONICAL, reorientation
from uncertaintyseg.files.phantom import write_phantom_case
from uncertaintyseg.run.predict import run

SHAPE = (24, 56, 48)
VALUES = {"model": "analytic", "device": "cpu", "projections": 4, "max_boxes": 3,
          "kernel_mm": (12.0, 12.0, 24.0), "batch_size_2d": 4}
# (name, ITK axis order for PermuteAxes, flips after it): storage other than axial.
STORAGES = [("sagittal", [2, 0, 1], [False, False, False]),
            ("coronal", [0, 2, 1], [False, False, True]),
            ("flipped", [0, 1, 2], [True, True, False])]


def _signed_permutations():
    for order in itertools.permutations(range(3)):
        for flips in itertools.product([False, True], repeat=3):
            yield list(order), list(flips)


def _restored(image, order, flips):
    # PermuteAxes and Flip keep every voxel at its physical place: the same anatomy,
    # stored along other array axes.
    return sitk.Flip(sitk.PermuteAxes(image, order), flips)


@pytest.mark.parametrize("order,flips", list(_signed_permutations()))
def test_reorientation_matches_dicomorient(order, flips):
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.random((3, 4, 5)).astype(np.float32))
    stored = _restored(image, order, flips)
    turn = reorientation(stored)
    expected = sitk.GetArrayFromImage(sitk.DICOMOrient(stored, CANONICAL))
    assert np.array_equal(turn.forward(sitk.GetArrayFromImage(stored)), expected)
    assert np.array_equal(turn.backward(expected), sitk.GetArrayFromImage(stored))
    # A box mapped back covers the same voxels of the stored array.
    box = Box("ET", 0, 1.0, (1, 0, 2), (2, 3, 2))
    canonical = np.zeros(expected.shape, bool)
    canonical[box.slices] = True
    back = turn.box_backward(box, expected.shape)
    stored_mask = np.zeros(turn.backward(canonical).shape, bool)
    stored_mask[back.slices] = True
    assert np.array_equal(stored_mask, turn.backward(canonical))


def _write_stored(case_dir, out_dir, order, flips):
    out_dir.mkdir()
    for path in case_dir.glob("*.nii.gz"):
        image = _restored(sitk.ReadImage(str(path)), order, flips)
        write_image_atomic(image, out_dir / path.name)
    return out_dir


@pytest.fixture(scope="module")
def axial(tmp_path_factory):
    root = tmp_path_factory.mktemp("orient")
    case_dir = write_phantom_case(root, seed=3, shape=SHAPE, spacing=(2.0, 1.5, 1.5))
    result, _ = run(case_dir, VALUES)
    return root, case_dir, result


@pytest.mark.parametrize("name,order,flips", STORAGES)
def test_stored_orientation_gives_the_axial_result(axial, name, order, flips):
    root, case_dir, expected = axial
    stored_dir = _write_stored(case_dir, root / f"{case_dir.name}_{name}", order, flips)
    case = load_case(case_dir=stored_dir)
    assert reorientation(case.reference).code != CANONICAL
    result, _ = run(case, VALUES)
    assert result.labels.shape == case.image.shape[1:]
    assert result.reference.GetDirection() == case.reference.GetDirection()
    # Back on the axial grid (nearest neighbour on coinciding voxel centres: exact).
    labels = sitk.GetImageFromArray(result.labels)
    labels.CopyInformation(case.reference)
    on_axial = sitk.Resample(labels, expected.reference, sitk.Transform(),
                             sitk.sitkNearestNeighbor)
    assert expected.labels.any()
    assert np.array_equal(sitk.GetArrayFromImage(on_axial), expected.labels)
    assert result.report["orientation"]["reoriented"] is True
    assert result.report["input"]["shape_zyx"] == list(case.image.shape[1:])
    # The boxes are the same boxes in RAS: same centres, same sides in mm.
    boxes = boxes_to_json(result.boxes, case.reference)["boxes"]
    reference_boxes = boxes_to_json(expected.boxes, expected.reference)["boxes"]
    assert len(boxes) == len(reference_boxes) > 0
    for box, ref in zip(boxes, reference_boxes):
        np.testing.assert_allclose(box["center_ras"], ref["center_ras"], atol=1e-6)
        assert sorted(box["size_mm"]) == pytest.approx(sorted(ref["size_mm"]))
        assert box["score"] == pytest.approx(ref["score"], rel=1e-6)


def test_axial_case_is_left_as_it_is(axial):
    _, _, result = axial
    assert result.report["orientation"] == {
        "input": CANONICAL, "processed": CANONICAL, "reoriented": False,
        "axes_order_zyx": [0, 1, 2], "flipped_zyx": [False, False, False]}


def test_oblique_direction_goes_to_the_nearest_axes():
    # A volume tilted by 20 degrees and stored sagittally: DICOMOrient picks the closest
    # axes; our arrays must be the ones it gives.
    angle = np.radians(20.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0.0],
                         [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    image = sitk.GetImageFromArray(np.random.default_rng(1).random((3, 4, 5)).astype(np.float32))
    image.SetDirection(tuple(rotation.ravel()))
    stored = _restored(image, [2, 0, 1], [True, False, False])
    turn = reorientation(stored)
    assert not turn.identity
    expected = sitk.GetArrayFromImage(sitk.DICOMOrient(stored, CANONICAL))
    assert np.array_equal(turn.forward(sitk.GetArrayFromImage(stored)), expected)
