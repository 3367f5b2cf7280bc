"""`--backend torch` against `--backend openvino` on one BraTS case (issue 19, item 2).

1. The 2D network alone, on the case's real projected views (the batches `predict`
   feeds it: evenly spread brain slices, 16 projections, batches of 16 views), torch
   eager fp32 and OpenVINO fp32 interleaved on the same batches (A, B, A, B, ...), CPU
   seconds per view (`time.process_time`), the smallest of the repeats; their logits
   compared on every pixel.
2. The whole `predict` with each backend, child processes one after the other: CPU
   seconds (user + system, from wait4), wall seconds, and each output's Dice and error
   AUROC (normalised entropy over the brain) against the case's reference.

The machine is shared: compare the ratios of one run, and give the CPU and the load.

    PYTHONPATH=UncertaintySeg python benchmarks/bench_backend.py \
        --case ../shared/data/brats2018/Brats18_CBICA_ABM_1 --threads 1
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from uncertaintyseg import REGIONS
from uncertaintyseg.networks.inference_backend import torch_module, use_backend


class Recorder(torch.nn.Module):
    """The torch network, keeping every batch it is given."""

    def __init__(self, network):
        super().__init__()
        self.network, self.batches = network, []

    def forward(self, x):
        self.batches.append(x.clone())
        return self.network(x)


def real_batches(case_dir: Path, n_batches: int, batch: int = 16):
    """brats-mini and `n_batches` full batches of the case's projected views."""
    from uncertaintyseg.files.io import load_case
    from uncertaintyseg.networks.models import load_model
    from uncertaintyseg.stages.uncertainty import predict_volume
    from uncertaintyseg.networks.working_grid import from_nnunet

    model = load_model("brats-mini")
    case = load_case(case_dir=case_dir)
    grid = from_nnunet(model, case.image, case.spacing)
    brain = np.flatnonzero(grid.mask.sum(axis=(1, 2)) > 0.5 * grid.mask.sum(axis=(1, 2)).max())
    chosen = brain[np.linspace(0, len(brain) - 1, n_batches).round().astype(int)]
    recorder = Recorder(model.network_2d)
    for z in chosen:  # one slice = 16 views = one full batch
        predict_volume(recorder, grid.image[:, z:z + 1], grid.mask[z:z + 1], 16,
                       divisor=model.divisor_2d, batch_size=batch)
    return model, [b for b in recorder.batches if b.shape[0] == batch]


def bench_network(case_dir: Path, threads: int, n_batches: int, repeats: int) -> None:
    torch.set_num_threads(threads)
    model, batches = real_batches(case_dir, n_batches)
    eager = torch_module(model.network_2d)
    openvino = use_backend(model, "openvino", threads).network_2d
    views = sum(b.shape[0] for b in batches)
    seconds = {"torch": [], "openvino": []}
    worst = mean = 0.0
    with torch.inference_mode():
        openvino(batches[0])  # export (or read from the cache) and compile, untimed
        model.network_3d(torch.zeros(1, 4, 32, 32, 32))  # the 3D export, for predict below
        for _ in range(repeats):
            for name, network in (("torch", eager), ("openvino", openvino)):
                start = time.process_time()
                outputs = [network(b) for b in batches]
                seconds[name].append(time.process_time() - start)
                if name == "torch":
                    reference = outputs
            diff = [(torch.sigmoid(o) - torch.sigmoid(r)).abs()
                    for o, r in zip(outputs, reference)]
            worst = max(worst, max(float(d.max()) for d in diff))
            mean = float(torch.stack([d.mean() for d in diff]).mean())
    best = {k: min(v) / views for k, v in seconds.items()}
    print(f"network, {threads} thread(s), {len(batches)} batches of 16 real views, "
          f"{repeats} interleaved repeats: torch {best['torch'] * 1e3:.1f} ms/view, "
          f"openvino {best['openvino'] * 1e3:.1f} ms/view (CPU), openvino "
          f"{best['torch'] / best['openvino']:.2f}x; all repeats torch "
          f"{[round(s / views * 1e3, 1) for s in seconds['torch']]} openvino "
          f"{[round(s / views * 1e3, 1) for s in seconds['openvino']]}; sigmoid max abs "
          f"diff {worst:.2e}, mean {mean:.2e}", flush=True)


def run_predict(case_dir: Path, out: Path, backend: str, threads: int) -> tuple[float, float]:
    """(CPU s, wall s) of one `predict` child process."""
    command = [sys.executable, "-m", "uncertaintyseg", "predict", "--case", str(case_dir),
               "--out", str(out), "--threads", str(threads), "--backend", backend,
               "--progress", "none", "--overwrite"]
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"predict --backend {backend} failed")
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - start


def scores(case_dir: Path, out: Path) -> dict:
    """Dice and error AUROC (normalised entropy, brain voxels) per region."""
    from uncertaintyseg.evaluation.pairing import load_reference, read_maps
    from uncertaintyseg.evaluation.uncertainty_quality import auroc
    from uncertaintyseg.files.label_maps import labels_to_regions, load_labels
    from uncertaintyseg.evaluation.metrics import dice

    reference = load_reference(case_dir)
    labels, convention = load_labels(out / "segmentation.nii.gz", reference=reference.grid)
    regions = labels_to_regions(labels, convention)
    uncertainty = read_maps(out / "uncertainty.nii.gz", reference.grid)
    brain = reference.brain
    return {r: (dice(reference.regions[i], regions[i]),
                auroc(uncertainty[i][brain], (reference.regions[i] != regions[i])[brain]))
            for i, r in enumerate(REGIONS)}


def bench_predict(case_dir: Path, threads: int, folder: Path) -> None:
    results = {}
    for backend in ("torch", "openvino"):
        cpu, wall = run_predict(case_dir, folder / backend, backend, threads)
        results[backend] = scores(case_dir, folder / backend)
        text = " ".join(f"{r} {d:.4f}/{a:.4f}" for r, (d, a) in results[backend].items())
        print(f"predict --backend {backend} --threads {threads}: {cpu:.1f} CPU s, "
              f"{wall:.1f} s wall, load {os.getloadavg()[0]:.1f}; Dice/AUROC {text}",
              flush=True)
        results[backend + "_cpu"] = cpu
    delta = " ".join(f"{r} {results['openvino'][r][0] - results['torch'][r][0]:+.4f}/"
                     f"{results['openvino'][r][1] - results['torch'][r][1]:+.4f}"
                     for r in REGIONS)
    print(f"predict: openvino {results['torch_cpu'] / results['openvino_cpu']:.2f}x in CPU "
          f"s; openvino minus torch, Dice/AUROC: {delta}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-predict", action="store_true")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}; load {os.getloadavg()}", flush=True)
    bench_network(args.case, args.threads, args.batches, args.repeats)
    if not args.skip_predict:
        with tempfile.TemporaryDirectory() as folder:
            bench_predict(args.case, args.threads, Path(folder))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"peak RSS of this process {peak:.2f} GB")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
