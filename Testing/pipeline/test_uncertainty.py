"""Projected 2D inference with streaming statistics (DESIGN 4.2)."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from uncertaintyseg.stages import projection as P
from uncertaintyseg.options import OPTIONS
from uncertaintyseg.stages.uncertainty import (UNCERTAINTY_MAPS, Projected2D, StreamingStats,
                                               mean_entropy, predict_slice, predict_volume)

torch.set_num_threads(1)


def _histogram_entropy_loop(flat, bins=100):
    """np.histogram and scipy's entropy per pixel of (N, P) maps: the oracle's oracle."""
    raw = np.empty(flat.shape[1])
    for k in range(flat.shape[1]):
        counts, _ = np.histogram(flat[:, k], bins=bins, range=(0.0, 1.0))
        raw[k] = scipy.stats.entropy(counts / flat.shape[0])  # natural log, 0 bins skipped
    return raw


def _histogram_entropy(flat, bins=100):
    """`_histogram_entropy_loop` for every pixel at once (a 32x48 slice's loop took
    seconds per test): np.histogram's bins, [edge_i, edge_i+1) and the last one closed,
    found by searchsorted on the same edges, in the maps' dtype as np.histogram makes
    them (float32 edges for float32 maps); test_the_oracle_is_numpys_histogram."""
    n, pixels = flat.shape
    edges = np.linspace(0.0, 1.0, bins + 1, dtype=flat.dtype)
    index = np.minimum(np.searchsorted(edges, flat, side="right") - 1, bins - 1)
    counts = np.zeros((bins, pixels))
    np.add.at(counts, (index, np.broadcast_to(np.arange(pixels), flat.shape)), 1.0)
    return scipy.stats.entropy(counts / n, axis=0)


def _reference_stats(maps, bins=100):
    """Mean and binned entropy holding all N maps: maps (N, C, H, W) numpy."""
    n = maps.shape[0]
    raw = _histogram_entropy(maps.reshape(n, -1), bins).reshape(maps.shape[1:])
    norm = raw / math.log(min(n, bins)) if n > 1 else np.zeros_like(raw)
    return maps.mean(axis=0), raw, norm


def test_the_oracle_is_numpys_histogram():
    # Bin edges exactly (k / 100), 0 and 1, and values a float32 rounding away from them.
    rng = np.random.default_rng(5)
    edges = np.linspace(0.0, 1.0, 101)
    # Probabilities: in [0, 1] (np.histogram drops values outside its range).
    values = np.concatenate([edges, np.nextafter(edges.astype(np.float32), 2).clip(0, 1),
                             np.nextafter(edges.astype(np.float32), -1).clip(0, 1),
                             rng.uniform(0, 1, 200)])
    flat = rng.choice(values, size=(24, 300)).astype(np.float32)
    np.testing.assert_allclose(_histogram_entropy(flat), _histogram_entropy_loop(flat),
                               rtol=0, atol=1e-12)


def _random_probs(n, shape=(3, 6, 7), seed=0):
    rng = np.random.default_rng(seed)
    # half of the pixels spread over all bins, half concentrated in a few bins
    wide = rng.uniform(0, 1, (n,) + shape)
    narrow = rng.choice([0.0, 0.105, 0.5, 0.999, 1.0], size=(n,) + shape)
    return np.where(rng.uniform(size=shape) < 0.5, wide, narrow).astype(np.float32)


@pytest.mark.parametrize("splits", [[40], [1] * 40, [7, 13, 1, 19], [25, 15]])
def test_streaming_stats_match_holding_all_maps(splits):
    probs = _random_probs(sum(splits))
    stats = StreamingStats(3, (6, 7))
    start = 0
    for size in splits:
        stats.update(torch.from_numpy(probs[start:start + size]))
        start += size
    mean, raw, norm = _reference_stats(probs)
    assert stats.count == 40
    np.testing.assert_allclose(stats.mean().numpy(), mean, atol=1e-6)
    np.testing.assert_allclose(stats.entropy().numpy(), raw, atol=1e-5)
    np.testing.assert_allclose(stats.normalized_entropy().numpy(), norm, atol=1e-5)


def test_entropy_where_some_pixels_agree_and_others_spread():
    # The entropy takes logarithms only where the probabilities fall in several bins:
    # pixels of one bin (0 exactly) and spread pixels side by side, as in a real slice.
    probs = _random_probs(12, shape=(3, 8, 9), seed=4)
    agree = np.random.default_rng(5).uniform(size=(3, 8, 9)) < 0.6
    probs[:, agree] = np.linspace(0.421, 0.429, 12, dtype=np.float32)[:, None]  # bin 42
    stats = StreamingStats(3, (8, 9))
    stats.update(torch.from_numpy(probs))
    _, raw, norm = _reference_stats(probs)
    assert (raw[agree] == 0).all() and (raw[~agree] > 0).all()
    np.testing.assert_allclose(stats.entropy().numpy(), raw, atol=1e-5)
    np.testing.assert_allclose(stats.normalized_entropy().numpy(), norm, atol=1e-5)


def test_entropy_extremes_and_normalisation():
    agree = StreamingStats(1, (2, 2))
    agree.update(torch.full((30, 1, 2, 2), 0.42))
    assert agree.entropy().abs().max() == 0 and agree.normalized_entropy().max() == 0
    distinct = StreamingStats(1, (1, 1))
    values = (torch.arange(50, dtype=torch.float32) * 2 + 0.5) / 100  # 50 distinct bins
    distinct.update(values.reshape(50, 1, 1, 1))
    assert float(distinct.entropy()) == pytest.approx(math.log(50), rel=1e-6)
    assert float(distinct.normalized_entropy()) == pytest.approx(1.0, rel=1e-6)
    many = StreamingStats(1, (1, 1))  # 300 values, 3 in each of the 100 bins
    many.update(((torch.arange(300) // 3 + 0.5) / 100).reshape(300, 1, 1, 1))
    assert float(many.entropy()) == pytest.approx(math.log(100), rel=1e-6)
    assert float(many.normalized_entropy()) == pytest.approx(1.0, rel=1e-6)
    edges = StreamingStats(1, (1, 1))  # p = 1 joins bin 99, p = 0.99 too: one bin
    edges.update(torch.tensor([1.0, 0.99, 0.995]).reshape(3, 1, 1, 1))
    assert float(edges.entropy()) == 0


def test_single_projection_and_range():
    one = StreamingStats(3, (4, 5))
    one.update(torch.rand(1, 3, 4, 5))
    assert one.entropy().max() == 0 and one.normalized_entropy().max() == 0
    two = StreamingStats(3, (4, 5))
    two.update(torch.tensor([0.1, 0.9]).reshape(2, 1, 1, 1).expand(2, 3, 4, 5))
    assert torch.allclose(two.normalized_entropy(), torch.ones(3, 4, 5))  # ln 2 / ln 2
    spread = StreamingStats(3, (4, 5))
    spread.update(torch.rand(150, 3, 4, 5))
    norm = spread.normalized_entropy()
    assert norm.min() >= 0 and norm.max() <= 1 and norm.mean() > 0.8
    with pytest.raises(RuntimeError):
        StreamingStats(3, (4, 5)).mean()
    with pytest.raises(ValueError, match="expects"):
        spread.update(torch.rand(2, 3, 5, 4))


class _TinyNet(torch.nn.Module):
    """A random 2-layer conv net, 4 -> 3 channels, any input size."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.layers = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.Tanh(),
                                          torch.nn.Conv2d(6, 3, 3, padding=1))

    def forward(self, x):
        return 3 * self.layers(x)


