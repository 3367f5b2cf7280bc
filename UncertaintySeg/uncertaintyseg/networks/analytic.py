"""The untrained analytic networks of the demo model (`models.analytic_model`).

Logits are fixed smooth functions of the normalised channels; no weights are learned.
They exist so that the demo and the tests can run the pipeline before any training.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _gaussian_kernel(sigma: float, dims: int) -> torch.Tensor:
    """Separable-free dense gaussian kernel of side 2*ceil(2 sigma)+1, sums to 1."""
    half = int(math.ceil(2 * sigma))
    x = torch.arange(-half, half + 1, dtype=torch.float32)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    g = g / g.sum()
    kernel = g
    for _ in range(dims - 1):
        kernel = kernel[..., None] * g
    return kernel


class _AnalyticNetwork(nn.Module):
    """Untrained region 'network': logits are smooth functions of the normalised channels.

    Channels (FLAIR, T1, T1ce, T2) are blurred with a fixed gaussian (depthwise conv),
    then, in z-score units: WT from FLAIR/T2 brightness, ET from T1ce brightness, TC
    from ET or a T1ce-dark, T2-bright core inside the whole tumour. No weights are
    learned; it exists so the demo and tests can run the pipeline before training.
    """

    dims = 2
    gain = 3.0

    def __init__(self, sigma: float = 1.0):
        super().__init__()
        kernel = _gaussian_kernel(sigma, self.dims)
        weight = kernel[None, None].repeat(4, *([1] * (self.dims + 1)))
        self.register_buffer("blur_weight", weight, persistent=False)
        self.padding = kernel.shape[0] // 2
        self.conv = nn.functional.conv2d if self.dims == 2 else nn.functional.conv3d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.conv(x, self.blur_weight, padding=self.padding, groups=4)
        flair, t1ce, t2 = s[:, 0], s[:, 2], s[:, 3]
        wt = self.gain * (0.5 * (flair + t2) - 1.0)
        et = self.gain * (t1ce - 1.5)
        # necrotic core: dark on T1ce, bright on T2; TC = ET or (core and inside WT)
        core = self.gain * (0.5 * t2 - 0.5 * t1ce - 0.75)
        core_in_wt = -torch.logaddexp(-core, -wt)  # smooth minimum
        tc = torch.logaddexp(et, core_in_wt)  # smooth maximum
        return torch.stack([et, tc, wt], dim=1)


class AnalyticNetwork2D(_AnalyticNetwork):
    """(B, 4, H, W) normalised -> (B, 3, H, W) logits (ET, TC, WT); untrained."""

    dims = 2


class AnalyticNetwork3D(_AnalyticNetwork):
    """(B, 4, D, H, W) normalised -> (B, 3, D, H, W) logits (ET, TC, WT); untrained."""

    dims = 3
