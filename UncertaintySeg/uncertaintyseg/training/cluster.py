"""`train --print-sbatch` (a Slurm batch script for a GPU node) and `train --dry-run`
(the plan of a run, printed before any work)."""

from __future__ import annotations

import shlex
from pathlib import Path

from . import folds


def train_argv(args) -> list[str]:
    """The `uncertaintyseg train` arguments the node runs: this command's, with absolute
    paths, on CUDA with --gpus GPUs, without the printing flags and --slurm-* options."""
    out = ["train"]
    if args.source is not None:
        out.append(str(Path(args.source).resolve()))
    if args.phantoms:
        out += ["--phantoms", str(args.phantoms)]
    out += ["--out", str(Path(args.out).resolve()), "--preset", args.preset,
            "--device", "cuda", "--gpus", str(args.gpus), "--seed", str(args.seed),
            "--n-val", str(args.n_val), "--version", args.version, "--progress", "json",
            "--dataset-id", str(args.dataset_id), "--threads", str(args.threads),
            "--validate-projections", str(args.validate_projections)]
    if args.dataset_name:
        out += ["--dataset-name", args.dataset_name]
    if args.no_validate:
        out.append("--no-validate")
    # A work folder beside the model folder, not the node's temp dir: a re-submitted job
    # (another node) must find the checkpoints to resume from.
    work = args.work or Path(args.out).parent / f"{Path(args.out).name}-work"
    out += ["--work", str(Path(work).resolve())]
    for key in ("name", "iterations_2d", "iterations_3d", "train_projections", "lr",
                "precision", "fold"):
        if getattr(args, key) is not None:
            out += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    if args.val_cases:
        out += ["--val-cases", *args.val_cases]
    if args.estimators is not None:
        out += ["--estimators", *args.estimators]
    return out


def sbatch_script(args) -> str:
    """One Slurm job on one node with --gpus GPUs; `train --gpus N` there starts one
    process per GPU itself (distributed.run_ranks), so the job runs a single task."""
    lines = ["#!/bin/bash", "#SBATCH --job-name=uncertaintyseg-train",
             "#SBATCH --nodes=1", "#SBATCH --ntasks=1",
             f"#SBATCH --gres=gpu:{args.gpus}",
             f"#SBATCH --cpus-per-task={args.slurm_cpus}",
             f"#SBATCH --mem={args.slurm_memory}", f"#SBATCH --time={args.slurm_time}"]
    if args.slurm_queue:
        lines.append(f"#SBATCH --partition={args.slurm_queue}")
    if args.slurm_account:
        lines.append(f"#SBATCH --account={args.slurm_account}")
    lines += ["set -euo pipefail", *args.slurm_prologue,
              "# nnU-Net's augmentation workers per GPU: the job's CPUs shared by the GPUs",
              f"export nnUNet_n_proc_DA=$(( SLURM_CPUS_PER_TASK / {args.gpus} > 1 ? "
              f"SLURM_CPUS_PER_TASK / {args.gpus} - 1 : 1 ))",
              "# Re-submitting the same script resumes: the work folder keeps the "
              "checkpoints.",
              "srun uncertaintyseg " + shlex.join(train_argv(args))]
    return "\n".join(lines) + "\n"


def _validation_count(settings, cases: int) -> str:
    if settings.fold is None:
        return str(len(settings.val_cases) or settings.n_val)
    return "0" if settings.fold == folds.ALL else f"about {cases // folds.FOLDS}"


def dry_run_plan(settings, cases: int, startup: list[str]) -> str:
    """What `train` would do with `settings` (ChainSettings) on `cases` case folders,
    one line per item; `startup`: the disk/memory check's and calibration's lines
    (calibrate.startup_lines)."""
    from ..options import TRAINED_NETWORKS
    from .bundle import EXTRA_SETTINGS
    from .chain import ESTIMATOR_STEPS, STEPS

    kinds = [TRAINED_NETWORKS[m] for m in TRAINED_NETWORKS if m in settings.estimators]
    lines = [f"device: {settings.device}" + (f" x {settings.gpus} processes (DDP)"
                                             if settings.gpus > 1 else ""),
             f"threads: {settings.threads}",
             f"cases: {cases} ({_validation_count(settings, cases)} for validation)",
             f"fold: {folds.text(settings.fold)}",
             "networks:"]
    for key in ["net2d", "net3d", *(EXTRA_SETTINGS[kind] for kind in kinds)]:
        net = getattr(settings, key)
        batch = (f"batch {net.batch_size} (per process {net.batch_size // settings.gpus})"
                 if net.batch_size else "batch from nnU-Net's plans (known after `plan`)")
        lines.append(f"  {key}: {net.iterations} iterations, {batch}, {net.precision}, "
                     f"loss {net.loss}, lr {net.learning_rate}")
    lines += [f"features 2D {settings.features_2d}..{settings.max_features_2d}, "
              f"3D {settings.features_3d}..{settings.max_features_3d}, full-3d patch "
              f"{settings.patch_full_3d}^3, kernels (mm) {list(settings.kernel_mm)}",
              "steps: " + " -> ".join([*STEPS, *(ESTIMATOR_STEPS[k] for k in kinds)]),
              *startup]
    return "\n".join(lines)