def _smooth_slice(shape, seed=0):
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:shape[0], :shape[1]].astype(np.float32)
    channels = []
    for _ in range(4):
        r, c = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        channels.append(2 * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / 200.0) - 0.5)
    return np.stack(channels).astype(np.float32)


def test_predict_slice_matches_holding_all_projections():
    network, image = _TinyNet().eval(), _smooth_slice((32, 48))
    origins = P.origin_grid(np.ones((32, 48), bool))[::2]  # 12 origins
    radius = 20.0
    mean, raw, norm = predict_slice(network, image, origins, radius, batch_size=5, divisor=16)
    maps = []
    with torch.no_grad():  # same batches: bitwise equal inputs, so bins cannot flip
        for start in range(0, len(origins), 5):
            chunk = origins[start:start + 5]
            projected = P.project(torch.from_numpy(image), chunk, radius)
            maps.append(P.back_project(torch.sigmoid(network(projected)), chunk, radius))
    ref_mean, ref_raw, ref_norm = _reference_stats(torch.cat(maps).numpy())
    assert mean.shape == raw.shape == norm.shape == (3, 32, 48)
    assert mean.dtype == np.float32
    np.testing.assert_allclose(mean, ref_mean, atol=1e-6)
    np.testing.assert_allclose(raw, ref_raw, atol=1e-5)
    np.testing.assert_allclose(norm, ref_norm, atol=1e-5)
    assert raw.max() > 0.5  # the projections do disagree somewhere


