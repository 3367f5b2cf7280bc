"""The 2D trainer: nnU-Net's data pipeline + spherical projection as an augmentation.

Batches come from nnU-Net's own `nnUNetDataLoader` over the preprocessed cases, with
nnU-Net's training transforms (`nnUNetTrainer.get_training_transforms`: rotation/scale,
noise, blur, brightness, contrast, low resolution, gamma, mirroring, and the conversion
of labels to the WT/TC/ET region channels). Then each sample of the batch is warped by
the spherical projection about a random origin inside its brain (with probability
`projection_probability`), with the same `projection.sampling_grid` and the same
`grid_sample` settings as inference, so the network learns the images it will see. On
the CPU the warp runs as the batch is drawn; on a GPU it runs there, after the batch's
transfer (`DeviceProjection`), with the same draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..networks.models import build_network, region_order
from ..stages.projection import default_radius, sampling_grid
from . import distributed
from .devices import background
from .init_from import start_from
from .loop import Loop, LoopSettings, warm_start
from .prepare import CONFIG_2D


@dataclass
class Settings2D(LoopSettings):
    """2D settings: batch of `batch_size` patches, projection radius in px (None: default)."""

    batch_size: int = 8
    projection_probability: float = 0.8
    radius: float | None = None
    oversample_foreground: float = 0.33
    val_batches: int = 4


def random_origins(data: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One random (row, col) per sample inside its brain (non-zero pixels), (B, 2) float32.

    Samples with an empty brain get the patch centre.
    """
    brain = (data != 0).any(dim=1)
    origins = []
    for mask in brain:
        rows, cols = torch.nonzero(mask, as_tuple=True)
        if len(rows) == 0:
            origins.append([(mask.shape[0] - 1) / 2, (mask.shape[1] - 1) / 2])
            continue
        k = int(rng.integers(len(rows)))
        origins.append([float(rows[k]), float(cols[k])])
    return torch.tensor(origins, dtype=torch.float32)


