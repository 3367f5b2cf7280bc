"""3D refinement plumbing (design 4.4): cubes in, composite P3D out."""

import itertools

import numpy as np
import pytest
import torch

from uncertaintyseg import REGIONS
from uncertaintyseg.stages.kernels import Box
from uncertaintyseg.stages.refine import cut_cubes, refine

torch.set_num_threads(1)


class CubeMeanNetwork(torch.nn.Module):
    """Logit of region c, everywhere in the cube = mean of input channel c of the cube.

    The output depends on where the cube sits, so overlapping cubes disagree and the
    composite must really average them.
    """

    def forward(self, x):
        means = x[:, :3].mean(dim=(2, 3, 4), keepdim=True)
        return means.expand(-1, -1, *x.shape[2:]).clone()


class PointwiseNetwork(torch.nn.Module):
    """Logits = the first three input channels; refuses sizes not a multiple of 4."""

    def forward(self, x):
        assert all(n % 4 == 0 for n in x.shape[2:]), x.shape
        return x[:, :3] * 1.0


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


@pytest.fixture
def image():
    return np.random.default_rng(0).normal(size=(4, 7, 8, 9)).astype(np.float32)


def mixed_boxes():
    return [Box("ET", 1, 5.0, (0, 0, 0), (4, 4, 4)),
            Box("ET", 2, 4.0, (2, 2, 3), (4, 4, 4)),
            Box("WT", 1, 9.0, (1, 3, 2), (6, 5, 6)),
            Box("ET", 3, 3.0, (3, 4, 5), (4, 4, 4)),
            Box("WT", 2, 8.0, (0, 0, 0), (3, 3, 3))]


def expected_composite(image, boxes):
    """Per voxel and region: mean over covering boxes of that region, by brute force."""
    out = np.full((3,) + image.shape[1:], -1.0)
    for r, region in enumerate(REGIONS):
        mine = [b for b in boxes if b.region == region]
        for v in itertools.product(*(range(n) for n in image.shape[1:])):
            values = [sigmoid(image[(r,) + b.slices].mean()) for b in mine
                      if all(s <= i < e for i, s, e in zip(v, b.start, b.stop))]
            if values:
                out[(r,) + v] = np.mean(values)
    return out


def test_cut_cubes(image):
    boxes = [Box("ET", 1, 1.0, (1, 2, 3), (3, 4, 5)), Box("TC", 1, 1.0, (4, 0, 4), (3, 4, 5))]
    cubes = cut_cubes(image, boxes)
    assert cubes.shape == (2, 4, 3, 4, 5)
    np.testing.assert_array_equal(cubes[0], image[:, 1:4, 2:6, 3:8])
    np.testing.assert_array_equal(cubes[1], image[:, 4:7, 0:4, 4:9])
    with pytest.raises(ValueError):
        cut_cubes(image, [boxes[0], Box("ET", 2, 1.0, (0, 0, 0), (2, 2, 2))])
    with pytest.raises(ValueError):
        cut_cubes(image, [Box("ET", 1, 1.0, (5, 0, 0), (3, 3, 3))])


def test_overlaps_are_averaged_and_uncovered_is_minus_one(image):
    boxes = mixed_boxes()
    p3d = refine(CubeMeanNetwork(), image, boxes, batch_size=2)
    assert p3d.shape == (3,) + image.shape[1:] and p3d.dtype == np.float32
    expected = expected_composite(image, boxes)
    np.testing.assert_allclose(p3d, expected, atol=1e-6)
    # No TC box: the TC channel stays "not refined" everywhere.
    assert np.all(p3d[1] == -1.0)
    # A voxel in both ET cubes 1 and 2 gets their average (not either one).
    a, b = (sigmoid(image[(0,) + boxes[i].slices].mean()) for i in (0, 1))
    assert p3d[0, 3, 3, 3] == pytest.approx((a + b) / 2, abs=1e-6)
    assert abs(a - b) > 1e-3


def test_only_the_box_region_channel_is_written(image):
    boxes = [Box("TC", 1, 1.0, (1, 1, 1), (4, 4, 4))]
    p3d = refine(PointwiseNetwork(), image, boxes)
    assert np.all(p3d[0] == -1.0) and np.all(p3d[2] == -1.0)
    inside = np.zeros(image.shape[1:], dtype=bool)
    inside[boxes[0].slices] = True
    np.testing.assert_allclose(p3d[1][inside], sigmoid(image[1][inside]), atol=1e-6)
    assert np.all(p3d[1][~inside] == -1.0)


def test_padding_to_the_divisor_is_cropped_back(image):
    # Cubes of 3 and 6 voxels become 4 and 8 for the network, then back.
    boxes = [Box("ET", 1, 1.0, (0, 1, 2), (3, 6, 3)), Box("WT", 1, 1.0, (2, 0, 0), (5, 6, 7))]
    p3d = refine(PointwiseNetwork(), image, boxes, divisor=4)
    for box in boxes:
        r = REGIONS.index(box.region)
        np.testing.assert_allclose(p3d[(r,) + box.slices],
                                   sigmoid(image[(r,) + box.slices]), atol=1e-6)


def test_batching_does_not_change_the_result(image):
    boxes = mixed_boxes()
    reference = refine(CubeMeanNetwork(), image, boxes, batch_size=1)
    for batch_size in (2, 3, 16):
        np.testing.assert_array_equal(
            refine(CubeMeanNetwork(), image, boxes, batch_size=batch_size), reference)


def test_progress_and_empty_box_list(image):
    calls = []
    refine(CubeMeanNetwork(), image, mixed_boxes(), batch_size=2,
           progress=lambda *args: calls.append(args))
    assert calls[-1][:3] == ("refine", 5, 5)
    assert [c[1] for c in calls] == sorted(c[1] for c in calls)
    assert np.all(refine(CubeMeanNetwork(), image, []) == -1.0)


def test_autocast_runs_close_to_float32(image):
    # A 1x1x1 convolution picking channels 0..2: autocast runs it in bfloat16.
    conv = torch.nn.Conv3d(4, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for c in range(3):
            conv.weight[c, c] = 1.0
    boxes = mixed_boxes()
    full = refine(conv, image, boxes)
    low = refine(conv, image, boxes, autocast_dtype=torch.bfloat16)
    assert low.dtype == np.float32
    assert not np.array_equal(low, full)  # the lower precision did take effect
    np.testing.assert_allclose(low, full, atol=2e-2)


def test_wrong_network_output_is_reported(image):
    class TwoChannels(torch.nn.Module):
        def forward(self, x):
            return x[:, :2]

    with pytest.raises(ValueError, match="3 regions"):
        refine(TwoChannels(), image, mixed_boxes())
    with pytest.raises(ValueError):
        refine(CubeMeanNetwork(), image, [Box("NCR", 1, 1.0, (0, 0, 0), (2, 2, 2))])
