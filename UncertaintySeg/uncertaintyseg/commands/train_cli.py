"""`uncertaintyseg convert` and `uncertaintyseg train` (registered by the main CLI)."""

from __future__ import annotations

import argparse
import json
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError
# From the options table, not from .devices: that imports torch, and --help must not.
from ..options import DEVICE_CHOICES, TRAINED_NETWORKS

# The validation cases' output folders, in the work folder (`evaluate --results` reads
# them; docs/TRAINING.md, "The card").
VALIDATION_FOLDER = "validation"

# Named starting points; every value can still be overridden on the command line.
PRESETS = {
    "tiny": dict(features_2d=4, max_features_2d=16, features_3d=4, max_features_3d=16,
                 net2d=dict(iterations=4, batch_size=2, validate_every=2, checkpoint_every=2,
                            val_batches=1),
                 net3d=dict(iterations=4, batch_size=2, validate_every=2, checkpoint_every=2,
                            projections=2, max_boxes=2),
                 net_dropout=dict(iterations=2, batch_size=2, validate_every=2,
                                  checkpoint_every=2, val_batches=1),
                 net_head=dict(iterations=2, batch_size=2, validate_every=2,
                               checkpoint_every=2, val_batches=1),
                 net_full3d=dict(iterations=2, batch_size=1, validate_every=2,
                                 checkpoint_every=2, val_batches=1),
                 patch_full_3d=32, pso_particles=4, pso_iterations=3),
    "phantom": dict(features_2d=8, max_features_2d=64, features_3d=8, max_features_3d=64,
                    net2d=dict(iterations=600, batch_size=8, validate_every=50,
                               checkpoint_every=50, val_batches=2),
                    net3d=dict(iterations=300, batch_size=2, validate_every=50,
                               checkpoint_every=50, projections=8, max_boxes=4),
                    net_dropout=dict(iterations=200, batch_size=8, validate_every=50,
                                     checkpoint_every=50, val_batches=2),
                    net_head=dict(iterations=200, batch_size=8, validate_every=50,
                                  checkpoint_every=50, val_batches=2),
                    net_full3d=dict(iterations=300, batch_size=2, validate_every=50,
                                    checkpoint_every=50, val_batches=2),
                    patch_full_3d=64),
    "brats-mini": dict(features_2d=16, max_features_2d=128, features_3d=16,
                       max_features_3d=128,
                       net2d=dict(iterations=1600, batch_size=8, validate_every=100,
                                  checkpoint_every=25, val_batches=4),
                       net3d=dict(iterations=600, batch_size=2, validate_every=50,
                                  checkpoint_every=25, projections=16, max_boxes=8),
                       net_dropout=dict(iterations=400, batch_size=8, validate_every=100,
                                        checkpoint_every=25, val_batches=4),
                       net_head=dict(iterations=400, batch_size=8, validate_every=100,
                                     checkpoint_every=25, val_batches=4),
                       # A 96^3 patch costs 12 s per batch of 2 on one core (bf16)
                       # against about 3 s at 64^3: 1000 iterations at 64^3 train in
                       # under an hour here, at 96^3 they would take over three.
                       net_full3d=dict(iterations=1000, batch_size=2, validate_every=100,
                                       checkpoint_every=25, val_batches=2),
                       patch_full_3d=64),
    # nnU-Net's default topologies (2D features 32..512, 3D capped at 320 as nnU-Net
    # caps its 3D networks), nnU-Net's planned batch sizes (0: from the plans, for the
    # GPU memory nnU-Net plans for), 1000 epochs of 250 iterations per network; the 3D
    # training cubes from the standard 128 projections per slice. A GPU preset.
    "paper": dict(features_2d=32, max_features_2d=512, features_3d=32, max_features_3d=320,
                  net2d=dict(iterations=250_000, batch_size=0, validate_every=250,
                             checkpoint_every=250, val_batches=8),
                  net3d=dict(iterations=250_000, batch_size=0, validate_every=250,
                             checkpoint_every=250, projections=128, max_boxes=8),
                  net_dropout=dict(iterations=25_000, batch_size=0, validate_every=250,
                                   checkpoint_every=250, val_batches=8),
                  net_head=dict(iterations=25_000, batch_size=0, validate_every=250,
                                checkpoint_every=250, val_batches=8),
                  net_full3d=dict(iterations=250_000, batch_size=0, validate_every=250,
                                  checkpoint_every=250, val_batches=4),
                  patch_full_3d=128),
}


