"""Families of test-time views of a slice, for the 2D estimators (design 5).

A view family turns one (C, H, W) slice into N views for the 2D network and brings the
N outputs back to the slice's own geometry, so that `uncertainty.StreamingStats` can take
their mean and binned entropy whatever made the spread:

- `ProjectionViews("spherical")`: the paper's spherical projections about N origins;
- `ProjectionViews("linear")`: the linear-scaling baseline (LSU-Net) about the same
  origins, with the same magnification at each origin;
- `FlipViews`: nnU-Net's 2D mirroring test-time augmentation, every combination of
  flips along H and W (4 views), whatever the projection count asked for;
- `IdentityViews`: the unchanged slice N times, for a stochastic network (MC dropout).

`params(mask_hw, projections, stride)` chooses the views of one slice as a float32
(N, 2) array (origins as (row, col), or view codes): the network sees them in batches.
`forward(slice_chw, params)` makes the N views of one slice; `forward_each(images,
params)` view n of image n, so that one batch can hold views of several slices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .projection import back_project, project, project_each, resolve_count, select_origins

# (flip H, flip W) per view code: nnU-Net's 2D mirror axes (0, 1), every combination.
FLIPS = ((False, False), (False, True), (True, False), (True, True))


@dataclass(frozen=True)
class ProjectionViews:
    """Projections about origins in the brain; `profile` "spherical" or "linear"."""

    radius: float
    profile: str = "spherical"

    def params(self, mask_hw: np.ndarray, projections, stride: int = 8) -> np.ndarray:
        return select_origins(mask_hw, projections, stride)

    def forward(self, slice_chw: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return project(slice_chw, params, self.radius, self.profile)

    def forward_each(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return project_each(images, params, self.radius, self.profile)

    def back(self, maps: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return back_project(maps, params, self.radius, self.profile)


def _views_of(mask_hw: np.ndarray, count: int) -> np.ndarray:
    """`count` view codes for a slice with brain, none for a slice without."""
    codes = np.arange(count if np.asarray(mask_hw).any() else 0, dtype=np.float32)
    return np.stack([codes, codes], axis=1)


def _flip(images: torch.Tensor, code: int) -> torch.Tensor:
    dims = [axis for axis, flip in zip((-2, -1), FLIPS[code]) if flip]
    return torch.flip(images, dims) if dims else images


@dataclass(frozen=True)
class FlipViews:
    """The four flip combinations of a slice (their own inverses)."""

    def params(self, mask_hw: np.ndarray, projections=None, stride: int = 8) -> np.ndarray:
        return _views_of(mask_hw, len(FLIPS))

    def forward(self, slice_chw: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return torch.stack([_flip(slice_chw, int(code)) for code in params[:, 0]])

    def forward_each(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return self.back(images, params)  # each flip is its own inverse

    def back(self, maps: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return torch.stack([_flip(m, int(code)) for m, code in zip(maps, params[:, 0])])


@dataclass(frozen=True)
class IdentityViews:
    """The slice itself N times (N from the projection count, 16 for preview, as
    the MC-dropout study's pass count); the spread comes from the network."""

    default_count: int = 16

    def params(self, mask_hw: np.ndarray, projections, stride: int = 8) -> np.ndarray:
        return _views_of(mask_hw, resolve_count(projections) or self.default_count)

    def forward(self, slice_chw: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return slice_chw.unsqueeze(0).expand(len(params), -1, -1, -1)

    def forward_each(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return images

    def back(self, maps: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return maps
