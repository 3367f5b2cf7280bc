"""`uncertaintyseg expected-time`: how long `predict` with these options would take here.

Takes predict's run options (options.OPTIONS) and prints one line; with `--json`, one
JSON object (run.expected_time.estimate's), which the Slicer panel reads before Apply.
"""

from __future__ import annotations

import json

from ..options import add_arguments, from_namespace


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "expected-time", help="how long predict with these options would take here",
        description="The expected seconds of one `predict` on this computer, from the "
                    "model's measured projection curve scaled by a short calibration of "
                    "its 2D network here (a few seconds the first time; cached per "
                    "computer, model, backend and threads).")
    add_arguments(p)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (seconds, projections, threads, backend, "
                        "device, message) instead of the sentence")
    p.set_defaults(handler=_cmd_expected_time)


def _cmd_expected_time(args, reporter) -> int:
    from ..run.expected_time import estimate
    from ..run.predict import load_run_model

    values = from_namespace(args)
    model = load_run_model(values.get("model"), values.get("device") or "auto")
    result = estimate(model, values)
    print(json.dumps(result) if args.json else result["message"])
    return 0
