"""`predict` on a real BraTS case: wall time, peak memory, and entropy vs projection count.

    PYTHONPATH=UncertaintySeg python benchmarks/bench_predict.py CASE_DIR \
        [--model brats-mini] [--threads 2] [--counts 16 64 256] [--slab 24]

Part 1 runs `uncertaintyseg predict --projections preview` on the whole case in a child
process and reports its wall time and peak resident memory (the child's ru_maxrss).
Part 2 compares normalised entropy maps computed with each of `--counts` projections per
slice against the largest count, as Pearson r over the brain voxels of each region. On
2 CPU cores the largest counts cost hours on a whole case, so part 2 runs on a slab of
`--slab` slices centred on the tumour (the reference's, else the FLAIR's brightest
slice); say so when you report the numbers.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def run_predict_child(case_dir: Path, model: str, threads: int, out: Path) -> dict:
    """Time one `predict --projections preview` in a child process; peak RSS in GB."""
    command = [sys.executable, "-m", "uncertaintyseg", "predict", "--case", str(case_dir),
               "--out", str(out), "--model", model, "--projections", "preview",
               "--threads", str(threads), "--progress", "none"]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    # ru_maxrss of the children is in KiB on Linux; only one child has run so far.
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    report = json.loads((out / "report.json").read_text())
    return {"wall_s": round(seconds, 1), "peak_rss_gb": round(peak_gb, 2),
            "stages_s": report["timings_s"]}


def _slab(case, size: int):
    """The case cut to `size` slices around the tumour (reference if present)."""
    from uncertaintyseg.files.convert import label_file
    from uncertaintyseg.files.io import InputError
    from uncertaintyseg.files.label_maps import load_labels

    try:
        labels, _ = load_labels(label_file(Path(case.paths["flair"]).parent))
        weight = (labels > 0).sum(axis=(1, 2))
    except InputError:  # no reference: the FLAIR's brightest slices
        weight = case.image[0].sum(axis=(1, 2))
    centre = int(np.argmax(weight))
    start = max(0, min(centre - size // 2, case.image.shape[1] - size))
    return replace(case, image=case.image[:, start:start + size]), (start, start + size)


def entropy_by_count(case_dir: Path, model_name: str, counts, slab: int) -> dict:
    """Normalised entropy per projection count on a slab; Pearson r vs the largest."""
    from uncertaintyseg import REGIONS
    from uncertaintyseg.files.io import load_case
    from uncertaintyseg.networks.models import load_model
    from uncertaintyseg.stages.uncertainty import predict_volume
    from uncertaintyseg.networks.working_grid import from_nnunet

    model = load_model(model_name)
    case, slices = _slab(load_case(case_dir=case_dir), slab)
    grid = from_nnunet(model, case.image, case.spacing)
    maps, seconds = {}, {}
    for count in sorted(counts):
        start = time.perf_counter()
        maps[count] = predict_volume(model.network_2d, grid.image, grid.mask, count,
                                     radius=model.radius, divisor=model.divisor_2d).entropy_norm
        seconds[count] = round(time.perf_counter() - start, 1)
    top = max(counts)
    brain = grid.mask
    pearson = {count: {region: float(np.corrcoef(maps[count][i][brain], maps[top][i][brain])[0, 1])
                       for i, region in enumerate(REGIONS)} for count in counts if count != top}
    return {"slices": list(slices), "seconds": seconds, "pearson_r_vs_largest": pearson,
            "largest": top}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case_dir", type=Path)
    parser.add_argument("--model", default="brats-mini")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--counts", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--slab", type=int, default=24, help="slices for part 2")
    parser.add_argument("--skip-predict", action="store_true")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the predict output folder here (default: discarded)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    results = {"case": args.case_dir.name, "model": args.model, "threads": args.threads}
    if not args.skip_predict:
        with tempfile.TemporaryDirectory() as tmp:
            out = args.keep or Path(tmp) / "out"
            results["predict_preview"] = run_predict_child(args.case_dir, args.model,
                                                           args.threads, out)
        print(json.dumps(results["predict_preview"], indent=2), flush=True)
    results["entropy_vs_count"] = entropy_by_count(args.case_dir, args.model, args.counts,
                                                   args.slab)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