def test_predict_slice_with_identity_network_gives_back_the_image():
    # 1x1 conv copying channels 0..2: P2D must be sigmoid(image) up to interpolation.
    network = torch.nn.Conv2d(4, 3, 1, bias=False)
    with torch.no_grad():
        network.weight.zero_()
        for k in range(3):
            network.weight[k, k] = 1.0
    image = _smooth_slice((40, 36), seed=3)
    origins = P.origin_grid(np.ones((40, 36), bool))
    mean, raw, _ = predict_slice(network, image, origins, 18.0, batch_size=7, divisor=8)
    expect = 1 / (1 + np.exp(-image[:3]))
    assert np.abs(mean - expect)[:, 4:-4, 4:-4].max() < 0.01
    assert np.median(raw) < 0.7  # mostly one or two bins among 20 projections


def test_padding_to_the_divisor_does_not_leak():
    # A single conv with zero padding is translation-equivariant and sees zeros beyond
    # the slice either way, so padding to a multiple of 16 and cropping back must give
    # exactly what the unpadded slice gives.
    torch.manual_seed(1)
    network = torch.nn.Conv2d(4, 3, 5, padding=2)
    image = _smooth_slice((37, 45), seed=2)
    origins = P.origin_grid(np.ones((37, 45), bool))[::3]
    padded = predict_slice(network, image, origins, 20.0, batch_size=4, divisor=16)
    plain = predict_slice(network, image, origins, 20.0, batch_size=4, divisor=1)
    assert padded[0].shape == (3, 37, 45)
    np.testing.assert_allclose(padded[0], plain[0], atol=1e-5)


class _NeedsDivisor(torch.nn.Module):
    """Pool by 8 and upsample back: fails unless H and W are multiples of 8."""

    def forward(self, x):
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0, x.shape
        pooled = torch.nn.functional.avg_pool2d(x[:, :3], 8)
        return torch.nn.functional.interpolate(pooled, scale_factor=8)


def test_predict_slice_pads_for_strided_networks():
    image = _smooth_slice((30, 21))
    origins = P.origin_grid(np.ones((30, 21), bool))
    mean, raw, norm = predict_slice(_NeedsDivisor(), image, origins, 15.0, divisor=8)
    assert mean.shape == (3, 30, 21) and np.isfinite(mean).all() and np.isfinite(norm).all()


