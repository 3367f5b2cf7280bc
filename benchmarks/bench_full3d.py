"""Cost of `predict --method full-3d` on a BraTS-sized brain crop, CPU (issue 10: < 2 min).

The network is the `3d_full` configuration `train` plans (features 16 doubling to 128,
patch 96^3, 5 stages, untrained: its cost does not depend on the weights). One tile's 8
mirrorings are timed with `full3d.mirrored_logits` (the code `predict_full_3d` runs),
and the case's cost is that time multiplied by nnU-Net's tile count for the crop
(`compute_steps_for_sliding_window`, step 0.5).

Run:  PYTHONPATH=UncertaintySeg python benchmarks/bench_full3d.py [--threads 2] [--bf16]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from uncertaintyseg.networks.full3d import TILE_STEP, mirrored_logits
from uncertaintyseg.networks.models import build_network
from uncertaintyseg.training.prepare import CONFIG_FULL_3D, cube_3d_configuration
from timing import best_time

MODEL = Path(__file__).resolve().parents[1] / "UncertaintySeg/Resources/Models/brats-mini/2d"
CROP = (140, 172, 136)  # a BraTS 2018 brain crop after nnU-Net's crop to non-zero


def network(patch: int) -> torch.nn.Module:
    plans = json.loads((MODEL / "plans.json").read_text())
    plans["configurations"][CONFIG_FULL_3D] = cube_3d_configuration(plans, patch, 16, 128, 2)
    dataset = json.loads((MODEL / "dataset.json").read_text())
    return build_network(plans, dataset, CONFIG_FULL_3D).eval()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--batch", type=int, default=2, help="mirrorings per call")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    net, patch = network(args.patch), (args.patch,) * 3
    tiles = int(np.prod([len(s) for s in compute_steps_for_sliding_window(CROP, patch,
                                                                          TILE_STEP)]))
    tile = torch.randn(1, 4, *patch)
    dtype = torch.bfloat16 if args.bf16 else None
    with torch.inference_mode():
        seconds = best_time(lambda: mirrored_logits(net, tile, args.batch, dtype), 1)
    print(f"patch {args.patch}^3, {'bf16' if args.bf16 else 'fp32'}, {args.threads} threads: "
          f"one tile x 8 mirrorings {seconds:.1f} s; crop {CROP}: {tiles} tiles -> "
          f"about {seconds * tiles:.0f} s for the case")


if __name__ == "__main__":
    main()