def _add_convert(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="BraTS case folders -> nnU-Net v2 raw dataset (region labels)",
        description="Convert a folder of BraTS cases (either naming convention) into an "
                    "nnU-Net v2 raw dataset with WT/TC/ET region labels and a fixed, "
                    "recorded train/validation split (splits_final.json).")
    p.add_argument("source", type=Path, help="folder with one sub-folder per case")
    p.add_argument("--out", type=Path, required=True, help="nnU-Net raw folder to write into")
    p.add_argument("--dataset-id", type=int, default=500, help="nnU-Net dataset id (500)")
    p.add_argument("--name", default="UncertaintySeg", help="dataset name (DatasetXXX_NAME)")
    p.add_argument("--n-val", type=int, default=3, help="cases kept for validation (3)")
    p.add_argument("--val-cases", nargs="*", default=None, help="explicit validation cases")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (0)")
    p.set_defaults(handler=_cmd_convert)


def _cmd_convert(args, reporter) -> int:
    from ..files.convert import convert_dataset

    out = convert_dataset(args.source, args.out, args.dataset_id, name=args.name,
                          n_val=args.n_val, seed=args.seed, val_cases=args.val_cases,
                          progress=reporter)
    reporter.finished(out)
    print(f"nnU-Net raw dataset: {out}")
    return 0


def _add_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the 2D and 3D networks and fit the fusion (resumable)",
        description="convert -> nnU-Net plan/preprocess -> 2D training -> uncertainty on the "
                    "training cases -> kernel search -> 3D training on the selected cubes -> "
                    "PSO fusion fit -> the estimators' own networks (--estimators) -> model folder "
                    "(+ validation with the real pipeline). "
                    "Re-running with the same --work resumes.")
    p.add_argument("source", type=Path, nargs="?", help="folder of BraTS case folders")
    p.add_argument("--phantoms", type=int, default=0,
                   help="train on N generated phantom cases instead of SOURCE")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--work", type=Path, default=None,
                   help="work folder (nnU-Net folders, checkpoints; default in the temp dir)")
    p.add_argument("--name", default=None, help="model name (default: the --out folder name)")
    p.add_argument("--version", default="1",
                   help="model version written into model.json and every report (default 1)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="brats-mini",
                   help="network sizes and training lengths to start from: tiny (a smoke "
                        "test), phantom, brats-mini (default; 1600 2D / 600 3D "
                        "iterations), paper (a GPU's: nnU-Net's default topologies and "
                        "planned batch sizes, 250,000 iterations per network); the "
                        "options below override single values")
    p.add_argument("--dataset-id", type=int, default=500,
                   help="nnU-Net dataset id in the work folder, 1-999 (default 500)")
    p.add_argument("--dataset-name", default="", help="nnU-Net dataset name (default: name)")
    _add_split(p)
    p.add_argument("--estimators", nargs="*", default=None, choices=list(TRAINED_NETWORKS),
                   metavar="METHOD",
                   help="the estimators whose networks to train as well: "
                        f"{', '.join(TRAINED_NETWORKS)} (default: all; the flag alone: none)")
    p.add_argument("--iterations-2d", type=int, default=None,
                   help="2D network training iterations (default: the preset's)")
    p.add_argument("--iterations-3d", type=int, default=None,
                   help="3D network training iterations (default: the preset's)")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam's initial learning rate, both networks (default: the preset's)")
    p.add_argument("--train-projections", type=int, default=None,
                   help="projections per slice for the uncertainty of the training cases "
                        "(the kernel search that picks the 3D training cubes)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None,
                   help="training and training-case inference precision of every network "
                        "(default: the preset's fp32 on the CPU, bf16 on a CUDA GPU that "
                        "has it, else fp16 with a gradient scaler; bf16 is about 1.8x "
                        "faster on CPUs with bf16 instructions; fp16 needs CUDA)")
    p.add_argument("--init-from", type=Path, default=None, metavar="MODEL_DIR",
                   help="go on training from this model folder's 2D, 3D and whole-crop 3D "
                        "networks (same preset and plans); the validation cases default to "
                        "that model's, and its training cases may not include this run's "
                        "validation cases")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the validation split and the PSO fusion fit (default 0)")
    p.add_argument("--no-validate", action="store_true",
                   help="skip the final validation with the pipeline")
    p.add_argument("--validate-projections", default="preview",
                   help="projections per slice when validating with the real pipeline: a "
                        "number or preview/standard/paper (default preview)")
    p.add_argument("--progress", choices=["bar", "json", "none"], default="bar",
                   help="tqdm bars on stderr, JSON lines on stdout, or nothing")
    _add_compute(p)
    _add_engine(p)
    p.set_defaults(handler=_cmd_train)


