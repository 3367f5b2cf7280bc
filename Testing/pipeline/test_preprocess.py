"""Tests of uncertaintyseg.stages.preprocess: brain mask, bounding box, z-score, padding."""
import numpy as np
import pytest
import torch

from uncertaintyseg.files.phantom import make_phantom
from uncertaintyseg.stages.preprocess import bounding_box, brain_mask, normalize, pad_to_multiple

torch.set_num_threads(1)


def test_brain_mask_is_any_channel_non_zero():
    image = np.zeros((4, 3, 4, 5), np.float32)
    image[3, 0, 0, 0] = 7.0      # only in the last channel
    image[1, 2, 3, 4] = -2.0     # negative values are tissue too
    mask = brain_mask(image)
    assert mask.dtype == bool and mask.shape == (3, 4, 5)
    assert mask[0, 0, 0] and mask[2, 3, 4]
    assert mask.sum() == 2
    with pytest.raises(ValueError):
        brain_mask(image[0])


def test_brain_mask_fills_enclosed_holes_as_nnunet_does():
    # A zero cavity inside the brain (a resection cavity set to zero) is brain for
    # nnU-Net's preprocessing; a notch open to the outside is not.
    image = np.zeros((4, 9, 9, 9), np.float32)
    image[:, 1:8, 1:8, 1:8] = 5.0
    image[:, 3:6, 3:6, 3:6] = 0.0            # enclosed cavity
    image[:, 3:6, 3:6, 6:8] = 0.0            # a channel from the cavity to the border
    image[:, 1:3, 1:3, 1:3] = 0.0            # a notch at the corner, open to the outside
    closed = image.copy()
    closed[:, 3:6, 3:6, 6:8] = 5.0           # the channel shut: the cavity is enclosed
    open_mask, closed_mask = brain_mask(image), brain_mask(closed)
    assert not open_mask[4, 4, 4]            # reached from outside: not a hole
    assert closed_mask[4, 4, 4] and closed_mask[3:6, 3:6, 3:6].all()
    assert not closed_mask[1, 1, 1] and not closed_mask[0].any()
    assert closed_mask.sum() == 7 ** 3 - 2 ** 3


def test_brain_mask_of_a_phantom_is_its_brain():
    phantom = make_phantom(shape=(20, 32, 28), spacing=(4.0, 4.0, 4.0), seed=0)
    np.testing.assert_array_equal(brain_mask(phantom.image), phantom.brain)


def test_bounding_box_is_tight_without_margin():
    mask = np.zeros((10, 12, 14), bool)
    mask[2:5, 3, 4:9] = True
    mask[6, 7, 5] = True
    assert bounding_box(mask) == (slice(2, 7), slice(3, 8), slice(4, 9))


def test_bounding_box_margin_is_clipped_to_the_volume():
    mask = np.zeros((10, 12, 14), bool)
    mask[1, 5, 12] = True
    assert bounding_box(mask, margin=2) == (slice(0, 4), slice(3, 8), slice(10, 14))
    assert bounding_box(mask, margin=(0, 1, 3)) == (slice(1, 2), slice(4, 7),
                                                   slice(9, 14))
    with pytest.raises(ValueError):
        bounding_box(mask, margin=-1)


def test_bounding_box_of_an_empty_mask_is_the_whole_volume():
    mask = np.zeros((3, 4, 5), bool)
    assert bounding_box(mask, margin=2) == (slice(0, 3), slice(0, 4), slice(0, 5))


def reference_zscore(channel, mask):
    """Independent oracle in float64: (x - mean) / std over the mask, 0 outside."""
    values = channel[mask].astype(np.float64)
    out = np.zeros(channel.shape)
    out[mask] = (values - values.mean()) / values.std()
    return out


def test_normalize_is_a_zscore_per_channel_over_the_mask():
    rng = np.random.default_rng(0)
    image = rng.normal([[[[100.0]]], [[[5.0]]], [[[-30.0]]], [[[800.0]]]],
                       [[[[10.0]]], [[[1.0]]], [[[4.0]]], [[[90.0]]]], (4, 6, 7, 8))
    mask = np.zeros((6, 7, 8), bool)
    mask[1:5, 2:6, 1:7] = True
    original = image.copy()
    out = normalize(image, mask)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_array_equal(image, original)  # input untouched
    for channel in range(4):
        np.testing.assert_allclose(out[channel], reference_zscore(image[channel], mask),
                                   rtol=1e-4, atol=1e-5)
        assert out[channel][mask].mean() == pytest.approx(0.0, abs=1e-5)
        assert out[channel][mask].std() == pytest.approx(1.0, rel=1e-4)
    # Voxels outside the mask are zero even where the image is not.
    assert np.all(out[:, ~mask] == 0)


def test_normalize_constant_channel_integer_input_and_empty_mask():
    image = np.zeros((4, 3, 4, 5), np.int16)
    image[:, 1:, 1:, 1:] = 50
    image[0, 1:, 1:, 1:] = np.arange(24).reshape(2, 3, 4)
    mask = brain_mask(image)
    out = normalize(image, mask)
    assert np.all(np.isfinite(out))
    assert np.all(out[1:] == 0)  # a constant channel has no contrast left
    np.testing.assert_allclose(out[0], reference_zscore(image[0], mask), rtol=1e-5)
    assert not normalize(image, np.zeros((3, 4, 5), bool)).any()
    with pytest.raises(ValueError):
        normalize(image, mask[:, :, :4])


def test_normalize_a_phantom_over_its_brain():
    phantom = make_phantom(shape=(20, 32, 28), spacing=(4.0, 4.0, 4.0), seed=1)
    out = normalize(phantom.image, phantom.brain)
    inside = out[:, phantom.brain]
    np.testing.assert_allclose(inside.mean(axis=1), 0.0, atol=1e-4)
    np.testing.assert_allclose(inside.std(axis=1), 1.0, rtol=1e-4)


def test_pad_to_multiple_pads_the_last_two_axes_and_crops_back():
    array = np.arange(2 * 3 * 10 * 13, dtype=np.float32).reshape(2, 3, 10, 13) + 1
    padded, pads = pad_to_multiple(array, 8)
    assert padded.shape == (2, 3, 16, 16)
    np.testing.assert_array_equal(padded[pads], array)
    assert padded.sum() == array.sum()  # the padding is zeros
    assert all(isinstance(s.start, int) for s in pads)


def test_pad_to_multiple_with_one_divisor_per_axis_and_torch():
    tensor = torch.rand(2, 5, 9, 16)
    padded, pads = pad_to_multiple(tensor, (4, 4, 8))
    assert tuple(padded.shape) == (2, 8, 12, 16)
    assert torch.equal(padded[pads], tensor)
    same, pads = pad_to_multiple(np.ones((3, 16, 24)), 8)
    assert same.shape == (3, 16, 24)
    with pytest.raises(ValueError):
        pad_to_multiple(np.ones((16, 24)), (2, 2, 2))
