"""The 3D-only baseline (`full-3d`): a region-based 3D nnU-Net on the whole brain crop.

Unlike the refinement network (`trainer3d`, cubes the kernel search picks), this one sees
what nnU-Net's own 3d_fullres training would: `nnUNetDataLoader` patches of the
`3d_full` configuration (patch `patch_full_3d`, 64^3 for brats-mini) with foreground oversampling, and nnU-Net's
3D training transforms (rotation +-30 deg, scaling, noise, blur, intensity, mirroring
along every axis, labels to WT/TC/ET regions). The loss and optimiser are our loop's
(the paper's BCE and Adam), as for the other networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..networks.models import build_network, region_order
from . import distributed
from .devices import background
from .init_from import start_from
from .loop import Loop, LoopSettings
from .prepare import CONFIG_FULL_3D
from .trainer2d import make_loaders


@dataclass
class SettingsFull3D(LoopSettings):
    """Patches per batch, nnU-Net's foreground oversampling, fixed validation batches."""

    batch_size: int = 2
    oversample_foreground: float = 0.33
    val_batches: int = 2


def train_full_3d(folder: Path, plans: dict, dataset: dict, split: dict, out_dir: Path,
                  settings: SettingsFull3D, *, progress=None, device: str = "cpu",
                  init_from: Path | None = None) -> list[dict]:
    """Train the `3d_full` network on split['train'] (resumable, like `train_2d`);
    `init_from`: a checkpoint of the same network to go on from."""
    network = build_network(plans, dataset, CONFIG_FULL_3D)
    continued = start_from(network, out_dir, init_from)
    loop = Loop(network, out_dir, settings, region_order(dataset), warm_started=continued,
                device=device)
    np.random.seed(settings.seed + loop.iteration)  # nnU-Net's loader: numpy's global RNG
    batch, shared = distributed.loader_batch(settings.batch_size, loop.device)
    val, loader = make_loaders(folder, plans, dataset, split, settings, CONFIG_FULL_3D,
                               train_batch=batch)
    loader = background(loader, loop.device)

    def sample():
        batch = next(loader)
        return batch["data"].float(), batch["target"].float()

    return loop.run(sample, val, progress, "train full 3D", shared)
