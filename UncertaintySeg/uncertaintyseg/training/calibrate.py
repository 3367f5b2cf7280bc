"""The start-up numbers of `train`: the networks' sizes for the disk/memory check
(`budget`) and the estimated time per epoch from a short calibration.

Before `plan` there are no plans, so the calibration builds stand-ins of the networks
the chain will train: the 2D network on nnU-Net's planner's pattern for the cases'
slice (3x3 convolutions, stride-2 stages while the bottleneck keeps >= 4 pixels, at
most 6 downsamplings, the patch the slice rounded down to the network's stride), the 3D
cube network and the whole-crop 3D network exactly as `prepare` configures them, all
with the settings' features. Each takes CALIBRATION_STEPS optimiser steps of the
training loop (`Loop`: its autocast, gradient scaler and clipping) on random batches on
the chosen device, timed after one untimed step (cuDNN's autotuner, first
allocations); the steps train nothing that is kept. Data loading and the per-case
passes are not in the estimate: `benchmarks/bench_training.py` measures the loader.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import budget, devices, prepare
from .loop import Loop, LoopSettings

EPOCH_ITERATIONS = 250  # nnU-Net's iterations per epoch
CALIBRATION_STEPS = 3
# The batch timed where the settings say 0 (nnU-Net's planned batch, known after
# `plan`): nnU-Net plans 2D batches of 12 or more for a BraTS slice, 2 for 3d_fullres.
STAND_IN_BATCH = {"2d": 12, "3d": 2}
MAX_DOWNSAMPLINGS_2D = 6
CUBE_SPACING_MM = 1.0  # BraTS is resampled to 1 mm; the cube is kernel_mm voxels then
TOPOLOGY = {"net2d": "2d", "net_dropout": "2d", "net_head": "2d", "net3d": "3d",
            "net_full3d": "3d_full"}


def _architecture_2d(inplane: tuple[int, int]) -> tuple[dict, list[int]]:
    """(a 2D PlainConvUNet architecture as nnU-Net's planner writes it, the patch)."""
    n_down = int(min(MAX_DOWNSAMPLINGS_2D, np.floor(np.log2(min(inplane) / 4))))
    n_stages, stride = n_down + 1, 2 ** n_down
    kwargs = {"n_stages": n_stages, "features_per_stage": [32] * n_stages,
              "conv_op": "torch.nn.modules.conv.Conv2d", "kernel_sizes": [[3, 3]] * n_stages,
              "strides": [[1, 1]] + [[2, 2]] * n_down, "n_conv_per_stage": [2] * n_stages,
              "n_conv_per_stage_decoder": [2] * n_down, "conv_bias": True,
              "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
              "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None,
              "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
              "nonlin_kwargs": {"inplace": True}}
    arch = {"network_class_name":
            "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": kwargs,
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
    return arch, [max(stride, s // stride * stride) for s in inplane]


def stand_in_networks(settings, inplane) -> dict[str, tuple[dict, list[int]]]:
    """{topology: (architecture, patch)} of the 2D, cube and whole-crop networks."""
    arch2d, patch2d = _architecture_2d(inplane)
    stub = {"configurations": {"2d": {"architecture": arch2d}}}
    small = prepare.small_2d_configuration(stub, settings.features_2d,
                                           settings.max_features_2d, 1)
    cube = int(round(min(settings.kernel_mm) / CUBE_SPACING_MM))
    out = {"2d": (small["architecture"], patch2d)}
    for name, voxels in (("3d", cube), ("3d_full", settings.patch_full_3d)):
        config = prepare.cube_3d_configuration(stub, voxels, settings.features_3d,
                                               settings.max_features_3d, 1)
        out[name] = (config["architecture"], config["patch_size"])
    return out


def build(architecture: dict) -> torch.nn.Module:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    return get_network_from_plans(architecture["network_class_name"],
                                  architecture["arch_kwargs"],
                                  architecture["_kw_requires_import"], budget.CHANNELS, 3,
                                  allow_init=True, deep_supervision=False)


def trained_networks(settings) -> list[str]:
    """The ChainSettings keys of the networks the run trains."""
    from .bundle import EXTRA_SETTINGS
    from .chain import ESTIMATOR_STEPS

    return ["net2d", "net3d", *(EXTRA_SETTINGS[kind] for kind in ESTIMATOR_STEPS
                                if _estimator_of(kind) in settings.estimators)]


def _estimator_of(kind: str) -> str:
    from ..options import TRAINED_NETWORKS

    return next(method for method, name in TRAINED_NETWORKS.items() if name == kind)


def batch_of(settings, key: str) -> int:
    """The network's batch; the stand-in where it comes from the plans (0)."""
    net = getattr(settings, key)
    return net.batch_size or STAND_IN_BATCH["2d" if TOPOLOGY[key] == "2d" else "3d"]


def seconds_per_step(network, patch, batch: int, precision: str, device: str,
                     steps: int) -> float:
    """Mean seconds of the training loop's optimiser step on random batches."""
    with tempfile.TemporaryDirectory() as folder:
        settings = LoopSettings(iterations=steps + 1, precision=precision,
                                validate_every=10 ** 9, checkpoint_every=10 ** 9)
        loop = Loop(network, Path(folder), settings, [0, 1, 2], device=device)
        data = torch.randn(batch, budget.CHANNELS, *patch, device=loop.device)
        target = (torch.rand(batch, 3, *patch, device=loop.device) > 0.5).float()
        timings = []
        for _ in range(steps + 1):
            _synchronize(loop.device)
            started = time.perf_counter()
            loop._step(data, target)  # the loop's own step: autocast, scaler, clipping
            _synchronize(loop.device)
            timings.append(time.perf_counter() - started)
    return float(np.mean(timings[1:]))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def duration(seconds: float) -> str:
    """Seconds as a number with a unit a reader takes in at once."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.2f} s"


def _networks(settings, cases: budget.Cases) -> dict[str, tuple]:
    """{topology: (network, patch)} for the topologies the run trains."""
    wanted = {TOPOLOGY[key] for key in trained_networks(settings)}
    return {name: (build(arch), patch)
            for name, (arch, patch) in stand_in_networks(settings, cases.inplane).items()
            if name in wanted}


def _workers(settings) -> int:
    """Loader processes: the loader itself on the CPU; nnU-Net's workers per GPU else."""
    if torch.device(settings.device).type == "cpu":
        return 1
    default = devices.augmentation_workers(settings.device, settings.gpus)
    return settings.gpus * int(os.environ.get("nnUNet_n_proc_DA", default))


def resources(settings, cases: budget.Cases, networks: dict) -> tuple[dict, dict]:
    """(disk, memory) byte estimates of the run (budget.disk_needed/memory_needed)."""
    keys = trained_networks(settings)
    params = {key: sum(p.numel() for p in networks[TOPOLOGY[key]][0].parameters())
              for key in keys}
    # A batch in float32: 4 image and 3 region channels per voxel.
    batch = max(batch_of(settings, key) * float(np.prod(networks[TOPOLOGY[key]][1]))
                * (budget.CHANNELS + 3) * 4 for key in keys)
    return (budget.disk_needed(cases, params),
            budget.memory_needed(cases, _workers(settings), batch))


def time_lines(settings, networks: dict, steps: int) -> list[str]:
    """The calibration's lines: seconds per iteration and per epoch per network, and
    the training iterations of all of them."""
    if steps < 1:
        return ["time: not estimated (--calibration-steps 0)"]
    torch.set_num_threads(settings.threads)  # the run's threads: its speed
    measured, lines, total = {}, [], 0.0
    for key in trained_networks(settings):
        net, topology = getattr(settings, key), TOPOLOGY[key]
        batch = batch_of(settings, key)
        if (topology, batch, net.precision) not in measured:
            network, patch = networks[topology]
            measured[topology, batch, net.precision] = seconds_per_step(
                network, patch, batch, net.precision, settings.device, steps)
        step = measured[topology, batch, net.precision]
        total += step * net.iterations
        stand_in = "" if net.batch_size else " (stand-in for the planned batch)"
        lines.append(f"  {key}: {duration(step)} per iteration at batch {batch}"
                     f"{stand_in}, {duration(step * EPOCH_ITERATIONS)} per epoch of "
                     f"{EPOCH_ITERATIONS} iterations")
    return [f"time (calibrated: {steps} timed steps per network on {settings.device}, "
            "data loading and the per-case passes not included):", *lines,
            f"  all networks' iterations: about {duration(total)}"]


def startup_lines(settings, cases: budget.Cases, work: Path, steps: int = 0,
                  refuse: bool = True) -> list[str]:
    """The check's lines (and the calibration's with `steps`); with `refuse`, an
    InputError naming the folder and the numbers when the disk or memory is short."""
    networks = _networks(settings, cases)
    disk, memory = resources(settings, cases, networks)
    lines, refusals = budget.report(work, disk, memory)
    if refuse and refusals:
        from ..errors import InputError

        raise InputError("; ".join(refusals))
    return lines + [f"not enough: {r}" for r in refusals] + time_lines(settings, networks,
                                                                        steps)
