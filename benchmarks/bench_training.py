"""Training speed on whatever device is there: the 2D, 3D-cube and whole-crop 3D
networks of `--preset paper`, a few hundred iterations each, on the shared BraTS cases.

    PYTHONPATH=UncertaintySeg python benchmarks/bench_training.py \
        --data ../shared/data/brats2018 --cases 8 --iterations 300 [--write-readme]

The chain's own steps prepare the data (convert, nnU-Net's plan and preprocessing of
`--cases` cases, one held out for validation), then each network trains with the
chain's own trainers (`train_2d`, `train_3d`, `train_full_3d`), unchanged: the 3D
cube network on one cube per region centred on that region's reference (where the
kernel search's uncertain cubes sit), as the chain would cut them. Per network the
table gives iterations per second, the peak GPU memory (torch.cuda.max_memory_allocated;
"-" off CUDA), the data-loader wait share (seconds spent waiting for the next
training batch over the loop's seconds), both measured over the iterations after the
first WARMUP (cuDNN's autotuner, the workers' start) and before the last (the final
validation and checkpoint), and the estimated days of `--preset paper`'s training
iterations on this device (the dropout and head networks at the 2D network's rate).
The iteration counts do not grow with the cases, so the estimate holds for BraTS
2021's 1,251 cases as for these; what grows with them (preprocessing, the training
cases' uncertainty pass, the validation) is not in it. `--tiny` trains the tiny
preset's networks instead (a smoke test; no days then). `--write-readme` puts the
table into benchmarks/README.md between its bench_training markers.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
MARKERS = ("<!-- bench_training: start -->", "<!-- bench_training: end -->")
WARMUP = 10  # iterations left out of the rates (at most a quarter of them)
NETWORKS = ("2d", "3d", "full3d")
# The paper preset's networks timed by each measured one.
RATE_OF = {"net2d": "2d", "net_dropout": "2d", "net_head": "2d", "net3d": "3d",
           "net_full3d": "full3d"}
BRATS_2021_CASES = 1251


class Recorder:
    """Per-iteration timestamps (the trainers' progress calls) and the seconds spent
    waiting for each training batch."""

    def __init__(self):
        self.ticks: list[float] = []
        self.waits: list[tuple[float, float]] = []  # (start, seconds)

    def progress(self, stage, done, total, message) -> None:
        self.ticks.append(time.perf_counter())

    def timed(self, draw):
        def wrapped():
            started = time.perf_counter()
            batch = draw()
            self.waits.append((started, time.perf_counter() - started))
            return batch
        return wrapped

    def rates(self) -> tuple[float, float]:
        """(iterations per second, wait share) between iteration `first` and the last
        one before the final validation."""
        count = len(self.ticks)
        first = min(WARMUP, max(1, count // 4))
        start, end = self.ticks[first - 1], self.ticks[count - 2]
        waited = sum(s for t, s in self.waits if start <= t < end)
        return (count - 1 - first) / (end - start), waited / (end - start)


class TimedIterator:
    """A loader whose next() is timed by a Recorder."""

    def __init__(self, loader, recorder: Recorder):
        self.draw = recorder.timed(lambda: next(loader))

    def __iter__(self):
        return self

    def __next__(self):
        return self.draw()


def instrument(recorder: Recorder) -> None:
    """Time the trainers' batch draws: their module-level loader and sampler factories
    wrapped (the trainers themselves run unchanged); the originals kept from the first
    call, so that each network's recorder wraps them once."""
    from uncertaintyseg.training import trainer2d, trainer3d, trainer_full3d

    original = ORIGINALS.setdefault("factories", (trainer2d.background,
                                                  trainer3d.cube_sampler))

    def background(loader, device):
        return TimedIterator(original[0](loader, device), recorder)

    def cube_sampler(*args):
        return recorder.timed(original[1](*args))

    trainer2d.background = trainer_full3d.background = background
    trainer3d.cube_sampler = cube_sampler


ORIGINALS: dict = {}


def prepared_chain(data: Path, cases: int, work: Path, tiny: bool, device: str,
                   iterations: int):
    """The chain's convert/plan/preprocess on the first `cases` cases of `data`."""
    from uncertaintyseg.training.chain import Chain
    from uncertaintyseg.training.chain_settings import ChainSettings
    from uncertaintyseg.commands.train_cli import PRESETS

    source = work / "cases"
    source.mkdir(parents=True, exist_ok=True)
    for case in sorted(p for p in data.iterdir() if p.is_dir())[:cases]:
        if not (source / case.name).exists():
            (source / case.name).symlink_to(case.resolve(), target_is_directory=True)
    values = json.loads(json.dumps(PRESETS["tiny" if tiny else "paper"]))
    for key in RATE_OF:
        values[key].update(iterations=iterations, validate_every=iterations,
                           checkpoint_every=iterations)
        if "val_batches" in values[key]:  # the 3D cube network validates on every cube
            values[key]["val_batches"] = 1
    if torch.device(device).type == "cuda":  # train's default there (cli.chain_settings)
        from uncertaintyseg.training.devices import cuda_precision

        for key in RATE_OF:
            values[key]["precision"] = cuda_precision()
    settings = ChainSettings.from_dict({**values, "name": "bench", "n_val": 1,
                                        "device": device, "dataset_id": 990})
    chain = Chain(source, work / "work", settings)
    for step in ("convert", "plan", "preprocess"):
        getattr(chain, step)()
    return chain


def centred_cubes(chain, part: str) -> dict:
    """One cube per region and case of split[part], centred on the region (the cube
    sizes of the chain's kernels at the plans' spacing)."""
    from uncertaintyseg import REGIONS
    from uncertaintyseg.stages.kernels import Box
    from uncertaintyseg.networks.models import stride_divisor
    from uncertaintyseg.training.prepare import CONFIG_3D
    from uncertaintyseg.training.trainer3d import (cubes_of_case, load_preprocessed,
                                                    merge_cubes, region_targets)

    regions = [chain.dataset["labels"][r] for r in REGIONS]
    spacing = chain.spacing_zyx()
    per_case = []
    for case_id in chain.split[part]:
        image, seg = load_preprocessed(chain.data_folder, case_id)
        targets = region_targets(seg, regions)
        boxes = []
        for name, target, mm in zip(REGIONS, targets, chain.settings.kernel_mm):
            centre = (np.argwhere(target).mean(axis=0) if target.any()
                      else np.array(target.shape) / 2)
            size = tuple(int(min(round(mm / s), n)) for s, n in zip(spacing, target.shape))
            start = tuple(int(np.clip(c - k // 2, 0, n - k))
                          for c, k, n in zip(centre, size, target.shape))
            boxes.append(Box(name, 1, 0.0, start, size))
        per_case.append(cubes_of_case(image, targets, boxes,
                                      stride_divisor(chain.plans, CONFIG_3D)))
    return merge_cubes(per_case)


def train_one(chain, network: str, out: Path) -> Recorder:
    """Train `network` for the settings' iterations; returns its recorder."""
    from uncertaintyseg.training.trainer2d import train_2d
    from uncertaintyseg.training.trainer3d import train_3d
    from uncertaintyseg.training.trainer_full3d import train_full_3d

    recorder, s = Recorder(), chain.settings
    instrument(recorder)
    common = dict(progress=recorder.progress, device=s.device)
    if network == "2d":
        train_2d(chain.data_folder, chain.plans, chain.dataset, chain.split, out, s.net2d,
                 **common)
    elif network == "3d":
        train_3d(chain.plans, chain.dataset, centred_cubes(chain, "train"),
                 centred_cubes(chain, "val"), out, s.net3d, **common)
    else:
        train_full_3d(chain.data_folder, chain.plans, chain.dataset, chain.split, out,
                      s.net_full3d, **common)
    return recorder


def measure(chain, networks, work: Path) -> dict:
    """{network: (iterations/s, wait share, peak GPU bytes or None, batch)}."""
    results, cuda = {}, torch.device(chain.settings.device).type == "cuda"
    batch_of = {"2d": "net2d", "3d": "net3d", "full3d": "net_full3d"}
    for network in networks:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        out = Path(tempfile.mkdtemp(prefix=f"bench-{network}-", dir=work))
        rate, wait = train_one(chain, network, out).rates()
        memory = torch.cuda.max_memory_allocated() if cuda else None
        results[network] = (rate, wait, memory,
                            getattr(chain.settings, batch_of[network]).batch_size)
    return results


def paper_days(results: dict) -> float | None:
    """Days of `--preset paper`'s training iterations at the measured rates."""
    from uncertaintyseg.commands.train_cli import PRESETS

    paper = PRESETS["paper"]
    if any(RATE_OF[key] not in results for key in RATE_OF):
        return None
    return sum(paper[key]["iterations"] / results[RATE_OF[key]][0]
               for key in RATE_OF) / 86400


def table(results: dict, setting: str, days: float | None, device_name: str) -> str:
    rows = ["| network | batch | iterations/s | GPU memory | data-loader wait |",
            "|---|---|---|---|---|"]
    for network, (rate, wait, memory, batch) in results.items():
        gpu = "-" if memory is None else f"{memory / 2 ** 30:.1f} GiB"
        rows.append(f"| {network} | {batch} | {rate:.2f} | {gpu} | {wait:.0%} |")
    estimate = ("not estimated (a --tiny run, or a network left out)" if days is None else
                f"about {days:.1f} days for the training iterations of every network "
                f"(BraTS 2021, {BRATS_2021_CASES} cases: the per-case passes not included)")
    return "\n".join([f"Device: {device_name}; setting: {setting}.", "", *rows, "",
                      f"`--preset paper` on this device: {estimate}.", ""])


def device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return f"{device} ({platform.processor() or platform.machine()}, " \
           f"{torch.get_num_threads()} torch threads)"


def write_readme(path: Path, text: str) -> None:
    """Replace the table between MARKERS in `path` (appended the first time), atomically."""
    from uncertaintyseg.files.output_safety import write_text_atomic

    old = path.read_text(encoding="utf-8")
    block = f"{MARKERS[0]}\n{text}{MARKERS[1]}"
    if MARKERS[0] in old and MARKERS[1] in old:
        head, rest = old.split(MARKERS[0], 1)
        new = head + block + rest.split(MARKERS[1], 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    write_text_atomic(path, new)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "brats2018")
    p.add_argument("--cases", type=int, default=8, help="cases to prepare (one validates)")
    p.add_argument("--iterations", type=int, default=300, help="per network (>= 3)")
    p.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS))
    p.add_argument("--tiny", action="store_true", help="the tiny preset's networks")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    p.add_argument("--work", type=Path, default=None,
                   help="folder for the prepared data (kept: a rerun skips preparing)")
    p.add_argument("--write-readme", action="store_true",
                   help="write the table into --readme between its markers")
    p.add_argument("--readme", type=Path, default=ROOT / "benchmarks" / "README.md")
    args = p.parse_args(argv)
    if args.iterations < 3 or args.cases < 2:
        p.error("--iterations 3 or more and --cases 2 or more")
    return args


def main(argv=None) -> int:
    from uncertaintyseg.training.devices import resolve_training_device

    args = parse(argv)
    torch.set_num_threads(args.threads)
    device = resolve_training_device(args.device)
    work = args.work or Path(tempfile.gettempdir()) / "uncertaintyseg-bench-training"
    started = time.time()
    chain = prepared_chain(args.data, args.cases, work, args.tiny, device, args.iterations)
    print(f"prepared {args.cases} cases in {time.time() - started:.0f} s", file=sys.stderr)
    results = measure(chain, args.networks, work)
    setting = (f"{'tiny' if args.tiny else 'paper'} preset's networks, {args.iterations} "
               f"iterations each, {args.cases} cases of {args.data.name}, "
               f"{chain.settings.net2d.precision}")
    text = table(results, setting, None if args.tiny else paper_days(results),
                 device_name(device))
    print(text)
    if args.write_readme:
        write_readme(args.readme, text)
    print(f"total {time.time() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
