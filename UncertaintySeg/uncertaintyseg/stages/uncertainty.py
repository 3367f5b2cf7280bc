"""Projected 2D inference with streaming statistics (DESIGN 4.2).

Every slice is projected from N origins (``projection``), each projected slice goes
through the 2D network, and the N sigmoid outputs are mapped back. Per pixel and
region: P2D = mean of the N probabilities; U2D = Shannon entropy of the N probabilities
binned into 100 equal bins (bin = min(floor(p * 100), 99)), ``-sum f_t ln f_t`` with
f_t = count_t / N and empty bins skipped, stored raw and divided by ln(min(N, 100))
(0 when N <= 1). Only bin counts and sums are kept while origins stream through the
network, never the N maps themselves.

The voxel uncertainty map (`uncertainty.nii.gz`, the heatmap, the kernel search) is one
of `UNCERTAINTY_MAPS` (`predict --uncertainty-map`), made per slice from those two
statistics as the slice closes, each in [0, 1]: `binned`, the normalised binned entropy
above (the paper's); `mean-entropy`, H(P2D) / ln 2, the binary Shannon entropy of the
mean probability (the predictive entropy, 1 at P2D = 0.5); `max`, the larger of the two;
`error-probability` (the default) is made by the pipeline after the segmentation
(`error_map`) and is mean-entropy here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .. import REGIONS
from .preprocess import pad_to_multiple
from .projection import default_radius
from .views import ProjectionViews

Progress = Callable[[str, int, int, str], None]
LN2 = math.log(2.0)


def mean_entropy(mean: torch.Tensor) -> torch.Tensor:
    """H(p) / ln 2 of probabilities p in [0, 1]: the binary entropy in bits, in [0, 1]
    (torch.special.entr is -x ln x with entr(0) = 0, so p = 0 or 1 gives 0)."""
    p = mean.clamp(0.0, 1.0)
    return ((torch.special.entr(p) + torch.special.entr(1.0 - p)) / LN2).clamp_(0.0, 1.0)


# --uncertainty-map: name -> the normalised map from (mean, normalised binned entropy).
UNCERTAINTY_MAPS = {
    "binned": lambda mean, binned: binned,
    "mean-entropy": lambda mean, binned: mean_entropy(mean),
    "max": lambda mean, binned: torch.maximum(binned, mean_entropy(mean)),
    # Needs the segmentation, made after the slices: the pipeline replaces this
    # mean-entropy map (error_map.FALLBACK_MAP) when the model has the fit.
    "error-probability": lambda mean, binned: mean_entropy(mean),
}


class StreamingStats:
    """Per-pixel running mean and binned entropy of probabilities in [0, 1].

    Holds a (C, H, W, bins) int32 count array and a (C, H, W) float32 sum: for a
    240 x 240 slice and 3 regions, 69 MB whatever the number of projections.
    """

    def __init__(self, n_channels: int, shape_hw: tuple[int, int], bins: int = 100,
                 device: str | torch.device = "cpu"):
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        self.n_channels = int(n_channels)
        self.shape_hw = (int(shape_hw[0]), int(shape_hw[1]))
        self.bins = int(bins)
        self.device = torch.device(device)
        pixels = self.n_channels * self.shape_hw[0] * self.shape_hw[1]
        # Row per (channel, pixel), one column per bin: a scatter along the bins stays
        # within one 400-byte row per pixel; on the CPU that measured 3-7x faster than
        # one scatter_add_ into the flat array (benchmarks/bench_entropy.py), and faster
        # than index_put_ or bincount.
        self._counts = torch.zeros(pixels, self.bins, dtype=torch.int32, device=self.device)
        self._sums = torch.zeros(pixels, dtype=torch.float32, device=self.device)
        self._one = torch.ones(1, 1, dtype=torch.int32, device=self.device)
        self.count = 0

    def update(self, probs: torch.Tensor) -> None:
        """Add a batch of probability maps, (B, C, H, W) floats in [0, 1]."""
        expected = (self.n_channels,) + self.shape_hw
        if probs.ndim != 4 or tuple(probs.shape[1:]) != expected:
            raise ValueError(f"StreamingStats expects (B,) + {expected} probabilities, "
                             f"got {tuple(probs.shape)}")
        batch = probs.shape[0]
        if batch == 0:
            return
        probs = probs.to(device=self.device, dtype=torch.float32)
        self._sums += probs.sum(dim=0).reshape(-1)
        # floor(p * bins) for p in [0, 1]; p = 1 joins the last bin. The clamp at 0 also
        # keeps rounding below 0 (and NaN, whose integer cast is undefined) in range.
        bins = (probs * self.bins).to(torch.int64).clamp_(0, self.bins - 1)
        index = bins.reshape(batch, -1).t()
        self._counts.scatter_add_(1, index, self._one.expand(index.shape[0], batch))
        self.count += batch

    def _check_count(self) -> None:
        if self.count == 0:
            raise RuntimeError("StreamingStats has no probabilities yet: call update() first")

    def mean(self) -> torch.Tensor:
        """Mean probability, (C, H, W) float32."""
        self._check_count()
        return (self._sums / self.count).reshape((self.n_channels,) + self.shape_hw)

    def entropy(self) -> torch.Tensor:
        """Raw Shannon entropy of the bin frequencies in nats, (C, H, W) float32."""
        self._check_count()
        # A pixel whose N probabilities share one bin has entropy 0 (1 ln 1): most of a
        # slice (background, brain far from the tumour). The logarithms are taken only
        # where the probabilities spread: they were 9 % of the 2D stage's CPU time.
        spread = torch.nonzero(self._counts.amax(dim=1) < self.count).squeeze(1)
        raw = torch.zeros(self._counts.shape[0], dtype=torch.float32, device=self.device)
        freq = self._counts.index_select(0, spread).to(torch.float32) / self.count
        # xlogy(0, 0) = 0: empty bins add nothing, as in -sum over non-empty bins.
        raw.index_copy_(0, spread, -torch.special.xlogy(freq, freq).sum(dim=1))
        return raw.clamp_min(0.0).reshape((self.n_channels,) + self.shape_hw)

    def normalized_entropy(self, raw: torch.Tensor | None = None) -> torch.Tensor:
        """Entropy divided by ln(min(N, bins)), its largest possible value: in [0, 1].

        0 everywhere when N <= 1 (a single prediction has no spread). Pass the result
        of `entropy()` as `raw` when you have it: the entropy is the costly part.
        """
        raw = self.entropy() if raw is None else raw
        ceiling = min(self.count, self.bins)
        if ceiling <= 1:
            return torch.zeros_like(raw)
        return (raw / math.log(ceiling)).clamp_(0.0, 1.0)


@dataclass
class Projected2D:
    """Result of ``predict_volume``: (3, Z, Y, X) float32 maps, regions ET, TC, WT.

    `uncertainty` is the run's voxel map in [0, 1] (`UNCERTAINTY_MAPS`); None means the
    method's own normalised entropy_norm (the same array, no copy)."""

    p2d: np.ndarray
    entropy_raw: np.ndarray
    entropy_norm: np.ndarray
    projections_per_slice: np.ndarray  # (Z,) int, 0 for skipped slices
    uncertainty: np.ndarray | None = None

    def __post_init__(self):
        if self.uncertainty is None:
            self.uncertainty = self.entropy_norm


