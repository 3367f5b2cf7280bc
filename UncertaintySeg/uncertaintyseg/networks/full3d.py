"""The 3D-only baseline's inference (`predict --method full-3d`): nnU-Net's way.

Sliding window over the whole working grid with nnU-Net's own helpers
(`compute_steps_for_sliding_window`, tile step 0.5 unless `--tile-step` says otherwise,
as nnU-Net's `step_size`; `compute_gaussian`, sigma 1/8 of
the patch, value scaling 10) and its mirroring test-time augmentation: every tile is
predicted on all 8 flip combinations of its three axes (nnU-Net's
`_internal_maybe_mirror_and_predict` with mirror axes (0, 1, 2)).

- Probabilities: as nnU-Net, the mean of the 8 mirrored logits, Gaussian-weighted over
  the overlapping tiles, then the sigmoid (region-based training).
- Uncertainty: per tile and voxel, the variance of the 8 mirrored sigmoid probabilities
  (population variance), Gaussian-weighted over the tiles like the logits. The variance
  of values in [0, 1] is at most 1/4 (half of them 0, half 1), so the normalised
  uncertainty is 4 x variance, in [0, 1]; the raw map is the variance itself.
"""

from __future__ import annotations

import itertools
from typing import Callable

import numpy as np
import torch

from ..options import OPTIONS
from ..stages.uncertainty import Projected2D

TILE_STEP = OPTIONS["tile_step"].default  # nnU-Net's step_size, 0.5
MIRROR_AXES = (0, 1, 2)
MAX_VARIANCE = 0.25  # the largest variance of values in [0, 1]


def mirror_combinations(axes=MIRROR_AXES) -> list[tuple[int, ...]]:
    """The identity and every non-empty combination of `axes` (8 for three axes)."""
    return [()] + [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]


def mirrored_logits(network: torch.nn.Module, tile: torch.Tensor, batch_size: int,
                    autocast_dtype) -> torch.Tensor:
    """(M, R, *patch) float32 logits of the M mirrorings of `tile` (1, C, *patch), each
    flipped back to the tile's own orientation."""
    flips = [tuple(a + 2 for a in axes) for axes in mirror_combinations()]
    outputs = []
    for start in range(0, len(flips), max(int(batch_size), 1)):
        chunk = flips[start:start + batch_size]
        batch = torch.cat([torch.flip(tile, f) if f else tile for f in chunk])
        with torch.autocast(device_type=tile.device.type, dtype=autocast_dtype,
                            enabled=autocast_dtype is not None):
            logits = network(batch).float()
        outputs += [torch.flip(y[None], f)[0] if f else y for y, f in zip(logits, chunk)]
    return torch.stack(outputs)


def predict_full_3d(network: torch.nn.Module, image: np.ndarray, patch_size, *,
                    batch_size: int = 2, device: str | torch.device = "cpu", autocast_dtype=None,
                    progress: Callable | None = None, tile_step: float = TILE_STEP) -> Projected2D:
    """Sliding-window, mirrored inference of a 3D network on (C, Z, Y, X) `image`;
    `tile_step`: the step between tiles as a fraction of the patch (0 < step <= 1).

    Returns the probabilities in `p2d`, the mirror variance in `entropy_raw`, 4 x that
    in `entropy_norm` and 8 (the mirrorings) per slice in `projections_per_slice`.
    """
    from acvl_utils.cropping_and_padding.padding import pad_nd_image
    from nnunetv2.inference.sliding_window_prediction import (
        compute_gaussian, compute_steps_for_sliding_window)

    device, patch = torch.device(device), tuple(int(p) for p in patch_size)
    data = torch.as_tensor(np.asarray(image, dtype=np.float32))
    data, revert = pad_nd_image(data, patch, "constant", {"value": 0}, True, None)
    steps = compute_steps_for_sliding_window(tuple(data.shape[1:]), patch, tile_step)
    gaussian = compute_gaussian(patch, sigma_scale=1 / 8, value_scaling_factor=10,
                                dtype=torch.float32, device=device)
    corners = list(itertools.product(*steps))
    logit_sum = variance_sum = weight = None
    with torch.inference_mode():
        for done, corner in enumerate(corners):
            box = tuple(slice(c, c + p) for c, p in zip(corner, patch))
            tile = data[(slice(None), *box)][None].to(device)
            logits = mirrored_logits(network, tile, batch_size, autocast_dtype)
            if logit_sum is None:
                shape = (logits.shape[1], *data.shape[1:])
                logit_sum, variance_sum = torch.zeros(shape), torch.zeros(shape)
                weight = torch.zeros(data.shape[1:])
            logit_sum[(slice(None), *box)] += (logits.mean(0) * gaussian).cpu()
            variance = torch.sigmoid(logits).var(dim=0, unbiased=False)
            variance_sum[(slice(None), *box)] += (variance * gaussian).cpu()
            weight[box] += gaussian.cpu()
            if progress is not None:
                progress("uncertainty", done + 1, len(corners),
                         f"tile {done + 1}/{len(corners)}: 8 mirrorings")
    keep = (slice(None), *revert[1:])
    probabilities = torch.sigmoid(logit_sum / weight)[keep].numpy()
    variance = (variance_sum / weight)[keep].clamp_min(0).numpy()
    return Projected2D(p2d=probabilities.astype(np.float32),
                       entropy_raw=variance.astype(np.float32),
                       entropy_norm=np.clip(variance / MAX_VARIANCE, 0, 1).astype(np.float32),
                       projections_per_slice=np.full(probabilities.shape[1],
                                                     len(mirror_combinations())))
