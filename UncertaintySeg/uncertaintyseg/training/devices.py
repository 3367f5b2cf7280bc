"""Where `train` computes: the device, resolved once, and what follows from it.

On the CPU every helper here is the identity of what the trainers did before they had
a device (same autocast call, no scaler, batches untouched, the loader in this
process), so that CPU training stays bit for bit what it was. On CUDA: mixed
precision (bf16 where the GPU has it, else fp16 with a gradient scaler), cuDNN's
autotuner, pinned batches copied without blocking, and nnU-Net's data augmentation in
background worker processes (`nnUNet_n_proc_DA` of them, nnU-Net's own setting).
Channels-last memory is left off: it has not been measured faster for these networks.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

from ..errors import InputError
from ..options import DEVICE_CHOICES
# Autocast dtypes of the training precisions; fp16 needs a gradient scaler (below).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_training_device(name: str) -> str:
    """`train --device`: predict's resolution (devices.resolve_device), with mps."""
    from ..networks.devices import resolve_device

    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise InputError(f"--device {name}: use one of {', '.join(DEVICE_CHOICES)}")
    return str(resolve_device(name, allow_mps=True))


def cuda_precision() -> str:
    """The mixed precision on this CUDA GPU: bf16 where it computes it, else fp16."""
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def check_precision(precision: str, device: str) -> None:
    """fp16 trains only on CUDA, where the gradient scaler keeps small gradients."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} must be one of {sorted(PRECISIONS)}")
    if precision == "fp16" and torch.device(device).type != "cuda":
        raise InputError(f"precision fp16 needs a CUDA device (device {device}); use bf16 "
                         "or fp32")


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """The forward pass's autocast; on the CPU exactly the call the loop always made."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16,
                          enabled=dtype is not None)


def grad_scaler(device: torch.device, precision: str):
    """torch.amp.GradScaler for fp16 on CUDA (fp16's range would underflow the
    gradients); None otherwise (fp32 and bf16 need none)."""
    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def configure(device: torch.device) -> None:
    """cuDNN's autotuner on CUDA: the trainers' patch shapes are fixed per network."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.set_device(device)


def to_device(batch, device: torch.device):
    """(data, target) on `device`: pinned and copied without blocking on CUDA; on the
    CPU the tensors themselves."""
    if device.type == "cpu":
        return batch
    pin = device.type == "cuda"
    return tuple((t.pin_memory() if pin and not t.is_pinned() else t).to(
        device, non_blocking=pin) for t in batch)


def augmentation_workers(device: str, gpus: int = 1) -> int:
    """nnU-Net's augmentation processes per training process: 2 on the CPU (the cores
    train the network); on an accelerator the free cores shared by the GPUs, less one
    per GPU for its training process."""
    if torch.device(device).type == "cpu":
        return 2
    from ..runtime.cores import free_cores

    return max(1, free_cores() // max(1, gpus) - 1)


def background(loader, device: torch.device):
    """nnU-Net's loader run in background processes on an accelerator (nnU-Net's
    NonDetMultiThreadedAugmenter, `nnUNet_n_proc_DA` workers, pinned batches); on the
    CPU the loader itself, in this process, as before (the cores train the network)."""
    if device.type == "cpu":
        return loader
    from batchgenerators.dataloading.nondet_multi_threaded_augmenter import \
        NonDetMultiThreadedAugmenter
    from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

    workers = max(1, get_allowed_n_proc_DA())
    return NonDetMultiThreadedAugmenter(data_loader=loader, transform=None,
                                        num_processes=workers,
                                        num_cached=max(6, workers // 2), seeds=None,
                                        pin_memory=device.type == "cuda", wait_time=0.002)
