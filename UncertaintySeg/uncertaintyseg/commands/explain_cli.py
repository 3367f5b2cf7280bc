"""`uncertaintyseg explain`'s command line: the parser and the handler.

Apart from explain.py so that building the parser (every `--help`, every argument error)
does not import numpy, matplotlib or torch: explain.py is imported only to run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_explain_parser(subparsers) -> argparse.ArgumentParser:
    """Register the `explain` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser(
        "explain", help="teaching figures: each stage of the method on one slice",
        description="Run the pipeline on one case and draw each stage for one axial slice "
                    "(projections, back-projections, P2D and entropy, kernel search at "
                    "overlap 10/40/70 %%, P3D, fused vs 2D-only vs reference), with "
                    "captions in captions.md.")
    p.add_argument("--case", type=Path, required=True, help="case folder (four modalities)")
    p.add_argument("--out", type=Path, required=True, help="folder for the figures")
    p.add_argument("--slice", type=int, default=None,
                   help="axial slice index (default: the largest reference WT area)")
    p.add_argument("--model", default=None,
                   help="bundled model name or model folder (default: predict's, brats-mini; "
                        "the phantom model suits only generated phantoms)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--progress", choices=["bar", "json", "none"], default="bar",
                   help="tqdm bars on stderr (default), JSON lines on stdout, or nothing")
    p.set_defaults(handler=run_explain)
    return p


register = add_explain_parser  # the name cli.py looks for in optional subcommand modules


def run_explain(args, reporter=None) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from ..evaluation.explain import explain_case

    paths = explain_case(args.case, args.out, args.slice, args.model, progress=reporter)
    if reporter is not None:
        reporter.finished(args.out)
    print(f"{len(paths)} files written to {args.out}", file=sys.stderr)
    return 0