def _add_split(p) -> None:
    """Which cases `train` validates on: --n-val, --val-cases or --fold."""
    p.add_argument("--n-val", type=int, default=3,
                   help="cases held out for validation, chosen by --seed (default 3)")
    p.add_argument("--val-cases", nargs="*", default=[],
                   help="explicit validation case ids (instead of a random --n-val)")
    p.add_argument("--fold", default=None, metavar="K",
                   help="nnU-Net's 5-fold cross-validation: train on four fifths of the "
                        "cases and validate on fold K's fifth (0-4), or 'all' to train on "
                        "every case; the folds are seeded with --seed and stored in the "
                        "work folder's splits_final.json (default: one split, --n-val)")


def _add_compute(p) -> None:
    """Where `train` computes: --device, --gpus, and the two flags that only print."""
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                   help="where every step computes: auto (CUDA when torch sees it, else "
                        "mps when present, else cpu; default), cpu, cuda, mps")
    p.add_argument("--gpus", type=int, default=1,
                   help="train each network on N GPUs of this machine, one process per "
                        "GPU (PyTorch DDP; the batch is split across them); needs CUDA")
    p.add_argument("--print-sbatch", action="store_true",
                   help="print a Slurm batch script that runs this training on one node "
                        "with --gpus GPUs (the --slurm-* options), and stop")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (device, precision, networks, iterations, batch "
                        "sizes, steps, the disk and memory estimate, the calibrated time "
                        "per epoch) and stop")
    p.add_argument("--calibration-steps", type=int, default=3, metavar="N",
                   help="--dry-run: timed training steps per network on the device for "
                        "the time estimate (default 3; 0: no estimate)")


def _add_engine(parser) -> None:
    from .cohort_cli import add_engine_arguments, add_slurm_arguments

    group = parser.add_argument_group(
        "per-case passes on Dask (docs/COHORTS.md)",
        "the uncertainty of the training cases and the 3D refinement of the fusion-fit "
        "cases, one task per case; default: in this process. The work folder must be on "
        "a file system the workers share")
    add_engine_arguments(group, "run the passes on a LocalCluster of N worker processes")
    add_slurm_arguments(parser)


@contextmanager
def pass_engine(args, source):
    """(Dask client, torch threads per task) for the chain's per-case passes, from
    --workers/--scheduler/--slurm (the cohort engine); (None, None) without them."""
    if not (args.workers or args.scheduler or args.slurm):
        yield None, None
        return
    from .cohort_cli import cohort_client

    with cohort_client(args, _case_count(source), {"device": "cpu"}) as (client, values):
        yield client, values.get("threads")


def chain_settings(args):
    """ChainSettings from the preset and the explicit options."""
    from ..training.chain_settings import NETWORK_SETTINGS, ChainSettings

    values = json.loads(json.dumps(PRESETS[args.preset]))
    device = compute_device(args)
    values.update(name=args.name or args.out.name, version=args.version,
                  dataset_id=args.dataset_id, dataset_name=args.dataset_name,
                  n_val=args.n_val, val_cases=_val_cases(args), seed=args.seed,
                  threads=args.threads, device=device, gpus=args.gpus,
                  fold=_fold(args), init_from=str(args.init_from or ""))
    if args.estimators is not None:
        values["estimators"] = list(args.estimators)
    for key, net in (("iterations_2d", "net2d"), ("iterations_3d", "net3d")):
        if getattr(args, key) is not None:
            values[net]["iterations"] = getattr(args, key)
    if args.train_projections is not None:
        values["net3d"]["projections"] = args.train_projections
    from ..training.devices import check_precision, cuda_precision

    precision = args.precision or (cuda_precision() if device.startswith("cuda") else None)
    if precision is not None:
        check_precision(precision, device)  # fp16 off CUDA: stopped before any work
    if precision is not None:  # every network's: it is a choice of compute, not of model
        for net in NETWORK_SETTINGS:
            values[net]["precision"] = precision
    if args.lr is not None:
        values["net2d"]["learning_rate"] = values["net3d"]["learning_rate"] = args.lr
    return ChainSettings.from_dict(values)


def _val_cases(args) -> list[str]:
    """--val-cases; with --init-from and neither --val-cases nor --fold, the validation
    cases of the model trained on from (its weights never saw them)."""
    if args.val_cases or args.init_from is None or args.fold is not None:
        return args.val_cases or []
    from ..training.init_from import read_model

    return list(read_model(args.init_from).get("split", {}).get("val", []))


def _fold(args):
    """--fold parsed; explicit --val-cases would contradict the fold's validation cases."""
    from ..training.folds import parse_fold

    fold = parse_fold(args.fold)
    if fold is not None and args.val_cases:
        raise InputError("--fold and --val-cases both choose the validation cases; give one")
    return fold


