"""The 2D stage batches views across slices: one warp and one network call per batch,
with each slice's P2D and entropy those of the per-slice path (`predict_slice`)."""

import numpy as np
import pytest
import torch

from uncertaintyseg.stages import projection
from uncertaintyseg.files.phantom import make_phantom
from uncertaintyseg.networks.devices import AUTO_BATCH_SIZE, auto_batch_size, resolve_run
from uncertaintyseg.run.pipeline import Settings
from uncertaintyseg.stages.preprocess import brain_mask, normalize
from uncertaintyseg.stages.uncertainty import predict_slice, predict_volume
from uncertaintyseg.stages.views import FlipViews, ProjectionViews

torch.set_num_threads(1)


class _NormNet(torch.nn.Module):
    """Conv, instance norm (statistics per view: a batch must not mix them), conv."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.layers = torch.nn.Sequential(
            torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.InstanceNorm2d(8, affine=True),
            torch.nn.LeakyReLU(0.01), torch.nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x):
        return 4 * self.layers(x)


class _Counting(torch.nn.Module):
    """Wraps a network and keeps the batch size (views) of every call; test_brain_crop
    counts the views with it too."""

    def __init__(self, network):
        super().__init__()
        self.network, self.batches = network, []

    def forward(self, x):
        self.batches.append(x.shape[0])
        return self.network(x)


@pytest.fixture(scope="module")
def slab():
    """A phantom cut to 10 slices, z-scored, with slices 0, 4 and 9 emptied."""
    phantom = make_phantom(shape=(40, 48, 40), seed=2)
    image, mask = phantom.image[:, 15:25].copy(), brain_mask(phantom.image[:, 15:25])
    for z in (0, 4, 9):
        image[:, z], mask[z] = 0.0, False
    return normalize(image, mask), mask


def _per_slice(network, image, mask, projections, views=None):
    radius = projection.default_radius(mask.shape[1:])
    views = views or ProjectionViews(radius)
    out = np.zeros((3, 3) + mask.shape, np.float32)
    for z in range(mask.shape[0]):
        params = views.params(mask[z], projections)
        if len(params):
            for k, result in enumerate(predict_slice(network, image[:, z], params, radius,
                                                     batch_size=7, divisor=8, views=views)):
                out[k, :, z] = result
    return out


@pytest.mark.parametrize("batch_size", [5, 16, 64])
def test_batches_across_slices_match_the_per_slice_path(slab, batch_size):
    image, mask = slab
    network = _NormNet().eval()
    expected = _per_slice(network, image, mask, 6)
    result = predict_volume(network, image, mask, 6, batch_size=batch_size, divisor=8)
    for k, got in enumerate((result.p2d, result.entropy_raw, result.entropy_norm)):
        np.testing.assert_allclose(got, expected[k], atol=2e-5)
    assert result.entropy_norm[:, mask.any(axis=(1, 2))].max() > 0.05  # a real spread


def test_flip_views_batch_across_slices_too(slab):
    image, mask = slab
    network = _NormNet().eval()
    expected = _per_slice(network, image, mask, None, views=FlipViews())
    result = predict_volume(network, image, mask, None, batch_size=6, divisor=8,
                            views=FlipViews())
    np.testing.assert_allclose(result.p2d, expected[0], atol=2e-5)
    np.testing.assert_allclose(result.entropy_norm, expected[2], atol=2e-5)


def test_one_warp_and_one_network_call_per_batch(slab, monkeypatch):
    image, mask = slab
    warps = []
    real_warp = projection._warp
    monkeypatch.setattr(projection, "_warp",
                        lambda images, grid: warps.append(len(images)) or real_warp(images, grid))
    network = _Counting(_NormNet().eval())
    progress = []
    result = predict_volume(network, image, mask, 6, batch_size=16, divisor=8,
                            progress=lambda *args: progress.append(args[:3]))
    views = int(result.projections_per_slice.sum())
    assert views == 6 * 7  # 7 slices with brain, none from the 3 empty ones
    full, rest = divmod(views, 16)
    assert network.batches == [16] * full + [rest]  # batches span slices
    assert warps == [n for n in network.batches for _ in (0, 1)]  # project + back
    assert progress == [("uncertainty", z + 1, 10) for z in range(10)]


def test_empty_slices_cost_no_network_call(slab):
    image, mask = slab
    network = _Counting(_NormNet().eval())
    only = np.zeros_like(mask)
    only[5] = mask[5]
    result = predict_volume(network, image, only, 6, batch_size=4, divisor=8)
    assert network.batches == [4, 2]  # slice 5's 6 views, nothing for the 9 others
    assert list(result.projections_per_slice) == [0] * 5 + [6] + [0] * 4
    assert not result.p2d[:, :5].any() and not result.p2d[:, 6:].any()
    empty = _Counting(_NormNet().eval())
    predict_volume(empty, image, np.zeros_like(mask), 6, divisor=8)
    assert empty.batches == []


def test_batch_size_auto_is_larger_on_cuda():
    assert resolve_run(Settings(device="cpu")).batch_size_2d == AUTO_BATCH_SIZE[0] == 16
    assert auto_batch_size(torch.device("cuda")) == AUTO_BATCH_SIZE[1] > AUTO_BATCH_SIZE[0]
    assert resolve_run(Settings(device="cpu", batch_size_2d="48")).batch_size_2d == 48
    assert resolve_run(Settings(device="cpu", batch_size_2d=3)).batch_size_2d == 3
