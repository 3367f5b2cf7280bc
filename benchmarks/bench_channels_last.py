"""channels-last against the default (contiguous) memory format for the 2D network.

    PYTHONPATH=UncertaintySeg python benchmarks/bench_channels_last.py \
        [--model brats-mini] [--threads 1] [--batch 16] [--size 192 160] [--repeats 5]

Times one forward of a batch of projected slices (random normal input of the size the
2D stage feeds the network: a BraTS working grid of about 170 x 140 padded to the
network's divisor) in fp32 and under bf16 autocast, with the network and the batch in
torch.contiguous_format and in torch.channels_last. The formats alternate within each
repeat, so a change of the machine's load hits both alike; the best of `--repeats` is
reported with the ratio. The 2D stage uses channels-last only if it wins in both
precisions (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def _forward_seconds(network, batch, autocast_dtype) -> float:
    start = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=autocast_dtype,
                                                enabled=autocast_dtype is not None):
        network(batch)
    return time.perf_counter() - start


def compare(network, batch, autocast_dtype, repeats: int) -> dict:
    """Best forward seconds per memory format, formats alternating in each repeat."""
    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    best = {name: float("inf") for name in formats}
    for round_index in range(repeats + 1):
        for name, memory_format in formats.items():
            network.to(memory_format=memory_format)
            seconds = _forward_seconds(network, batch.contiguous(memory_format=memory_format),
                                       autocast_dtype)
            if round_index:  # round 0 warms both formats up (oneDNN builds its kernels)
                best[name] = min(best[name], seconds)
    network.to(memory_format=torch.contiguous_format)
    return {"contiguous_s": round(best["contiguous"], 3),
            "channels_last_s": round(best["channels_last"], 3),
            "speed_up": round(best["contiguous"] / best["channels_last"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="brats-mini")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=[192, 160])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from uncertaintyseg.models import load_model

    torch.set_num_threads(args.threads)
    network = load_model(args.model).network_2d.eval()
    batch = torch.randn(args.batch, 4, *args.size)
    rows = {"model": args.model, "threads": args.threads, "batch": args.batch,
            "size": args.size}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        rows[name] = compare(network, batch, dtype, args.repeats)
        print(json.dumps({name: rows[name]}), flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
