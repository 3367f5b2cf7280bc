"""`uncertaintyseg demo`: a phantom case through the whole pipeline, on any laptop.

Generates a phantom (no data needed), runs `predict` on it with the bundled phantom
model, scores the result against the phantom's known labels, and writes a Slicer scene
bundle when the optional slicer-core wheel is installed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..runtime.progress import human_stream


def _demo_model(requested: str | None) -> str:
    from ..networks.models import available_models

    if requested:
        return requested
    return "phantom" if "phantom" in available_models() else "analytic"


def _write_scene(result_dir: Path, out: Path, stream) -> Path | None:
    try:
        from .scene_cli import write_scene_bundle
    except ImportError:
        return None
    try:
        return write_scene_bundle(result_dir, out, overwrite=True)  # the demo's own folder
    except ImportError:
        print("note: no Slicer scene written (pip install .[scene] adds slicer-core)", file=stream)
        return None


DEMO_MARKER = ".uncertaintyseg-demo"


def _claim_demo_folder(out: Path) -> None:
    """The demo replaces its own earlier output only: a non-empty folder without the
    demo's marker file is refused, so `--out ~/Documents` cannot delete anything."""
    from ..files.io import InputError
    from ..files.output_safety import preflight

    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; give a folder for the demo's --out")
    if out.is_dir() and any(out.iterdir()) and not (out / DEMO_MARKER).exists():
        raise InputError(f"{out}: exists and was not made by `uncertaintyseg demo`; "
                         "choose an empty or new folder for --out")
    preflight(out)  # writable, no file in the path: said now, not as a raw OSError
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).write_text("written by uncertaintyseg demo\n", encoding="utf-8")


def run_demo(args, reporter) -> int:
    """Run the demo into `args.out`: phantom_case/, result/, metrics.json, demo.mrb."""
    from ..files.image_writer import write_text_atomic
    from ..files.io import load_case
    from ..files.label_maps import load_labels
    from ..evaluation.metrics import case_metrics, format_table
    from ..options import from_namespace
    from ..files.phantom import write_phantom_case
    from ..run.predict import predict
    from ..stages.preprocess import brain_mask

    stream = human_stream(args.progress)
    out = Path(args.out).resolve()
    _claim_demo_folder(out)
    case_root = out / "phantom_case"
    shutil.rmtree(case_root, ignore_errors=True)
    case_dir = Path(write_phantom_case(case_root, seed=args.seed))
    print(f"phantom case written to {case_dir}", file=stream)
    values = {**from_namespace(args), "model": _demo_model(args.model)}
    case = load_case(case_dir=case_dir)
    # The demo replaces its own earlier result (the folder is marked as the demo's).
    result_dir, result = predict(case, out / "result", values, overwrite=True,
                                 snapshot=not args.no_snapshot, progress=reporter,
                                 note_stream=stream)
    reference, _ = load_labels(next(case_dir.glob("*seg.nii.gz")))
    # sensitivity, specificity and accuracy over the brain mask, as `metrics` and `evaluate`
    table = case_metrics(reference, result.labels, case.spacing, mask=brain_mask(case.image))
    write_text_atomic(out / "metrics.json", json.dumps(table, indent=2) + "\n")
    scene = _write_scene(result_dir, out / "demo.mrb", stream)
    reporter.finished(result_dir)
    print(format_table(table), file=stream)
    print(f"results: {result_dir}\nsnapshot: {result_dir / 'snapshot.png'}", file=stream)
    if scene:
        print(f"Slicer scene: {scene} (open it in 3D Slicer)", file=stream)
    return 0
