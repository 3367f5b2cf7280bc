"""The `uncertaintyseg` command line: predict, metrics, phantom, demo (+ scene, convert, train).

Every subcommand is a thin wrapper over the stage functions; `--progress json` prints
one JSON object per line (stage, done, total, message) for the Slicer module.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from .. import __version__
from . import cohort_cli
from ..errors import InputError
from ..options import add_arguments, from_namespace
from ..runtime.progress import ProgressReporter, human_stream
from uncertaintyseg_shared.quality import QUALITY_KEY, quality_line

EXIT_INPUT_ERROR = 2
EXIT_CANCELLED = 130


def _add_run_args(parser: argparse.ArgumentParser, help_texts=None) -> None:
    # Every run parameter comes from options.OPTIONS (names, flags, ranges, help).
    add_arguments(parser, help_texts=help_texts)
    parser.add_argument("--progress", choices=["bar", "json", "none"], default="bar",
                        help="tqdm bars on stderr, JSON lines on stdout, or nothing")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing, non-empty output folder")
    parser.add_argument("--no-snapshot", action="store_true", help="skip snapshot.png")


def _add_predict(subparsers) -> None:
    p = subparsers.add_parser("predict", help="segment one case and write the output folder",
                              description="Segment one case (4 co-registered MRI volumes) "
                                          "and write the output contract into --out.")
    p.add_argument("--case", type=Path, help="case folder with *_flair/_t1/_t1ce/_t2 or "
                                             "-t2f/-t1n/-t1c/-t2w NIfTI files, or one "
                                             "DICOM series sub-folder per modality "
                                             "(flair/ t1/ t1ce/ t2/)")
    for name in ("flair", "t1", "t1ce", "t2"):
        p.add_argument(f"--{name}", type=Path,
                       help=f"{name.upper()} file or DICOM series folder (instead of --case)")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder (created atomically); with --cases, the folder of "
                        "the cases' output folders and the cohort table")
    _add_run_args(p)
    p.add_argument("--force", action="store_true",
                   help="run a case that does not look prepared as the model expects "
                        "(skull-stripped, co-registered MRI)")
    cohort_cli.add_arguments(p)
    p.set_defaults(handler=_cmd_predict)


def _add_metrics(subparsers) -> None:
    p = subparsers.add_parser("metrics", help="Dice, HD95, sensitivity, specificity, accuracy",
                              description="Compare a predicted label map with a reference, "
                                          "per region (ET, TC, WT). HD95 in mm.")
    p.add_argument("--ref", type=Path, required=True, help="reference label map (NIfTI)")
    p.add_argument("--pred", type=Path, required=True, help="predicted label map (NIfTI)")
    p.add_argument("--case", type=Path, default=None,
                   help="case folder whose images give the brain mask, the voxel set of "
                        "sensitivity, specificity and accuracy, as `evaluate` uses (default: "
                        "--ref's folder when it holds the four images; else the whole grid)")
    p.add_argument("--json", type=Path, help="also write the table as JSON here")
    p.add_argument("--csv", type=Path, help="also write the table as CSV here")
    p.add_argument("--empty-hd95", type=float, default=373.13,
                   help="HD95 in mm when exactly one mask is empty (default 373.13)")
    p.set_defaults(handler=_cmd_metrics)


def _add_phantom(subparsers) -> None:
    p = subparsers.add_parser("phantom", help="write a synthetic glioma phantom case folder")
    p.add_argument("--out", type=Path, required=True, help="folder to write the case into")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--spacing", type=float, nargs=3, metavar=("Z", "Y", "X"),
                   default=(1.0, 1.0, 1.0), help="voxel spacing in mm (default 1 1 1)")
    p.add_argument("--naming", choices=["brats2018", "brats2023"], default="brats2018",
                   help="file names and ET label of the written case")
    p.set_defaults(handler=_cmd_phantom)


def _add_demo(subparsers) -> None:
    p = subparsers.add_parser("demo", help="generate a phantom and run the whole pipeline on it",
                              description="Generate a phantom case, run the pipeline with the "
                                          "bundled phantom model, score it, write a snapshot "
                                          "(and a Slicer scene when slicer-core is installed).")
    p.add_argument("--out", type=Path, default=Path("uncertaintyseg-demo"),
                   help="demo folder (default ./uncertaintyseg-demo)")
    # Seeds 0-11 trained the bundled phantom model: the demo shows an unseen phantom.
    p.add_argument("--seed", type=int, default=100, help="phantom seed (default 100)")
    _add_run_args(p, help_texts={"model": "bundled model name or model folder (default: "
                                           "the bundled phantom model, which the demo's "
                                           "phantoms suit)"})
    p.set_defaults(handler=_cmd_demo, overwrite=True)


def _optional_subcommands(subparsers) -> None:
    # scene/convert/train live in their own modules; each registers itself if present.
    from importlib import import_module

    for module_name in ("scene_cli", "train_cli", "evaluate_cli", "explain_cli",
                        "expected_time_cli"):
        try:
            module = import_module(f"{__package__}.{module_name}")
        except ModuleNotFoundError as error:
            if error.name and error.name.startswith(__package__):
                continue
            raise
        module.register(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uncertaintyseg",
        description="Uncertainty-guided glioma segmentation: 2D nnU-Net on spherical "
                    "projections, entropy uncertainty, 3D refinement of the most uncertain "
                    "cubes, sigmoid fusion.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--list-models", action="store_true", help="list the bundled models")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_predict, _add_metrics, _add_phantom, _add_demo):
        add(subparsers)
    _optional_subcommands(subparsers)
    return parser


def main(argv=None) -> int:
    from ..runtime.allocator import tune_allocator
    from ..runtime.signals import install, restore

    tune_allocator()  # before the networks' first buffers: why in allocator.py
    previous = install()  # SIGTERM/SIGHUP take Ctrl-C's path: clean-up, message, exit 130
    try:
        return _main(argv)
    finally:
        restore(previous)  # a caller's own process (a test, a notebook) gets its own back


def _main(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_models:
        from ..networks.models import available_models

        print("\n".join(available_models()))
        return 0
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_INPUT_ERROR
    reporter = ProgressReporter(getattr(args, "progress", "none"))
    try:
        return args.handler(args, reporter) or 0
    except KeyboardInterrupt:
        written = getattr(args, "written", None)
        message = (f"cancelled after the results were written to {written}" if written
                   else "cancelled; no output was written")
        reporter.error(message)
        print(message, file=sys.stderr)
        return EXIT_CANCELLED
    except (InputError, FileNotFoundError) as error:
        return _fail(reporter, f"error: {error}", args.debug, EXIT_INPUT_ERROR)
    except Exception as error:  # noqa: BLE001 - the top level turns any failure into a message
        return _fail(reporter, f"error: {type(error).__name__}: {error}", args.debug, 1)


def _fail(reporter: ProgressReporter, message: str, debug: bool, code: int) -> int:
    reporter.error(message)
    if debug:
        traceback.print_exc()
    print(message, file=sys.stderr)
    return code


def _case_from_args(args):
    """The case folder, or the four files by modality, as `predict` loads them."""
    explicit = {m: getattr(args, m) for m in ("flair", "t1", "t1ce", "t2")}
    given = [m for m, p in explicit.items() if p is not None]
    if args.case is not None and given:
        raise InputError("give either --case DIR or the four files --flair --t1 --t1ce --t2, not both")
    if args.case is not None:
        return args.case
    if len(given) != 4:
        missing = ", ".join(f"--{m}" for m in explicit if explicit[m] is None)
        raise InputError(f"missing input: give --case DIR, --cases DIR_OR_LIST, or all four "
                         f"files (missing {missing})")
    return explicit


def run_predict(args, reporter, case=None):
    """Load (or take) a case, run it, write the contract; returns (out_dir, result)."""
    from ..run.predict import predict

    case = case if case is not None else _case_from_args(args)
    out_dir, result = predict(case, args.out, from_namespace(args), overwrite=args.overwrite,
                              snapshot=not args.no_snapshot, progress=reporter,
                              note_stream=human_stream(args.progress),
                              force=getattr(args, "force", False), keep_maps=False)
    args.written = out_dir
    return out_dir, result


def _cmd_predict(args, reporter) -> int:
    if args.cases is not None:
        if args.case is not None:
            raise InputError("give either --case DIR (one case) or --cases (a cohort), not both")
        return cohort_cli.run_command(args, reporter, from_namespace(args))
    out_dir, result = run_predict(args, reporter)
    reporter.finished(out_dir)
    _print_summary(result.report, out_dir, human_stream(args.progress))
    return 0


def _print_summary(report: dict, out_dir, stream) -> None:
    volumes = ", ".join(f"{r} {v:.1f} ml" for r, v in report["volumes_ml"].items())
    boxes = ", ".join(f"{r} {n}" for r, n in report["boxes_per_region"].items())
    triage = report["triage"]
    print(f"wrote {out_dir}\n  volumes: {volumes}\n  refined boxes: {boxes}\n"
          f"  triage: {triage['flag']} (score {triage['score']:.3f}) - {triage['hint']}\n"
          f"  {quality_line(report.get(QUALITY_KEY)) or 'quality: not estimated'}\n"
          f"  time: {report['timings_s']['total']:.1f} s", file=stream)
    note = report["settings"].get("fits_note")
    if note:
        print(f"  note: {note}", file=stream)


def _cmd_metrics(args, reporter) -> int:
    from ..files.image_writer import write_text_atomic
    from ..files.io import read_image
    from ..files.label_maps import load_labels
    from ..evaluation.metrics import CSV_FIELDS, case_metrics, format_table, to_csv_rows
    from ..files.output_safety import check_file_destination

    for table_file in (t for t in (args.json, args.csv) if t is not None):
        check_file_destination(table_file)  # before the metrics, not after
    reference = read_image(args.ref)  # checks that it exists before SimpleITK reads it
    ref, _ = load_labels(args.ref)
    pred, _ = load_labels(args.pred, reference=reference,
                          reference_name=f"the reference {args.ref}")
    brain, voxel_set = _brain_voxels(args.case, args.ref, reference)
    spacing = tuple(reversed(reference.GetSpacing()))
    table = case_metrics(ref, pred, spacing, empty_hd95=args.empty_hd95, mask=brain)
    print(format_table(table))
    print(f"sensitivity, specificity and accuracy over {voxel_set}")
    if args.json:
        write_text_atomic(args.json, json.dumps(table, indent=2) + "\n")
    if args.csv:
        import csv
        import io

        rows = to_csv_rows({args.pred.name: table})
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(args.csv, text.getvalue())
    return 0


def _brain_voxels(case_dir, ref_path: Path, reference):
    """(mask, words) of the voxel set for sensitivity, specificity and accuracy: the
    brain mask of the case's images (preprocess.brain_mask, as `evaluate`'s
    pairing.load_reference computes it), or (None, ...) for the whole grid."""
    from ..files.io import check_same_grid, find_case_files, load_case
    from ..stages.preprocess import brain_mask

    if case_dir is None:
        try:
            find_case_files(ref_path.parent)
        except InputError:
            return None, ("the whole grid (no case images beside --ref; `evaluate` uses the "
                          "brain mask: give --case)")
        case_dir = ref_path.parent
    case = load_case(case_dir=case_dir)
    check_same_grid(case.reference, f"the images of {case_dir}", reference, ref_path)
    return brain_mask(case.image), f"the brain mask of {case_dir}'s images (as evaluate)"


def _cmd_phantom(args, reporter) -> int:
    from ..files.output_safety import preflight
    from ..files.phantom import write_phantom_case

    preflight(args.out)  # writable, no file in the path: said now, not as a raw OSError
    folder = write_phantom_case(args.out, seed=args.seed, spacing=tuple(args.spacing),
                                naming=args.naming)
    print(f"wrote phantom case {folder}")
    return 0


def _cmd_demo(args, reporter) -> int:
    from .demo import run_demo

    return run_demo(args, reporter)


if __name__ == "__main__":
    sys.exit(main())
