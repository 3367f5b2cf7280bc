"""The 2D network's forward on the CPU: channels-last against the default memory format,
and the batch size, in fp32 and under bf16 autocast.

    PYTHONPATH=UncertaintySeg python benchmarks/bench_network_2d.py \
        [--model brats-mini] [--threads 1] [--batches 16 64] [--size 192 160] [--repeats 3]

Input: random normal batches of the size the 2D stage feeds the network (a BraTS working
grid of about 170 x 139 padded to the network's divisor, 192 x 160). Times are CPU
seconds of this process (time.process_time): on a shared machine the wall time counts
other people's jobs, the CPU time only this one's (with 1 thread they agree on an idle
core). The variants alternate within each repeat, so a change of load hits all alike;
the best of `--repeats` is reported, per view (projected slice). The 2D stage would use
channels-last only if it won in both precisions (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def _forward_cpu_seconds(network, batch, autocast_dtype) -> float:
    start = time.process_time()
    with torch.inference_mode(), torch.autocast("cpu", dtype=autocast_dtype,
                                                enabled=autocast_dtype is not None):
        network(batch)
    return time.process_time() - start


def compare(network, batches: dict, autocast_dtype, repeats: int) -> dict:
    """Best CPU seconds per view for every (memory format, batch size)."""
    best = {}
    for round_index in range(repeats + 1):
        for name, memory_format in FORMATS.items():
            network.to(memory_format=memory_format)
            for size, batch in batches.items():
                seconds = _forward_cpu_seconds(
                    network, batch.contiguous(memory_format=memory_format), autocast_dtype)
                if round_index:  # round 0 warms every variant up (oneDNN builds kernels)
                    key = f"{name}_batch{size}"
                    best[key] = min(best.get(key, float("inf")), seconds / size)
    network.to(memory_format=torch.contiguous_format)
    rows = {key: round(value, 4) for key, value in best.items()}
    for size in batches:
        rows[f"channels_last_speed_up_batch{size}"] = round(
            best[f"contiguous_batch{size}"] / best[f"channels_last_batch{size}"], 3)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="brats-mini")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--size", type=int, nargs=2, default=[192, 160])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from uncertaintyseg.networks.models import load_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    network = load_model(args.model).network_2d.eval()
    batches = {size: torch.randn(size, 4, *args.size) for size in args.batches}
    rows = {"model": args.model, "threads": args.threads, "size": args.size,
            "unit": "CPU s per view"}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        rows[name] = compare(network, batches, dtype, args.repeats)
        print(json.dumps({name: rows[name]}), flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