def test_predict_volume_skips_empty_slices_and_reports_projections():
    shape = (4, 24, 32)
    image = np.stack([np.stack([_smooth_slice(shape[1:], seed=s)[c] for s in range(4)])
                      for c in range(4)])
    mask = np.zeros(shape, bool)
    mask[1] = True
    mask[2, 2:20, 4:30] = True
    mask[3, 1, 5:9] = True  # a sliver between grid rows: one fallback origin
    calls = []
    result = predict_volume(_TinyNet().eval(), image, mask, None, batch_size=8, divisor=4,
                            progress=lambda *args: calls.append(args))
    assert isinstance(result, Projected2D)
    expected = [0, len(P.origin_grid(mask[1])), len(P.origin_grid(mask[2])), 1]
    assert list(result.projections_per_slice) == expected and expected[2] < expected[1]
    for array in (result.p2d, result.entropy_raw, result.entropy_norm):
        assert array.shape == (3,) + shape and array.dtype == np.float32
        assert not array[:, 0].any()
    assert result.p2d[:, 1].min() > 0
    ref = predict_slice(_TinyNet().eval(), image[:, 2], P.origin_grid(mask[2]), 16.0,
                        batch_size=8, divisor=4)
    np.testing.assert_allclose(result.p2d[:, 2], ref[0], atol=1e-6)
    assert not result.entropy_norm[:, 3].any()  # one projection: no spread
    assert [c[:3] for c in calls] == [("uncertainty", z + 1, 4) for z in range(4)]
    preview = predict_volume(_TinyNet().eval(), image, mask, 3, divisor=4)
    assert list(preview.projections_per_slice) == [0, 3, 3, 1]


def test_mean_entropy_is_the_binary_entropy_in_bits():
    p = torch.tensor([0.0, 1.0, 0.5, 0.11, 0.89, 0.25])
    h = mean_entropy(p).numpy()
    # -(p log2 p + (1 - p) log2 (1 - p)): 0 at certainty, 1 at 0.5, 0.4999 at 0.11
    assert h[0] == 0.0 and h[1] == 0.0 and h[2] == pytest.approx(1.0)
    assert h[3] == pytest.approx(0.49992, abs=1e-4) and h[4] == pytest.approx(h[3])
    assert h[5] == pytest.approx(-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))


def test_the_option_names_the_maps_made():
    assert tuple(UNCERTAINTY_MAPS) == OPTIONS["uncertainty_map"].choices
    assert OPTIONS["uncertainty_map"].default in UNCERTAINTY_MAPS


def test_voxel_maps_where_views_agree_on_an_uncertain_value():
    """Views that all say 0.5 share one bin: binned entropy 0, mean entropy 1; views
    split between 0.01 and 0.99 spread over two bins (ln 2 / ln 4 with N = 4) and their
    mean 0.5 has entropy 1."""
    agree, split = torch.full((4, 1, 1, 2), 0.5), torch.full((4, 1, 1, 2), 0.01)
    split[2:] = 0.99
    stats = StreamingStats(1, (1, 2))
    stats.update(torch.cat([agree[..., :1], split[..., 1:]], dim=-1))
    binned = stats.normalized_entropy()
    mean = stats.mean()
    maps = {name: make(mean, binned).flatten().tolist() for name, make in UNCERTAINTY_MAPS.items()}
    assert maps["binned"] == pytest.approx([0.0, 0.5])
    assert maps["mean-entropy"] == pytest.approx([1.0, 1.0])
    assert maps["max"] == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("name", ["mean-entropy", "max"])
def test_predict_volume_makes_the_chosen_map_from_its_own_statistics(name):
    shape = (3, 24, 32)
    image = np.stack([np.stack([_smooth_slice(shape[1:], seed=s)[c] for s in range(3)])
                      for c in range(4)])
    mask = np.ones(shape, bool)
    mask[0] = False
    binned = predict_volume(_TinyNet().eval(), image, mask, 5, divisor=4)
    assert binned.uncertainty is binned.entropy_norm  # the default holds no second map
    chosen = predict_volume(_TinyNet().eval(), image, mask, 5, divisor=4,
                            uncertainty_map=name)
    np.testing.assert_array_equal(chosen.entropy_norm, binned.entropy_norm)
    expected = UNCERTAINTY_MAPS[name](torch.from_numpy(chosen.p2d),
                                      torch.from_numpy(chosen.entropy_norm)).numpy()
    np.testing.assert_allclose(chosen.uncertainty, expected, atol=1e-6)
    assert 0 <= chosen.uncertainty.min() and chosen.uncertainty.max() <= 1
    assert (chosen.uncertainty[:, 1:] > 0).mean() > (binned.entropy_norm[:, 1:] > 0).mean()
    with pytest.raises(ValueError, match="uncertainty_map"):
        predict_volume(_TinyNet().eval(), image, mask, 5, divisor=4, uncertainty_map="x")
