"""The uncertainty estimators behind `predict --method` (design 5), one interface.

Every method yields the same things for `pipeline.run_case` (`estimate`): its own
probabilities and normalised uncertainty on the working grid, boxes from the same kernel
search on that uncertainty, and fused probabilities; so the output contract and
`evaluate` need no special cases. Only `hybrid` refines its boxes with the 3D network and
fuses; the 2D methods report P3D as -1 everywhere (no cube refined) and their P2D as
the result; `full-3d` has no 2D part (P2D -1 everywhere, docs/OUTPUT-CONTRACT.md).

| method | network | views / passes | uncertainty |
|---|---|---|---|
| hybrid | 2D, then 3D cubes | spherical projections (the paper) | binned entropy |
| projection-2d | 2D | spherical projections | binned entropy |
| lsu-2d | 2D | linear scaling about the same origins (LSU-Net) | binned entropy |
| tta-2d | 2D | nnU-Net's four 2D flips | binned entropy |
| mc-dropout | 2D with dropout (`2d_dropout`) | N passes of the slice, dropout on | binned entropy |
| uncertainty-head | 2D + head channel (`2d_head`) | one pass | the head's sigmoid |
| full-3d | whole-crop 3D (`3d_full`) | sliding window x 8 mirrorings | 4 x mirror variance |

The method names are defined in `options.METHODS` (the Slicer module reads them there).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from .. import REGIONS
from ..errors import InputError
from ..options import METHODS, TRAINED_NETWORKS
from ..stages.preprocess import pad_to_multiple
from ..stages.uncertainty import Projected2D, predict_volume
from ..stages.views import FlipViews, IdentityViews, ProjectionViews

MC_DROPOUT_SEED = 0  # the dropout masks of `mc-dropout`: the same result every run


@dataclass(frozen=True)
class Method:
    """How one estimator makes its views, which network it uses, whether it refines."""

    name: str
    refines: bool = False
    network: str | None = None  # models.EXTRA_NETWORKS name; None: the model's 2D network
    dims: int = 2  # 3: the probabilities are a 3D network's (no 2D part)

    def views(self, radius: float):
        """The view family of this method for a sphere (or scaling) radius in px."""
        if self.name == "tta-2d":
            return FlipViews()
        if self.name == "mc-dropout":
            return IdentityViews()
        return ProjectionViews(radius, "linear" if self.name == "lsu-2d" else "spherical")


ESTIMATORS = {name: Method(name, refines=name == "hybrid",
                           network=TRAINED_NETWORKS.get(name),
                           dims=3 if name == "full-3d" else 2) for name in METHODS}


def check_network(method: Method, model) -> None:
    """InputError naming the model and the `train` option when the method needs a
    network the model lacks (checked before any work; nothing is loaded)."""
    if method.network is not None and not model.has_network(method.network):
        raise InputError(
            f"--method {method.name}: model '{model.name}' has no {method.network} network "
            f"(the {method.name} estimator's). Re-run the `uncertaintyseg train` command that "
            f"made it with `--estimators {method.name}` (the same --work resumes and trains "
            f"only what is missing), or choose another --method.")


def estimator_network(method: Method, model, device):
    """The method's own network from the model (models.ExtraNetwork)."""
    check_network(method, model)
    return model.extra_network(method.network, device)


@contextmanager
def dropout_active(network: torch.nn.Module):
    """The network in eval mode except its dropout modules (MC dropout: norms stay in
    inference mode), with a fixed seed for the masks; restored afterwards."""
    dropouts = [m for m in network.modules()
                if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    if not dropouts:
        raise InputError("--method mc-dropout: the model's 2d_dropout network has no dropout "
                         "layers (its plans.json lacks dropout_op); retrain it with `train`")
    was_training = network.training
    network.eval()
    for module in dropouts:
        module.train()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(MC_DROPOUT_SEED)
            yield network
    finally:
        network.train(was_training)


def head_volume(network: torch.nn.Module, image: np.ndarray, mask: np.ndarray,
                divisor: int, *, batch_size: int = 16, device="cpu", autocast_dtype=None,
                progress=None) -> Projected2D:
    """One pass of the uncertainty-head network per slice with brain (axis 0).

    p2d: sigmoid of the region channels; uncertainty (raw and normalised): the head
    channel's sigmoid, clipped to [0, 1], the same map for ET, TC and WT (the head
    predicts one error map, the paper's WT one). Slices without brain: 0, 0 passes.
    """
    n = len(REGIONS)
    p2d = np.zeros((n,) + mask.shape, dtype=np.float32)
    head = np.zeros(mask.shape, dtype=np.float32)
    slices = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    with torch.inference_mode():
        for start in range(0, len(slices), batch_size):
            chosen = slices[start:start + batch_size]
            batch = torch.from_numpy(np.ascontiguousarray(image[:, chosen].transpose(1, 0, 2, 3)))
            padded, crop = pad_to_multiple(batch.to(device), max(int(divisor), 1))
            with torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype,
                                enabled=autocast_dtype is not None):
                logits = network(padded)
            probs = torch.sigmoid(logits[(..., *crop[-2:])].float()).cpu().numpy()
            p2d[:, chosen] = probs[:, :n].transpose(1, 0, 2, 3)
            head[chosen] = np.clip(probs[:, n], 0.0, 1.0)
            if progress is not None:
                progress("uncertainty", min(start + batch_size, len(slices)), len(slices),
                         "uncertainty head")
    used = np.zeros(mask.shape[0], dtype=np.int64)
    used[slices] = 1
    uncertainty = np.repeat(head[None], n, axis=0)
    return Projected2D(p2d=p2d, entropy_raw=uncertainty, entropy_norm=uncertainty.copy(),
                       projections_per_slice=used)


def estimate(method: Method, model, grid, settings, resolved, *, radius: float,
             progress=None) -> Projected2D:
    """The method's probabilities and uncertainty on the working grid `grid`.

    `settings` is the run's `pipeline.Settings` (batch size 3D, stride, map) and
    `resolved` its `devices.Resolved` (device, precision, projections, batch size 2D). For
    `full-3d` the result's p2d holds the 3D network's probabilities (Method.dims == 3).
    """
    device, autocast = resolved.device, resolved.autocast
    if method.name == "full-3d":
        from .full3d import predict_full_3d

        net = estimator_network(method, model, device)
        return predict_full_3d(net.network, grid.image, net.patch_size,
                               batch_size=settings.batch_size_3d, device=device,
                               autocast_dtype=autocast, progress=progress,
                               tile_step=settings.tile_step)
    if method.name == "uncertainty-head":
        net = estimator_network(method, model, device)
        return head_volume(net.network, grid.image, grid.mask, net.divisor,
                           batch_size=resolved.batch_size_2d, device=device,
                           autocast_dtype=autocast, progress=progress)
    network, divisor = model.network_2d, model.divisor_2d
    if method.network is not None:
        net = estimator_network(method, model, device)
        network, divisor = net.network, net.divisor
    args = (grid.image, grid.mask, resolved.projections_per_slice)
    kwargs = dict(radius=radius, batch_size=resolved.batch_size_2d, divisor=divisor,
                  device=device, autocast_dtype=autocast, progress=progress,
                  stride=settings.stride, views=method.views(radius),
                  uncertainty_map=settings.uncertainty_map)
    if method.name == "mc-dropout":
        with dropout_active(network):
            return predict_volume(network, *args, **kwargs)
    return predict_volume(network, *args, **kwargs)
