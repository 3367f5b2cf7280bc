"""Overhead of the streaming statistics relative to the 2D network (DESIGN 4.2), CPU.

Per batch of 16 projected 240 x 240 slices: time of ``StreamingStats.update`` (bin
counts + sums of 3 region maps) against the forward pass of a 2D U-Net built the way
nnU-Net builds one (``PlainConvUNet``, 4 inputs, 3 region outputs, 7 stages of
32, 64, 128, 256, 512, 512, 512 features, 2 convs per stage, instance norm, leaky ReLU;
input zero-padded to 256 x 256, the multiple of its stride 64). Goal: overhead < 10 %.
Also shown, for context: the projection warps of the same batch, and the flat-index
scatter that StreamingStats does not use (why its counts are laid out per pixel).

Run:  PYTHONPATH=UncertaintySeg python benchmarks/bench_entropy.py [--stages 5]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet

from uncertaintyseg.stages.projection import back_project, default_radius, origin_grid, project
from uncertaintyseg.stages.uncertainty import StreamingStats
from timing import best_time

SHAPE = (240, 240)
BINS = 100


def nnunet_like_2d(stages: int) -> torch.nn.Module:
    """PlainConvUNet with nnU-Net's 2D defaults, features 32 doubling up to 512."""
    features = [min(32 * 2 ** k, 512) for k in range(stages)]
    return PlainConvUNet(
        input_channels=4, n_stages=stages, features_per_stage=features,
        conv_op=torch.nn.Conv2d, kernel_sizes=3, strides=[1] + [2] * (stages - 1),
        n_conv_per_stage=2, num_classes=3, n_conv_per_stage_decoder=2, conv_bias=True,
        norm_op=torch.nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True}).eval()


def flat_scatter(counts: torch.Tensor, probs: torch.Tensor) -> None:
    """The rejected layout: one scatter_add_ into the flat (C*H*W*bins) count array."""
    bins = (probs * BINS).to(torch.int64).clamp_(0, BINS - 1)
    base = torch.arange(bins[0].numel(), device=probs.device).reshape(bins.shape[1:]) * BINS
    index = (bins + base).reshape(-1)
    counts.scatter_add_(0, index, torch.ones(1, dtype=counts.dtype).expand(index.numel()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=7, choices=range(4, 8))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    divisor = 2 ** (args.stages - 1)
    padded = [-(-n // divisor) * divisor for n in SHAPE]
    network = nnunet_like_2d(args.stages)
    batch = torch.randn([args.batch, 4] + padded)
    probs = torch.rand((args.batch, 3) + SHAPE)
    origins = torch.from_numpy(origin_grid(np.ones(SHAPE, bool))[:args.batch])
    radius, image = default_radius(SHAPE), torch.randn((4,) + SHAPE)
    stats = StreamingStats(3, SHAPE, bins=BINS)
    flat = torch.zeros(3 * SHAPE[0] * SHAPE[1] * BINS, dtype=torch.int32)
    with torch.inference_mode():
        forward = best_time(lambda: network(batch), repeats=1)
        rows = [("StreamingStats.update", best_time(lambda: stats.update(probs), 5)),
                ("  flat scatter_add_ (not used)",
                 best_time(lambda: flat_scatter(flat, probs), 5)),
                ("project + back_project", best_time(
                    lambda: back_project(project(image, origins, radius)[:, :3], origins,
                                         radius), 3))]
    print(f"streaming statistics vs network, batch {args.batch}, {SHAPE[0]} x {SHAPE[1]} "
          f"(network input {padded[0]} x {padded[1]}), {args.stages}-stage PlainConvUNet, "
          f"{args.threads} threads, torch {torch.__version__}")
    print(f"| {'step':<30} | ms/batch | % of forward |")
    print(f"|{'-' * 32}|----------|--------------|")
    print(f"| {'network forward':<30} | {forward * 1e3:>8.0f} | {100:>12.1f} |")
    for name, seconds in rows:
        print(f"| {name:<30} | {seconds * 1e3:>8.1f} | {100 * seconds / forward:>12.2f} |")


if __name__ == "__main__":
    main()
