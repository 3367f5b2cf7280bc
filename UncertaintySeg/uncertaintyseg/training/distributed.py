"""Data-parallel training on several devices (PyTorch DistributedDataParallel).

`run_ranks` starts one process per device with torch.multiprocessing.spawn, as
nnU-Net's `-num_gpus` does: the NCCL backend on CUDA (rank r on cuda:r), gloo on the
CPU (the tests). Every rank draws the same global batch (same seeds) and trains on its
share (`local_share`); DDP all-reduces the gradients, so N ranks take the step one
process would take on the whole batch. Only rank 0 writes files (`is_main`). When a
rank dies, spawn ends the others and raises: the run stops, and `latest.pth` is the
last complete checkpoint (the loop writes it under a temporary name, then renames).
"""

from __future__ import annotations

import os
import socket
from functools import partial

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """True in the process that writes checkpoints, JSON and progress."""
    return rank() == 0


def local_share(batch):
    """This rank's contiguous share of a global (data, target) batch, which must split
    evenly (equal shares: the mean of the ranks' mean losses is the batch's)."""
    size = world_size()
    if size == 1:
        return batch
    if len(batch[0]) % size:
        raise ValueError(f"batch size {len(batch[0])} does not split across {size} "
                         "processes; choose a multiple of the process count")
    return tuple(t.chunk(size)[rank()].contiguous() for t in batch)


def loader_batch(batch_size: int, device: torch.device) -> tuple[int, bool]:
    """(the batch a rank's loader draws, whether it is the global batch to split).

    On an accelerator each rank draws its own share with its own augmentation workers,
    as nnU-Net's DDP does (N ranks would otherwise augment N global batches). On the
    CPU every rank draws the whole global batch alike (same seeds, the loader in the
    process) and trains on its share: N ranks then take exactly one process's steps."""
    if world_size() == 1 or device.type == "cpu":
        return batch_size, True
    return batch_size // world_size(), False


def wrap(network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The network DDP-wrapped when several processes train, else itself."""
    if world_size() == 1:
        return network
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # Without deep supervision nnU-Net's decoder leaves the upper output layers unused.
    return DistributedDataParallel(network, device_ids=ids, find_unused_parameters=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(index: int, world: int, port: int, backend: str, *, func, args, kwargs):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group(backend, rank=index, world_size=world)
    try:
        device = f"cuda:{index}" if backend == "nccl" else "cpu"
        if backend == "gloo":
            torch.set_num_threads(1)  # N processes share the cores
        func(*args, device=device, **kwargs)
    finally:
        dist.destroy_process_group()


def run_ranks(func, world: int, args: tuple = (), kwargs: dict | None = None,
              backend: str | None = None) -> None:
    """func(*args, device=..., **kwargs) in `world` processes (one per GPU with NCCL,
    gloo on the CPU); `func` must be importable by name (a module-level function).
    Raises when any rank fails (spawn then ends the others)."""
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl" and torch.cuda.device_count() < world:
        raise ValueError(f"--gpus {world}: torch sees {torch.cuda.device_count()} CUDA "
                         "GPUs on this machine")
    # spawn passes `args` positionally after the rank; the call to make travels by
    # keyword in a partial (picklable: _rank_main is a module-level function).
    rank_main = partial(_rank_main, func=func, args=args, kwargs=kwargs or {})
    mp.spawn(rank_main, args=(world, _free_port(), backend), nprocs=world, join=True)
