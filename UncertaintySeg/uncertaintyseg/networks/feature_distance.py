"""How far a case lies from the training data in the 2D network's own feature space
(issue 17, a case-quality signal).

The 2D network's bottleneck (the output of the deepest stage of nnU-Net's
PlainConvEncoder, read by a forward hook) is computed on a fixed sample of SLICES
axial slices of the working grid, at the canonical view (no projection), and averaged
over H, W to one vector per slice. The training cases' vectors give a mean and a
covariance, shrunk by Ledoit-Wolf (sklearn): 128 channels against 23 cases x SLICES
strongly correlated slices would give a singular sample covariance, and unlike PCA +
diagonal the shrunk covariance keeps every direction, so a shift along a direction the
training data hardly vary in (a swapped channel) still counts. A case's score is the
median over its slices of the Mahalanobis distance, divided by `reference`, the median
leave-one-case-out score of the training cases: 1 is as far as a training case lies
from the others. The fit is a small .npz beside model.json, named in its
`feature_distance` entry (tools/fit_feature_distance.py writes both).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError

FIT_KEY = "feature_distance"        # model.json entry (and report.json's signal name)
FIT_FILE = "feature_distance.npz"
SLICES = 8                          # slices sampled per case
SLICE_QUANTILES = (0.2, 0.8)        # of the brain voxels' slice index: the sample's span
LAYER = "encoder.stages[-1]"        # said in model.json: which output the fit is of


def sample_slices(mask: np.ndarray, count: int = SLICES) -> np.ndarray:
    """`count` slice indices of a (z, y, x) brain mask, evenly spaced between the
    SLICE_QUANTILES of its voxels along z (the middle of the brain, where tumours and
    most of the training slices are; the thin top and bottom are left out)."""
    per_slice = mask.reshape(mask.shape[0], -1).sum(axis=1)
    if per_slice.sum() == 0:
        raise ValueError("no brain voxel to sample slices from")
    cumulative = np.cumsum(per_slice) / per_slice.sum()
    targets = np.linspace(*SLICE_QUANTILES, count)
    return np.searchsorted(cumulative, targets).clip(0, mask.shape[0] - 1)


def bottleneck_stage(network: torch.nn.Module) -> torch.nn.Module:
    """The deepest encoder stage of a (RegionNetwork-wrapped) PlainConvUNet."""
    inner = getattr(network, "network", network)
    stages = getattr(getattr(inner, "encoder", None), "stages", None)
    if stages is None:
        raise ValueError(f"{type(inner).__name__} has no encoder stages: the feature "
                         "distance needs an nnU-Net PlainConvUNet")
    return stages[-1]


def slice_features(network: torch.nn.Module, image: np.ndarray, slices,
                   divisor: int) -> np.ndarray:
    """(len(slices), C) float64: the bottleneck of `network` (torch, eval mode) on the
    given slices of a normalised (4, z, y, x) image, averaged over H, W. Only the
    encoder runs (the hooked stage is its last; the decoder would double the cost)."""
    from ..stages.preprocess import pad_to_multiple

    captured = []
    hook = bottleneck_stage(network).register_forward_hook(
        lambda module, inputs, output: captured.append(output.mean(dim=(-2, -1))))
    device = next(network.parameters()).device
    batch = torch.from_numpy(np.ascontiguousarray(image[:, slices].transpose(1, 0, 2, 3)))
    padded, _ = pad_to_multiple(batch.to(device), max(int(divisor), 1))
    try:
        with torch.inference_mode():
            getattr(network, "network", network).encoder(padded.float())
    finally:
        hook.remove()
    return captured[0].double().cpu().numpy()


def grid_features(model, grid) -> np.ndarray:
    """The bottleneck vectors of a working grid's sampled slices (torch network,
    whatever backend the run uses for the views)."""
    from .inference_backend import torch_module

    return slice_features(torch_module(model.network_2d), grid.image,
                          sample_slices(grid.mask), model.divisor_2d)


def case_features(model, case) -> np.ndarray:
    """`grid_features` of a loaded case (io.Case): canonical orientation and the
    model's nnU-Net preprocessing, as predict does."""
    from ..stages.orientation import to_canonical
    from .working_grid import from_nnunet

    canonical, _ = to_canonical(case)
    return grid_features(model, from_nnunet(model, canonical.image, canonical.spacing))


@dataclass
class FeatureFit:
    """Mean (C,) and precision (C, C) of the training slices' vectors; `reference`
    the raw score that maps to 1; `shrinkage` Ledoit-Wolf's (not stored)."""

    location: np.ndarray
    precision: np.ndarray
    reference: float = 1.0
    shrinkage: float | None = None

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of (n, C) `features`."""
        centred = np.asarray(features, dtype=np.float64) - self.location
        squared = np.einsum("ij,jk,ik->i", centred, self.precision, centred)
        return np.sqrt(np.maximum(squared, 0.0))

    def score(self, features: np.ndarray) -> float:
        """The case score: median slice distance over `reference`."""
        return float(np.median(self.distances(features)) / self.reference)


def fit_features(features: np.ndarray) -> FeatureFit:
    """Ledoit-Wolf mean and precision of (n, C) slice vectors (reference 1)."""
    from sklearn.covariance import LedoitWolf

    estimate = LedoitWolf().fit(np.asarray(features, dtype=np.float64))
    return FeatureFit(estimate.location_, estimate.precision_,
                      shrinkage=float(estimate.shrinkage_))


def fit_cases(by_case: dict[str, np.ndarray]) -> tuple[FeatureFit, dict[str, float]]:
    """(fit on every case's slices, {case: its leave-one-case-out raw score}); the
    fit's reference is the median of those scores."""
    held_out = {}
    for case in by_case:
        others = np.concatenate([f for c, f in by_case.items() if c != case])
        held_out[case] = fit_features(others).score(by_case[case])
    fit = fit_features(np.concatenate(list(by_case.values())))
    fit.reference = float(np.median(list(held_out.values())))
    return fit, held_out


def save_fit(fit: FeatureFit, path: Path) -> int:
    """Write the fit (float32) atomically; returns its size in bytes."""
    from uncertaintyseg_shared.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        np.savez_compressed(stream, location=fit.location.astype(np.float32),
                            precision=fit.precision.astype(np.float32),
                            reference=np.float64(fit.reference))
    return Path(path).stat().st_size


def load_fit(folder: Path, entry: dict) -> FeatureFit | None:
    """The fit a model.json `feature_distance` entry names in `folder`; None when the
    model has no entry (an older model: the signal is then 'not available')."""
    if not entry or folder is None:
        return None
    path = Path(folder) / str(entry.get("file", FIT_FILE))
    try:
        with np.load(path) as data:
            return FeatureFit(data["location"].astype(np.float64),
                              data["precision"].astype(np.float64), float(data["reference"]))
    except (OSError, KeyError, ValueError) as err:
        raise InputError(f"{path} (named in {Path(folder) / 'model.json'} "
                         f"{FIT_KEY}) is missing or unreadable ({type(err).__name__}); run "
                         "tools/fit_feature_distance.py on the model or restore the "
                         "folder.") from None


def for_run(model, grid) -> float | None:
    """The case score of a run's working grid, rounded; None when the model has no fit
    (the analytic model, a model trained before the fit existed)."""
    fit = load_fit(getattr(model, "folder", None), getattr(model, "feature_distance", {}))
    if fit is None or model.plans is None:
        return None
    return round(fit.score(grid_features(model, grid)), 4)
