"""The 3D trainer: only the cubes the kernel search picks on the training cases (design 4.4).

For every training case the trained 2D network runs the projected inference
(`uncertainty.predict_volume`, the same code as `predict`), the kernel search
(`kernels.search_kernels`) picks the cubes per region on the normalised entropy, and
the 4-channel cubes with their reference regions become the 3D training set. A batch
holds cubes of one size (32 mm for ET/TC, 64 mm for WT at the defaults): the patch is
the cube itself. nnU-Net's 3D mirroring is the augmentation (axes flipped at random).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..stages.kernels import Box, search_regions
from ..networks.models import build_network, region_order
from ..files.output_safety import atomic_path
from ..stages.refine import cut_cubes, pad_to_divisor
from ..stages.uncertainty import predict_volume
from .init_from import start_from
from .loop import PRECISIONS, Loop, LoopSettings
from .prepare import CONFIG_3D


@dataclass
class Settings3D(LoopSettings):
    """3D settings; the kernel-search numbers are design 4.3's defaults."""

    batch_size: int = 2
    projections: int = 16
    max_overlap: float = 0.4
    min_score_fraction: float = 0.1
    max_boxes: int = 8


def load_preprocessed(folder: Path, identifier: str) -> tuple[np.ndarray, np.ndarray]:
    """(image (4, Z, Y, X) float32 normalised, seg (Z, Y, X) int16, -1 outside the brain)."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    data, seg, _, _ = infer_dataset_class(str(folder))(str(folder), [identifier]).load_case(
        identifier)
    return np.asarray(data, dtype=np.float32), np.asarray(seg[0], dtype=np.int16)


def region_targets(seg: np.ndarray, regions: Sequence[Sequence[int]]) -> np.ndarray:
    """nnU-Net label map -> bool (len(regions), ...) in the network's output order."""
    return np.stack([np.isin(seg, list(r)) for r in regions])


def case_uncertainty(network2d: torch.nn.Module, image: np.ndarray, brain: np.ndarray,
                     settings: Settings3D, radius: float | None, divisor: int,
                     *, precision: str = "fp32", device: str = "cpu") -> tuple:
    """(p2d, entropy_norm) (3, Z, Y, X) float32 from the projected 2D inference.

    `settings.projections` origins per slice; `precision` is the 2D network's (see
    devices.PRECISIONS); `network2d` sits on `device`."""
    device = torch.device(device)
    result = predict_volume(network2d, image, brain, settings.projections, radius=radius,
                            batch_size=views_per_call(device), divisor=divisor,
                            device=device, autocast_dtype=PRECISIONS[precision])
    return result.p2d, result.entropy_norm


def views_per_call(device: torch.device) -> int:
    """Views per 2D network call: 16 on the CPU (as always), predict's GPU batch else."""
    from ..networks.devices import AUTO_BATCH_SIZE

    return 16 if device.type == "cpu" else AUTO_BATCH_SIZE[True]


def select_boxes(entropy_norm: np.ndarray, spacing_zyx, kernel_mm, settings: Settings3D
                 ) -> list[Box]:
    """The kernel search per region (REGIONS order), exactly as the pipeline runs it."""
    return search_regions(entropy_norm, spacing_zyx, kernel_mm,
                          max_overlap=settings.max_overlap,
                          min_score_fraction=settings.min_score_fraction,
                          max_count=settings.max_boxes)


def cubes_of_case(image: np.ndarray, targets: np.ndarray, boxes: list[Box],
                  divisor: int = 1) -> dict:
    """{cube size: (images (K, 4, k, k, k), targets (K, 3, k, k, k) bool)} of one case.

    Cubes are padded to a multiple of `divisor` voxels (the 3D network's stride).
    """
    groups = {}
    for box in boxes:
        groups.setdefault(tuple(box.size), []).append(box)
    return merge_cubes([{tuple(g[0].size): (pad_to_divisor(cut_cubes(image, g), divisor),
                                             pad_to_divisor(cut_cubes(targets, g), divisor))}
                        for g in groups.values()])


def merge_cubes(per_case: list[dict]) -> dict:
    """Concatenate the cubes of many cases, group by size."""
    merged = {}
    for groups in per_case:
        for images, targets in groups.values():
            merged.setdefault(tuple(images.shape[2:]), []).append((images, targets))
    return {size: (np.concatenate([i for i, _ in parts]), np.concatenate([t for _, t in parts]))
            for size, parts in merged.items()}


def save_cubes(cubes: dict, path: Path) -> None:
    """One .npz with images_<k>, targets_<k> per cube size (float16 images)."""
    arrays = {}
    for size, (images, targets) in cubes.items():
        key = "x".join(map(str, size))
        arrays[f"images_{key}"] = images.astype(np.float16)
        arrays[f"targets_{key}"] = targets
    with atomic_path(path) as temporary:  # a resumed chain trusts a cubes file that is there
        np.savez_compressed(temporary, **arrays)


def load_cubes(path: Path) -> dict:
    """Inverse of save_cubes: {size: (images float32, targets bool)}."""
    cubes = {}
    with np.load(path) as npz:
        for key in npz.files:
            if key.startswith("images_"):
                size = tuple(int(v) for v in key[len("images_"):].split("x"))
                cubes[size] = (npz[key].astype(np.float32), npz["targets_" + key[7:]])
    return cubes


def cube_sampler(cubes: dict, batch_size: int, rng: np.random.Generator):
    """A function returning (data, target) batches of one random size group, mirrored."""
    sizes = sorted(cubes)
    weights = np.array([len(cubes[s][0]) for s in sizes], dtype=np.float64)

    def sample():
        images, targets = cubes[sizes[rng.choice(len(sizes), p=weights / weights.sum())]]
        pick = rng.integers(0, len(images), size=batch_size)
        data = torch.from_numpy(images[pick])
        target = torch.from_numpy(targets[pick].astype(np.float32))
        flips = [axis for axis in (2, 3, 4) if rng.random() < 0.5]
        if flips:
            data, target = torch.flip(data, flips), torch.flip(target, flips)
        return data.contiguous(), target.contiguous()

    return sample


def val_batches(cubes: dict, batch_size: int) -> list:
    """All validation cubes, in batches of one size."""
    batches = []
    for size in sorted(cubes):
        images, targets = cubes[size]
        for i in range(0, len(images), batch_size):
            batches.append((torch.from_numpy(images[i:i + batch_size]),
                            torch.from_numpy(targets[i:i + batch_size].astype(np.float32))))
    return batches


def train_3d(plans: dict, dataset: dict, train_cubes: dict, val_cubes: dict, out_dir: Path,
             settings: Settings3D, *, progress=None, device: str = "cpu",
             init_from: Path | None = None) -> list[dict]:
    """Train the 3D network on the selected cubes; writes latest/best.pth, history.json.
    `init_from`: a checkpoint of the same network to go on from."""
    if not train_cubes:
        raise ValueError("no training cubes: the kernel search selected nothing; check the "
                         "2D model and the kernel settings")
    torch.manual_seed(settings.seed)
    network = build_network(plans, dataset, CONFIG_3D)
    continued = start_from(network, out_dir, init_from)
    loop = Loop(network, out_dir, settings, region_order(dataset), warm_started=continued,
                device=device)
    rng = np.random.default_rng(settings.seed + loop.iteration)  # resumed: fresh draws
    val = val_batches(val_cubes or train_cubes, settings.batch_size)
    return loop.run(cube_sampler(train_cubes, settings.batch_size, rng), val, progress,
                    "train 3D")