def choose_projections(data: torch.Tensor, probability: float, rng: np.random.Generator
                       ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(the samples to project, their origins) drawn from `rng`; None when none is."""
    chosen = np.flatnonzero(rng.random(data.shape[0]) < probability)
    if len(chosen) == 0:
        return None
    index = torch.as_tensor(chosen)
    return index, random_origins(data[index], rng)


def warp_batch(data: torch.Tensor, target: torch.Tensor, chosen, radius: float | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The spherical projection of the `chosen` samples (choose_projections) about their
    origins, computed where `data` is (the grid and grid_sample on its device).

    data (B, C, H, W) bilinear like inference; target (B, 3, H, W) {0, 1} nearest, so the
    regions stay binary. radius in px (None: projection.default_radius of the patch).
    """
    if chosen is None:
        return data, target
    index, origins = (t.to(data.device) for t in chosen)
    shape = tuple(data.shape[-2:])
    grid = sampling_grid(origins, shape, radius or default_radius(shape), inverse=True)
    data, target = data.clone(), target.clone()
    data[index] = F.grid_sample(data[index], grid, mode="bilinear", padding_mode="border",
                                align_corners=True)
    target[index] = F.grid_sample(target[index], grid, mode="nearest", padding_mode="border",
                                  align_corners=True)
    return data, target


def project_batch(data: torch.Tensor, target: torch.Tensor, radius: float | None,
                  probability: float, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Spherical projection of a random subset of the batch, each about its own origin
    (choose_projections, then warp_batch), where the batch is."""
    return warp_batch(data, target, choose_projections(data, probability, rng), radius)


class DeviceProjection:
    """The projection augmentation split across the transfer (a non-CPU device): the
    samples and origins are drawn on the CPU as the batch arrives (`draw`, the same rng
    calls as project_batch), the warp runs on the device after the batch is copied there
    (`__call__`, the loop's `on_device` step), where grid_sample is fast and the CPU
    workers are free for nnU-Net's augmentation."""

    def __init__(self, radius: float | None, probability: float, rng: np.random.Generator):
        self.radius, self.probability, self.rng = radius, probability, rng
        self.pending = None

    def draw(self, data: torch.Tensor, target: torch.Tensor):
        self.pending = choose_projections(data, self.probability, self.rng)
        return data, target

    def __call__(self, data: torch.Tensor, target: torch.Tensor):
        chosen, self.pending = self.pending, None
        return warp_batch(data, target, chosen, self.radius)


def _rotation_and_mirroring(patch: list[int]) -> tuple[tuple[float, float], tuple[int, ...]]:
    """nnUNetTrainer's choice (configure_rotation_dummyDA_mirroring_and_inital_patch_size,
    for the near-isotropic patches we plan): 2D full rotation for near-square patches,
    else +-15 deg; 3D +-30 deg; mirroring along every axis."""
    if len(patch) == 3:
        angle = 30 / 180 * np.pi
    else:
        angle = np.pi if max(patch) / min(patch) <= 1.5 else 15 / 180 * np.pi
    return (-angle, angle), tuple(range(len(patch)))


def make_loader(folder: Path, plans: dict, dataset: dict, identifiers: list[str],
                batch_size: int, training: bool, *, oversample: float = 0.33,
                configuration: str = CONFIG_2D):
    """nnU-Net's nnUNetDataLoader (patches of `configuration`, 2D or 3D) with nnU-Net's
    transforms for training/validation."""
    from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(plans)
    config = manager.get_configuration(configuration)
    labels = manager.get_label_manager(dataset)
    patch = list(config.patch_size)
    data = infer_dataset_class(str(folder))(str(folder), identifiers)
    regions = labels.foreground_regions
    if training:
        rotation, mirror_axes = _rotation_and_mirroring(patch)
        initial = get_patch_size(patch, rotation, rotation, rotation, (0.85, 1.25))
        transforms = nnUNetTrainer.get_training_transforms(
            patch, rotation, None, mirror_axes, False, config.use_mask_for_norm,
            regions=regions, ignore_label=labels.ignore_label)
    else:
        initial = patch
        transforms = nnUNetTrainer.get_validation_transforms(
            None, regions=regions, ignore_label=labels.ignore_label)
    return nnUNetDataLoader(data, batch_size, initial, patch, labels, oversample,
                            transforms=transforms)


def fixed_batches(loader, count: int, seed: int) -> list:
    """`count` batches drawn once with a fixed seed (the same validation set every time)."""
    state = np.random.get_state()
    np.random.seed(seed)
    batches = [next(loader) for _ in range(count)]
    np.random.set_state(state)
    return [(b["data"].float(), b["target"].float()) for b in batches]


def train_2d(folder: Path, plans: dict, dataset: dict, split: dict, out_dir: Path,
             settings: Settings2D, *, progress=None, configuration: str = CONFIG_2D,
             warm_from: Path | None = None, loop_class=Loop, stage: str = "train 2D",
             device: str = "cpu", init_from: Path | None = None) -> list[dict]:
    """Train the 2D network on split['train'], validate on split['val'] patches.

    folder: nnU-Net's preprocessed data folder (nnUNetPlans_2d). Writes latest.pth,
    best.pth, history.json into out_dir; resumes from latest.pth. Returns the history.
    `configuration`: the plans' 2D configuration (CONFIG_2D, or the dropout variant);
    `warm_from`: a state dict file to start from when there is nothing to resume
    (`loop.warm_start`); `loop_class`: Loop or a subclass with its own loss (the head's);
    `init_from`: a checkpoint of the same network to go on from (`init_from.start_from`);
    `device`: where the network trains (nnU-Net's augmentation runs on the CPU, in
    background workers off the CPU: devices.background; the projection's warp runs on
    the device there: DeviceProjection).
    """
    extra = getattr(loop_class, "extra_outputs", 0)
    network = build_network(plans, dataset, configuration, extra_outputs=extra)
    if warm_from is not None and not (Path(out_dir) / "latest.pth").is_file():
        warm_start(network, warm_from)
    continued = start_from(network, out_dir, init_from)
    loop = loop_class(network, out_dir, settings, region_order(dataset),
                      warm_started=warm_from is not None or continued, device=device)
    # nnU-Net's loader draws from numpy's global RNG; a resumed run continues with fresh
    # draws instead of replaying the first batches.
    np.random.seed(settings.seed + loop.iteration)
    rng = np.random.default_rng(settings.seed + loop.iteration)
    batch, shared = distributed.loader_batch(settings.batch_size, loop.device)
    val, loader = make_loaders(folder, plans, dataset, split, settings, configuration,
                               train_batch=batch)
    loader = background(loader, loop.device)

    # On the CPU the batch is projected as it is drawn, as always; elsewhere the warp
    # waits for the batch on the device (DeviceProjection).
    on_device = (None if loop.device.type == "cpu" else
                 DeviceProjection(settings.radius, settings.projection_probability, rng))

    def sample():
        batch = next(loader)
        data, target = batch["data"].float(), batch["target"].float()
        if on_device is not None:
            return on_device.draw(data, target)
        return project_batch(data, target, settings.radius, settings.projection_probability,
                             rng)

    return loop.run(sample, val, progress, stage, shared, on_device=on_device)


def make_loaders(folder, plans, dataset, split, settings, configuration,
                 *, train_batch: int | None = None):
    """(fixed validation batches, training loader) of a configuration, as every trainer
    uses them: validation on split["val"] (the first training case when it is empty);
    `train_batch`: the training loader's batch (None: settings.batch_size)."""
    val_ids = split["val"] or split["train"][:1]
    val = fixed_batches(make_loader(folder, plans, dataset, val_ids, settings.batch_size,
                                    False, oversample=0.5, configuration=configuration),
                        settings.val_batches, settings.seed)
    loader = make_loader(folder, plans, dataset, split["train"],
                         train_batch or settings.batch_size, True,
                         oversample=settings.oversample_foreground,
                         configuration=configuration)
    return val, loader
