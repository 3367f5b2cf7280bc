"""`predict` on a large generated volume: peak memory (goal < 8 GB) and where it is reached.

    PYTHONPATH=UncertaintySeg python benchmarks/bench_large_volume.py \
        [--work /tmp/uncertaintyseg-large] [--shape 360 512 512] [--spacing 0.5 0.5 0.5] \
        [--model phantom] [--outputs minimal] [--threads 1]

A phantom of `--shape` voxels at `--spacing` mm (four modalities, the FLAIR-like 0.5 mm
case of issue 12) is written once into `--work` by a child process (its own memory is not
measured; it is reused by later runs). Then `predict --projections preview` runs in a
second child; its resident memory is sampled from /proc every 0.2 s and put on the stage
it fell in (the reported stages begin with their first `--progress json` line, the others
are placed by their report.json durations), so the peak can be put on a stage. The peak
itself is the child's ru_maxrss from wait4 (the kernel's high-water mark, not a sample).
The samples and stage times are kept in WORK/out_SET_rss.json.
`--outputs ""` leaves the flag out (a version of `predict` without it).
"""

from __future__ import annotations

import argparse
import json
import os
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
    code = ("import sys; from uncertaintyseg.files.phantom import write_phantom_case; "
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
    """Reads the child's JSON progress lines (when each stage it reports began) and
    samples its RSS every `interval` s until it exits."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.start = time.perf_counter()
        self.events: dict[str, float] = {}   # stage -> seconds of its first line
        self.samples: list[tuple[float, int]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                stage = json.loads(line)["stage"]
            except (ValueError, KeyError, TypeError):
                continue
            self.events.setdefault(stage, time.perf_counter() - self.start)

    def sample_until_exit(self, interval: float = 0.2) -> int:
        """The child's own peak RSS in bytes (wait4's ru_maxrss: the kernel's high-water
        mark of this child alone, not of every child as RUSAGE_CHILDREN would be)."""
        while True:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                break
            self.samples.append((time.perf_counter() - self.start, _rss_bytes(self.process.pid)))
            time.sleep(interval)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.reader.join(timeout=5)
        return usage.ru_maxrss * 1024  # KiB on Linux

    def peaks_by_stage(self, timings: dict) -> dict:
        """Sampled RSS peak (GB) per pipeline stage. The stages the run does not report
        are placed by their report.json durations, counted back from the next reported
        one: "uncertainty" and "write" begin with their first progress line."""
        begin_2d = self.events.get("uncertainty", 0.0)
        begin_write = self.events.get("write", self.samples[-1][0])
        intervals = {"start, model, load": (0.0, begin_2d - timings.get("preprocess", 0.0)),
                     "preprocess": (begin_2d - timings.get("preprocess", 0.0), begin_2d)}
        end = begin_write
        for stage in ("postprocess", "export", "fusion", "refine", "kernels"):
            intervals[stage] = (end - timings.get(stage, 0.0), end)
            end = intervals[stage][0]
        intervals["uncertainty"] = (begin_2d, end)
        intervals["write"] = (begin_write, float("inf"))
        peaks = {}
        for stage, (low, high) in intervals.items():
            inside = [rss for t, rss in self.samples if low <= t < high]
            if inside:
                peaks[stage] = round(max(inside) / GIB, 2)
        return peaks


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
    peak = sampler.sample_until_exit()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"predict failed with exit status {process.returncode}")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    (out.parent / f"{out.name}_rss.json").write_text(json.dumps(
        {"events_s": sampler.events, "samples_s_bytes": sampler.samples}), encoding="utf-8")
    return {"wall_s": round(seconds, 1), "peak_rss_gb": round(peak / GIB, 2),
            "sampled_peak_gb_by_stage": sampler.peaks_by_stage(report["timings_s"]),
            "stages_s": report["timings_s"], "outputs": (report.get("outputs") or {}).get("set"),
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