def _network_probs(network: torch.nn.Module, batch: torch.Tensor, divisor: int,
                   autocast_dtype: torch.dtype | None) -> torch.Tensor:
    """Sigmoid of the network's logits for (B, C, H, W), padded and cropped back."""
    padded, crop = pad_to_multiple(batch, max(int(divisor), 1))
    with torch.autocast(device_type=batch.device.type, dtype=autocast_dtype,
                        enabled=autocast_dtype is not None):
        logits = network(padded)
    logits = logits[(..., *crop[-2:])]  # crop H, W only: the output has 3 channels, not C
    return torch.sigmoid(logits.float())


def predict_slice(network: torch.nn.Module, slice_chw, origins, radius: float,
                  *, batch_size: int = 16, divisor: int = 16,
                  device: str | torch.device = "cpu",
                  autocast_dtype: torch.dtype | None = None, views=None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Projected inference on one slice (or any other family of test-time views).

    Args:
        network: maps (B, C, H', W') to region logits (B, R, H', W'), already on
            ``device`` and in the mode the caller wants (eval, or train for MC dropout).
        slice_chw: (C, H, W) normalised image, numpy or tensor.
        origins: (N, 2) projection origins (row, col) in px, N >= 1.
        radius: sphere radius R in px.
        batch_size: origins per network call.
        divisor: H and W are zero-padded to a multiple of this (the network's total
            stride) and the output cropped back.
        autocast_dtype: e.g. torch.bfloat16 (CPU) or torch.float16 (CUDA); None = fp32.
        views: a `views` family; None = spherical projections of radius `radius`, and
            then `origins` are its parameters (for other families, their `params`).
    Returns:
        (mean, entropy_raw, entropy_norm), each (R, H, W) float32 numpy.
    """
    views = views or ProjectionViews(radius)
    origins = np.asarray(origins, dtype=np.float32).reshape(-1, 2)
    if len(origins) == 0:
        raise ValueError("predict_slice needs at least one projection origin")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    with torch.inference_mode():
        image = torch.as_tensor(slice_chw, dtype=torch.float32).to(device)
        origins_t = torch.from_numpy(origins).to(device)
        stats = None
        for start in range(0, len(origins), batch_size):
            chunk = origins_t[start:start + batch_size]
            probs = _network_probs(network, views.forward(image, chunk), divisor,
                                   autocast_dtype)
            if stats is None:
                stats = StreamingStats(probs.shape[1], image.shape[-2:], device=device)
            stats.update(views.back(probs, chunk))
        raw = stats.entropy()
        return tuple(t.cpu().numpy().astype(np.float32, copy=False)
                     for t in (stats.mean(), raw, stats.normalized_entropy(raw)))


def predict_volume(network: torch.nn.Module, image: np.ndarray, mask: np.ndarray,
                   projections: int | str | None, *, radius: float | None = None,
                   batch_size: int = 16, divisor: int = 16,
                   device: str | torch.device = "cpu",
                   autocast_dtype: torch.dtype | None = None,
                   progress: Progress | None = None, stride: int = 8,
                   views=None, uncertainty_map: str = "binned") -> Projected2D:
    """Projected 2D inference slice by slice along axis 0 (Z), batched across slices.

    The views of consecutive slices fill each batch of `batch_size` (one warp call, one
    network call, one warp back), so a batch larger than one slice's origin count keeps
    a GPU busy; each slice's statistics are its own, so the result is that of
    ``predict_slice`` on every slice (up to float rounding of the batched network).

    Args:
        image: (C, Z, Y, X) normalised float32.
        mask: (Z, Y, X) bool brain mask; origins are chosen inside it per slice, and
            slices without brain are skipped (P2D 0, entropy 0, 0 projections, no
            network call).
        projections: origins per slice, a number, a preset name or None (all).
        radius: sphere radius in px; None = ``default_radius((Y, X))``.
        batch_size: views per network call, taken across slices.
        progress: called as progress("uncertainty", done, total, message) per slice.
        stride: spacing of the origin grid in px (design 4.1: 8).
        views: a `views` family (None: spherical projections of radius `radius`); its
            `params` choose each slice's views, counted in `projections_per_slice`.
        uncertainty_map: the result's `uncertainty`, a name of `UNCERTAINTY_MAPS`
            (made per slice; a fourth map only when it is not `binned`).
    Other arguments as in ``predict_slice``.
    """
    image = np.asarray(image)
    mask = np.asarray(mask, dtype=bool)
    if image.ndim != 4 or image.shape[1:] != mask.shape:
        raise ValueError(f"predict_volume needs image (C, Z, Y, X) and mask (Z, Y, X) on "
                         f"one grid, got {image.shape} and {mask.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    radius = default_radius(mask.shape[1:]) if radius is None else float(radius)
    views = views or ProjectionViews(radius)
    params = [np.asarray(views.params(mask[z], projections, stride), np.float32).reshape(-1, 2)
              for z in range(mask.shape[0])]
    if uncertainty_map not in UNCERTAINTY_MAPS:
        raise ValueError(f"uncertainty_map {uncertainty_map!r}: use one of "
                         f"{', '.join(UNCERTAINTY_MAPS)}")
    maps = [np.zeros((len(REGIONS),) + mask.shape, dtype=np.float32)
            for _ in range(3 if uncertainty_map == "binned" else 4)]
    run = _SliceRun(maps, [len(p) for p in params], progress, UNCERTAINTY_MAPS[uncertainty_map])
    device = torch.device(device)
    with torch.inference_mode():
        # The volume goes to the device once (a BraTS crop is about 50 MB in float32);
        # each batch then gathers its slices there, without a copy from the host.
        volume = torch.as_tensor(np.asarray(image, np.float32)).to(device)
        for pieces in _batches([len(p) for p in params], batch_size):
            slices = torch.from_numpy(np.concatenate(
                [np.full(b - a, z) for z, a, b in pieces])).to(device)
            chunk = torch.from_numpy(np.concatenate(
                [params[z][a:b] for z, a, b in pieces])).to(device)
            images = volume.index_select(1, slices).transpose(0, 1).contiguous()
            probs = _network_probs(network, views.forward_each(images, chunk), divisor,
                                   autocast_dtype)
            run.add(pieces, views.back(probs, chunk), device)
        run.finish_empty()
    return Projected2D(p2d=maps[0], entropy_raw=maps[1], entropy_norm=maps[2],
                       projections_per_slice=np.asarray(run.counts, dtype=np.int64),
                       uncertainty=maps[3] if len(maps) > 3 else None)


def _batches(counts: list[int], batch_size: int):
    """Batches of `batch_size` views over consecutive slices: lists of (z, start, stop),
    views start..stop of slice z; the last batch may be smaller."""
    pieces, filled = [], 0
    for z, count in enumerate(counts):
        start = 0
        while start < count:
            stop = min(count, start + batch_size - filled)
            pieces.append((z, start, stop))
            filled += stop - start
            start = stop
            if filled == batch_size:
                yield pieces
                pieces, filled = [], 0
    if pieces:
        yield pieces


class _SliceRun:
    """The open slices' StreamingStats of `predict_volume`; a slice whose views are all
    in is written to `maps` (mean, raw and normalised entropy, and the voxel map of
    `voxel_map` when there are four) and closed; progress is reported in slice order."""

    def __init__(self, maps, counts: list[int], progress: Progress | None, voxel_map=None):
        self.maps, self.counts, self.progress = maps, counts, progress
        self.voxel_map = voxel_map
        self.stats: dict[int, StreamingStats] = {}
        self.reported = 0

    def add(self, pieces, back: torch.Tensor, device) -> None:
        offset = 0
        for z, start, stop in pieces:
            if z not in self.stats:
                self.stats[z] = StreamingStats(back.shape[1], back.shape[-2:], device=device)
            self.stats[z].update(back[offset:offset + stop - start])
            offset += stop - start
            if stop == self.counts[z]:
                self._close(z)

    def _close(self, z: int) -> None:
        stats = self.stats.pop(z)
        raw = stats.entropy()
        mean, binned = stats.mean(), stats.normalized_entropy(raw)
        results = (mean, raw, binned)
        if len(self.maps) > 3:
            results += (self.voxel_map(mean, binned),)
        for target, result in zip(self.maps, results):
            target[:, z] = result.cpu().numpy()
        self._report(z + 1)

    def finish_empty(self) -> None:
        """Report the slices without brain after the last slice with views."""
        self._report(len(self.counts))

    def _report(self, upto: int) -> None:
        # Slices before `upto` without views are done too: they have nothing to wait for.
        while self.reported < upto:
            z = self.reported
            self.reported += 1
            if self.progress is not None:
                self.progress("uncertainty", z + 1, len(self.counts),
                              f"slice {z + 1}/{len(self.counts)}: {self.counts[z]} projections")
