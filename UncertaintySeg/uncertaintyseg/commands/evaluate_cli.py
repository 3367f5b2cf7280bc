"""`uncertaintyseg evaluate`: output folders of one or more methods -> the paper's
Table 1, uncertainty quality, lesion-wise metrics, triage, and an HTML report.

    uncertaintyseg evaluate --cases DIR --results DIR [--results NAME=DIR ...] --out DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Register the `evaluate` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser(
        "evaluate", help="score output folders against references (Table 1, uncertainty "
                         "quality, lesion-wise, triage, HTML report)",
        description="Pair each case's reference label map with the output folder(s) of one "
                    "or more methods and write Table 1 (mean ± sd, Wilcoxon p of the fused "
                    "result against each other method, Bonferroni), per-case CSV, box plots, "
                    "uncertainty quality (QU-BraTS AUCs, AUROC, also beyond 2 mm of the "
                    "predicted border, ECE, Pearson, RMSD), lesion-wise metrics and triage, "
                    "and report.html. Resumable: a case already scored is not scored again. "
                    "See docs/EVALUATION.md.")
    p.add_argument("--cases", type=Path, required=True,
                   help="folder of case folders (images and *_seg.nii.gz reference)")
    p.add_argument("--results", action="append", metavar="[NAME=]DIR",
                   help="folder of per-case results: what `predict --cases` writes (CASE/ "
                        "folders), `predict --out` folders of any name (paired by their "
                        "report.json), or CASE.nii.gz label maps; repeat for more methods. The "
                        "first gives the fused method and its 2D-only twin (required unless "
                        "--projection-study)")
    p.add_argument("--out", type=Path, required=True, help="folder for the tables and report")
    p.add_argument("--no-uncertainty", action="store_true",
                   help="skip the uncertainty-quality measures")
    p.add_argument("--lesionwise", action="store_true",
                   help="also BraTS lesion-wise metrics (2023 and 2024+ definitions; slower)")
    p.add_argument("--correction", action="store_true",
                   help="also the correction-efficiency study: reference pasted into the "
                        "top-k boxes vs random boxes (50 draws)")
    p.add_argument("--kernel-study", action="store_true",
                   help="also redo kernel search, 3D refinement and fusion for overlaps "
                        "10/40/70 %% and cube sides 16/32/64 mm (the paper's Figure 3; slow)")
    p.add_argument("--qubrats", action="store_true",
                   help="also write the uncertainty maps in the QU-BraTS submission format "
                        "(uint8 0-100 per region) under OUT/qubrats/METHOD")
    p.add_argument("--calibrate-triage", type=Path, default=None, metavar="MODEL_DIR",
                   help="choose the triage threshold on these cases and store it in "
                        "MODEL_DIR/model.json (triage.threshold)")
    p.add_argument("--model-card", type=Path, default=None, metavar="MODEL_DIR",
                   help="store every method's mean Dice, HD95 and error AUROC, and the "
                        "first method minus each other, in MODEL_DIR/model.json and its "
                        "MODEL_CARD.md (the card's estimator table)")
    study = p.add_argument_group(
        "projection study (docs/EVALUATION.md)", "predict the model's validation cases "
        "(model.json split.val, under --cases) with 2, 4, 8, 16 and 32 projections per "
        "slice; the curve goes into model.json, its card and --projections auto")
    study.add_argument("--projection-study", type=Path, default=None, metavar="MODEL_DIR",
                       help="run (or resume: OUT/projection_study keeps every case and "
                            "count) the study of this model folder")
    study.add_argument("--device", default="auto",
                       help="the study's device (predict's --device): the curve is stored "
                            "for its type, cpu or cuda")
    study.add_argument("--threads", default="auto",
                       help="the study's CPU threads (predict's --threads)")
    p.add_argument("--explain-case", type=Path, default=None, metavar="CASE_DIR",
                   help="add `explain`'s teaching figures of this case to the report")
    p.add_argument("--explain-model", default=None,
                   help="model for --explain-case (default: predict's, brats-mini)")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--progress", choices=["bar", "json", "none"], default="bar",
                   help="tqdm bars on stderr, JSON lines on stdout, or nothing")
    dask = p.add_argument_group(
        "Dask (docs/COHORTS.md)", "one task per case on the cohort engine of predict "
        "--cases; default: the cases in turn in this process")
    dask.add_argument("--workers", type=int, default=None,
                      help="score on a LocalCluster of N worker processes")
    dask.add_argument("--scheduler", metavar="ADDRESS",
                      help="score on a running Dask scheduler, e.g. tcp://head:8786")
    dask.add_argument("--retries", type=int, default=2,
                      help="times a case is retried after a lost worker (default 2)")
    # cohort_cli.cohort_client also serves predict's --slurm; scoring is light enough
    # for a LocalCluster or a running scheduler, so evaluate does not offer it.
    p.set_defaults(handler=run_evaluate, slurm=False)
    return p


register = add_evaluate_parser  # the name cli.py looks for in optional subcommand modules


def run_evaluate(args, reporter=None) -> int:
    """Run the `evaluate` subcommand; returns the exit code."""
    from ..errors import InputError
    from ..evaluation import job
    from ..evaluation.pairing import parse_results

    start = time.perf_counter()
    if _projection_study(args, reporter):
        return 0
    parts = {"voxel"} | (set() if args.no_uncertainty else {"uncertainty"})
    if args.lesionwise:
        parts.add("lesionwise")
    if args.correction:
        parts.add("correction")
    methods = parse_results(args.results)
    for flag, folder in (("--calibrate-triage", args.calibrate_triage),
                         ("--model-card", args.model_card)):
        if folder is not None and not (folder / "model.json").is_file():
            # said before the scoring, not after it
            raise InputError(f"{folder / 'model.json'}: not found; {flag} takes a model "
                             "folder made by `uncertaintyseg train`")
    options = dict(qubrats=args.qubrats, calibrate_model=args.calibrate_triage,
                   html=not args.no_report, progress=reporter, kernel_study=args.kernel_study,
                   explain_case=args.explain_case, explain_model=args.explain_model,
                   retries=args.retries, model_card=args.model_card)
    if args.workers is None and not args.scheduler:
        summary = job.run(args.cases, methods, args.out, parts, **options)
    else:
        from .cohort_cli import cohort_client
        from ..evaluation.pairing import find_cases

        with cohort_client(args, len(find_cases(args.cases)), {"device": "cpu"}) as (client, _):
            summary = job.run(args.cases, methods, args.out, parts, client=client, **options)
    if reporter is not None:
        reporter.close()
    print(summary["table1_markdown"], file=sys.stderr if _json(reporter) else sys.stdout)
    _print_problems(summary["problems"], args.out)
    _print_model_writes(args, summary)
    print(f"{summary['scored']} pair(s) scored, {summary['reused']} reused from the cache, "
          f"{time.perf_counter() - start:.1f} s; results in {args.out}", file=sys.stderr)
    if _json(reporter):
        reporter.finished(args.out)
    return 0 if summary["scored"] + summary["reused"] else 2


def _projection_study(args, reporter) -> bool:
    """`--projection-study`: the curve into the model folder, its table printed; True
    when that was the whole command (no --results to score)."""
    from ..errors import InputError
    from ..evaluation.projection_card import curve_lines
    from ..evaluation.projection_study import write_projection_study

    if args.projection_study is None:
        if not args.results:
            raise InputError("--results: give at least one folder of results to score (or "
                             "--projection-study MODEL_DIR, which makes its own)")
        return False
    if not (args.projection_study / "model.json").is_file():
        raise InputError(f"{args.projection_study / 'model.json'}: not found; "
                         "--projection-study takes a model folder made by "
                         "`uncertaintyseg train`")
    block = write_projection_study(args.projection_study, args.cases, args.out,
                                   values={"device": args.device, "threads": args.threads},
                                   progress=reporter)
    print("\n".join(curve_lines(block)), file=sys.stderr if _json(reporter) else sys.stdout)
    print(f"projection curve written to {args.projection_study / 'model.json'} and "
          f"{args.projection_study / 'MODEL_CARD.md'}", file=sys.stderr)
    if args.results:
        return False
    if reporter is not None:
        reporter.close()
    if _json(reporter):
        reporter.finished(args.out)
    return True


def _print_problems(lines: list[str], out: Path, shown: int = 5) -> None:
    """The first few problems (the cases not paired come as one line), the rest counted:
    problems.txt has them all."""
    for line in lines[:shown]:
        print(f"problem: {line}", file=sys.stderr)
    if len(lines) > shown:
        print(f"... and {len(lines) - shown} more in {out / 'problems.txt'}", file=sys.stderr)


def _print_model_writes(args, summary: dict) -> None:
    """What --calibrate-triage and --model-card wrote into the model folder."""
    if args.calibrate_triage is not None:
        stored = summary["triage"].get("calibrated")
        path = args.calibrate_triage / "model.json"
        print(f"triage threshold {stored['threshold']} written to {path}" if stored else
              f"no case had a triage score: {path} left unchanged", file=sys.stderr)
    if args.model_card is not None:
        print(f"estimator table written to {args.model_card / 'model.json'} and "
              f"{args.model_card / 'MODEL_CARD.md'}", file=sys.stderr)


def _json(reporter) -> bool:
    return reporter is not None and getattr(reporter, "mode", "") == "json"


if __name__ == "__main__":  # pragma: no cover - run through `python -m uncertaintyseg`
    from .cli import main

    sys.exit(main(["evaluate", *sys.argv[1:]]))

