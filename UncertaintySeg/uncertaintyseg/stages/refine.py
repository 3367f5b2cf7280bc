"""3D refinement (design 4.4): run the 3D network on the selected cubes, average overlaps.

A box chosen on region r's uncertainty contributes only channel r of the network's
output: P3D[r] is the mean of those channels over the boxes of region r covering a voxel,
and -1 where no box of region r covers it (the output contract's "not refined" value).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from itertools import groupby

import numpy as np
import torch

from uncertaintyseg import REGIONS
from uncertaintyseg.stages.kernels import Box

Progress = Callable[[str, int, int, str], None]


def cut_cubes(image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
    """Crop every box from `image` (C, Z, Y, X) -> (K, C, kz, ky, kx), same dtype.

    All boxes of one call must have one size and lie inside the volume.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (C, Z, Y, X), got shape {image.shape}")
    if not boxes:
        raise ValueError("cut_cubes needs at least one box")
    size = tuple(boxes[0].size)
    for box in boxes:
        if tuple(box.size) != size:
            raise ValueError(f"boxes of one call must share one size: {box.size} != {size}")
        if min(box.start) < 0 or any(b > n for b, n in zip(box.stop, image.shape[1:])):
            raise ValueError(f"box {box.start}+{box.size} lies outside the volume "
                             f"{image.shape[1:]}")
    return np.stack([image[(slice(None),) + box.slices] for box in boxes])


def pad_to_divisor(cubes: np.ndarray, divisor: int) -> np.ndarray:
    """Zero-pad the three spatial axes at their end up to a multiple of `divisor`.

    Zero is the mean of the z-scored image, the same value nnU-Net pads with (and
    background for region targets, which the 3D trainer pads the same way).
    """
    pads = [(0, 0), (0, 0)] + [(0, -n % divisor) for n in cubes.shape[2:]]
    return np.pad(cubes, pads) if any(p[1] for p in pads) else cubes


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _predict(network3d: torch.nn.Module, cubes: np.ndarray, divisor: int,
             device: torch.device, autocast_dtype: torch.dtype | None) -> np.ndarray:
    """Sigmoid probabilities (B, 3, kz, ky, kx) float32 for a batch of cubes."""
    padded = pad_to_divisor(cubes.astype(np.float32, copy=False), divisor)
    batch = torch.from_numpy(np.ascontiguousarray(padded)).to(device)
    with torch.inference_mode(), _autocast(device, autocast_dtype):
        logits = network3d(batch)
    expected = (batch.shape[0], len(REGIONS)) + tuple(batch.shape[2:])
    if tuple(logits.shape) != expected:
        raise ValueError(f"the 3D network returned shape {tuple(logits.shape)}, "
                         f"expected {expected} (B, 3 regions, D, H, W)")
    kz, ky, kx = cubes.shape[2:]
    probs = torch.sigmoid(logits.float())[:, :, :kz, :ky, :kx]
    return probs.cpu().numpy()


def _batches(boxes: Sequence[Box], batch_size: int):
    """Boxes grouped by size (one tensor per batch), in batches of `batch_size`."""
    by_size = sorted(boxes, key=lambda b: tuple(b.size))
    for _, group in groupby(by_size, key=lambda b: tuple(b.size)):
        group = list(group)
        for i in range(0, len(group), batch_size):
            yield group[i:i + batch_size]


def refine(network3d: torch.nn.Module, image: np.ndarray, boxes: Sequence[Box],
           *, batch_size: int = 2, device: str | torch.device = "cpu", divisor: int = 1,
           autocast_dtype: torch.dtype | None = None,
           progress: Progress | None = None) -> np.ndarray:
    """Composite P3D (3, Z, Y, X) float32 from the 3D network run on `boxes`.

    `image` is the normalised (4, Z, Y, X) volume; `network3d` maps (B, 4, D, H, W) to
    region logits (B, 3, D, H, W); it must already sit on `device` and is put in eval
    mode. Cubes are padded to a
    multiple of `divisor` voxels and cropped back; `autocast_dtype` (e.g.
    torch.float16 on a GPU) runs the network under torch.autocast. Each box of region r
    adds channel r of its sigmoid output; P3D[r] = sum / count where count > 0, -1
    elsewhere. `progress("refine", cubes_done, cubes_total, message)` after each batch.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (C, Z, Y, X), got shape {image.shape}")
    if batch_size < 1 or divisor < 1:
        raise ValueError(f"batch_size {batch_size} and divisor {divisor} must be >= 1")
    unknown = {b.region for b in boxes} - set(REGIONS)
    if unknown:
        raise ValueError(f"boxes name unknown regions {sorted(unknown)}; use {REGIONS}")
    device = torch.device(device)
    shape = (len(REGIONS),) + image.shape[1:]
    total = np.zeros(shape, dtype=np.float32)
    count = np.zeros(shape, dtype=np.float32)
    network3d.eval()
    done = 0
    for batch in _batches(boxes, batch_size):
        probs = _predict(network3d, cut_cubes(image, batch), divisor, device,
                         autocast_dtype)
        for box, prob in zip(batch, probs):
            r = REGIONS.index(box.region)
            total[(r,) + box.slices] += prob[r]
            count[(r,) + box.slices] += 1.0
        done += len(batch)
        if progress is not None:
            progress("refine", done, len(boxes), f"3D refinement: {done}/{len(boxes)} cubes")
    covered = count > 0
    total[covered] /= count[covered]
    total[~covered] = -1.0
    return total