def compute_device(args) -> str:
    """train --device resolved once, and --gpus checked, before any work."""
    from ..training.devices import resolve_training_device

    device = resolve_training_device(args.device)
    if args.gpus < 1:
        raise InputError(f"--gpus {args.gpus}: give 1 or more")
    if args.gpus > 1 and not args.print_sbatch:
        import torch

        if not device.startswith("cuda") or torch.cuda.device_count() < args.gpus:
            raise InputError(f"--gpus {args.gpus} needs {args.gpus} CUDA GPUs; torch sees "
                             f"{torch.cuda.device_count()} (device {device}); use fewer "
                             "--gpus, or --print-sbatch to run it on a cluster node")
    return device


def _phantom_source(work: Path, count: int) -> Path:
    from ..files.phantom import write_phantom_case

    source = work / "phantoms"
    for seed in range(count):
        if not (source / f"Phantom_{seed:04d}").is_dir():
            write_phantom_case(source, seed=seed)
    return source


def _cmd_train(args, reporter) -> int:
    from ..files.output_safety import work_lock
    from ..training.chain import Chain

    if args.print_sbatch:  # the cluster node resolves the device itself
        from ..training.cluster import sbatch_script

        print(sbatch_script(args))
        return 0
    settings = chain_settings(args)
    from ..training.budget import read_cases
    from ..training.calibrate import startup_lines

    work = args.work or Path(tempfile.gettempdir()) / f"uncertaintyseg-train-{settings.name}"
    if args.dry_run:
        from ..training.cluster import dry_run_plan

        cases = read_cases(args.source, args.phantoms)
        print(dry_run_plan(settings, len(cases.voxels), startup_lines(
            settings, cases, work, args.calibration_steps, refuse=False)))
        return 0
    if args.source is None and not args.phantoms:
        raise SystemExit("train needs SOURCE (a folder of cases) or --phantoms N")
    # Refused here, before any work, when the disk or the memory would not suffice.
    startup_lines(settings, read_cases(args.source, args.phantoms), work)
    # The whole run holds the work folder: two runs on it would write the same
    # checkpoints, npz files and plans at once.
    with work_lock(work):
        source = _phantom_source(work, args.phantoms) if args.phantoms else args.source
        with pass_engine(args, source) as (client, threads):
            chain = Chain(source, work, settings, reporter, client=client, threads=threads,
                          retries=args.retries)
            record = chain.run()
        _bundle(args, chain, record, source, reporter)
    reporter.finished(args.out)
    print(f"model folder: {args.out}")
    return 0


def _case_count(source) -> int:
    """Case folders in `source` (sizes a LocalCluster; no more workers than cases)."""
    return max(1, sum(1 for p in Path(source).iterdir() if p.is_dir()))


def _bundle(args, chain, record: dict, source, reporter) -> None:
    """The model folder, validated with the real pipeline unless --no-validate."""
    from ..training.bundle import write_card, write_model_folder
    from ..training.validate import validate_model

    settings = chain.settings
    write_model_folder(args.out, chain, record)
    if chain.split["val"] and not args.no_validate:
        from ..training.folds import folder_name

        outputs = chain.work / folder_name(VALIDATION_FOLDER, settings.fold)
        record["validation"] = validate_model(args.out, source, chain.split["val"],
                                              args.validate_projections, progress=reporter,
                                              outputs_dir=outputs,
                                              device=settings.device)
        write_model_folder(args.out, chain, record)
    write_card(args.out, command=_reproduce_command(args, source))


def _reproduce_command(args, source) -> str:
    data = f"--phantoms {args.phantoms}" if args.phantoms else str(source)
    extra = "".join(f" --{k.replace('_', '-')} {getattr(args, k)}" for k in
                    ("iterations_2d", "iterations_3d", "train_projections", "lr", "precision",
                     "fold", "init_from")
                    if getattr(args, k) is not None)
    version = f" --version {args.version}" if args.version != "1" else ""
    threads = f" --threads {args.threads}" if args.threads != 1 else ""
    compute = (f" --device {args.device}" if args.device != "auto" else "") + (
        f" --gpus {args.gpus}" if args.gpus != 1 else "")
    estimators = ("" if args.estimators is None else
                  " --estimators" + "".join(f" {m}" for m in args.estimators))
    return (f"uncertaintyseg train {data} --out {args.out.name} --preset {args.preset} "
            f"--name {args.name or args.out.name}{version} --seed {args.seed} "
            f"--n-val {args.n_val}" + extra + threads + compute + estimators)


def register(subparsers) -> None:
    """Add `convert` and `train` to the main CLI's subcommands."""
    _add_convert(subparsers)
    _add_train(subparsers)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="uncertaintyseg")
    register(parser.add_subparsers(dest="command"))
    print("use `python -m uncertaintyseg convert|train ...`")
