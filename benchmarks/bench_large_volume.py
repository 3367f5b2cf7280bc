"""`predict` on a large generated volume: peak memory (goal < 8 GB) and where it is reached.

    PYTHONPATH=UncertaintySeg python benchmarks/bench_large_volume.py \
        [--work /tmp/uncertaintyseg-large] [--shape 360 512 512] [--spacing 0.5 0.5 0.5] \
        [--model phantom] [--outputs minimal] [--threads 1]

A phantom of `--shape` voxels at `--spacing` mm (four modalities, the FLAIR-like 0.5 mm
case of issue 12) is written once into `--work` by a child process (its own memory is not
measured; it is reused by later runs). Then `predict --projections preview` runs in a
second child; its resident memory is sampled from /proc every 0.2 s and tagged with the
stage the run reports last (`--progress json`), so the peak can be put on a stage. The
peak itself is the child's ru_maxrss (the kernel's high-water mark, not a sample).
`--outputs ""` leaves the flag out (a version of `predict` without it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

GIB = 1024 ** 3


def write_case(work: Path, shape, spacing) -> Path:
    """The phantom case folder under `work`, written by a child process if missing."""
    name = "x".join(str(n) for n in shape) + "_" + "x".join(f"{s:g}" for s in spacing)
    root = work / f"case_{name}"
    existing = sorted(root.glob("Phantom_*"))
    if existing:
        return existing[0]
    code = ("import sys; from uncertaintyseg.phantom import write_phantom_case; "
            f"print(write_phantom_case({str(root)!r}, seed=0, shape={tuple(shape)!r}, "
            f"spacing={tuple(spacing)!r}))")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    print(f"phantom written in {time.perf_counter() - start:.0f} s", flush=True)
    return sorted(root.glob("Phantom_*"))[0]


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class StageSampler:
    """Reads the child's JSON progress lines (the stage it is in) and samples its RSS."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.stage = "start"
        self.peak_by_stage: dict[str, int] = {}
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                self.stage = json.loads(line)["stage"]
            except (ValueError, KeyError, TypeError):
                continue

    def sample_until_exit(self, interval: float = 0.2) -> None:
        while self.process.poll() is None:
            rss = _rss_bytes(self.process.pid)
            stage = self.stage
            self.peak_by_stage[stage] = max(self.peak_by_stage.get(stage, 0), rss)
            time.sleep(interval)
        self.reader.join(timeout=5)


def run_predict(case_dir: Path, out: Path, model: str, outputs: str, threads: int) -> dict:
    """One `predict` in a child: wall seconds, peak RSS, RSS peak per reported stage."""
    command = [sys.executable, "-m", "uncertaintyseg", "predict", "--case", str(case_dir),
               "--out", str(out), "--model", model, "--projections", "preview",
               "--threads", str(threads), "--progress", "json", "--overwrite"]
    if outputs:
        command += ["--outputs", outputs]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment)
    sampler = StageSampler(process)
    sampler.sample_until_exit()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"predict failed with exit status {process.returncode}")
    # ru_maxrss of the children is in KiB on Linux: the largest child, and predict is
    # by far the larger of the two this process starts.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {"wall_s": round(seconds, 1), "peak_rss_gb": round(peak / GIB, 2),
            "sampled_peak_gb_by_stage": {k: round(v / GIB, 2)
                                         for k, v in sampler.peak_by_stage.items()},
            "stages_s": report["timings_s"], "outputs": report.get("outputs"),
            "files": sorted(p.name for p in out.iterdir()),
            "folder_mb": round(sum(p.stat().st_size for p in out.iterdir()) / 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/uncertaintyseg-large"))
    parser.add_argument("--shape", type=int, nargs=3, default=(360, 512, 512),
                        metavar=("Z", "Y", "X"))
    parser.add_argument("--spacing", type=float, nargs=3, default=(0.5, 0.5, 0.5),
                        metavar=("Z", "Y", "X"))
    parser.add_argument("--model", default="phantom")
    parser.add_argument("--outputs", default="minimal",
                        help='the --outputs set; "" leaves the flag out')
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    case_dir = write_case(args.work, args.shape, args.spacing)
    out = args.work / f"out_{args.outputs or 'default'}"
    row = run_predict(case_dir, out, args.model, args.outputs, args.threads)
    row.update(shape_zyx=list(args.shape), spacing_mm=list(args.spacing), model=args.model)
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
