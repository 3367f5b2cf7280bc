"""`uncertaintyseg scene`: an output folder as a 3D Slicer scene bundle (.mrb).

The one bridge between the pipeline and the Slicer side: it loads `UncertaintySegLib`
(and through it the optional slicer-core wheel) only when the command runs, so the
pipeline itself never imports slicer or vtk.

    uncertaintyseg scene --results OUT/case --out case.mrb [--screenshots DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# INSTALL_HINT is re-exported: it was scene_cli's own name before it moved down a floor.
from ..runtime.slicer_core import INSTALL_HINT, require_slicer_core  # noqa: F401

EXIT_MISSING_SCENE_EXTRA = 3


def add_scene_parser(subparsers) -> argparse.ArgumentParser:
    """Register the `scene` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser(
        "scene", help="write a 3D Slicer scene (.mrb) of an output folder",
        description="Load an output folder (segmentation, uncertainty heatmap, refinement "
                    "boxes) and its input volumes into a Slicer scene and save it as a .mrb "
                    "bundle; optionally render the axial and 3D views to PNG. Needs the "
                    "slicer-core wheel (pip install .[scene]).")
    p.add_argument("--results", type=Path, required=True,
                   help="output folder written by `uncertaintyseg predict --out`")
    p.add_argument("--out", type=Path, required=True, help="scene bundle to write (.mrb)")
    p.add_argument("--inputs", type=Path, default=None,
                   help="folder with the input volumes (default: the paths in report.json)")
    p.add_argument("--region", choices=["ET", "TC", "WT"], default="WT",
                   help="region whose uncertainty is shown as the heatmap (default WT)")
    p.add_argument("--screenshots", type=Path, default=None,
                   help="also write axial.png, 3d.png and overview.png into this folder")
    p.add_argument("--size", type=int, nargs=2, default=(640, 640), metavar=("W", "H"),
                   help="pixel size of each rendered view (default 640 640)")
    p.add_argument("--screenshot-boxes", type=int, default=1, metavar="RANK",
                   help="boxes shown in the screenshots: those ranked up to RANK in each "
                        "region (default 1; 0 hides them; the .mrb always keeps them all)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing .mrb (a scene edited in Slicer is lost)")
    p.add_argument("--allow-missing-inputs", action="store_true",
                   help="write the scene even when input MRIs are not found (moved or "
                        "deleted since the run), with a warning; default: refuse")
    p.set_defaults(handler=lambda args, reporter=None: run_scene(args))
    return p


register = add_scene_parser  # the name cli.py looks for in optional subcommand modules


def write_scene_bundle(results_dir, out, inputs_dir=None, screenshots_dir=None,
                       *, region: str = "WT", size=(640, 640), screenshot_boxes: int = 1,
                       overwrite: bool = False, allow_missing_inputs: bool = False,
                       warn=None) -> Path:
    """Write `out` (.mrb) for `results_dir`; ImportError (with the install hint) when
    slicer-core is missing. An existing `out` is refused unless `overwrite`; input MRIs
    that cannot be found unless `allow_missing_inputs` (then `warn(message)` is called
    for each, default: print to stderr)."""
    from UncertaintySegLib.bundle import check_scene_request

    from ..files.output_safety import check_file_destination

    # Checked before slicer-core is loaded: a refusal must not wait for it.
    check_file_destination(out)
    for message in check_scene_request(results_dir, out, inputs_dir, overwrite,
                                       allow_missing_inputs):
        (warn or (lambda text: print(text, file=sys.stderr)))(message)
    require_slicer_core()
    from UncertaintySegLib.bundle import write_scene_bundle as write

    return write(results_dir, out, inputs_dir=inputs_dir, screenshots_dir=screenshots_dir,
                 region=region, size=tuple(size), screenshot_max_rank=screenshot_boxes,
                 overwrite=overwrite, allow_missing_inputs=allow_missing_inputs)


def run_scene(args) -> int:
    """Run the `scene` subcommand; returns the exit code."""
    try:
        path = write_scene_bundle(args.results, args.out, args.inputs, args.screenshots,
                                  region=args.region, size=args.size,
                                  screenshot_boxes=args.screenshot_boxes,
                                  overwrite=args.overwrite,
                                  allow_missing_inputs=args.allow_missing_inputs)
    except ImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_MISSING_SCENE_EXTRA
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path} (open it in 3D Slicer: File > Add Data, or drag and drop)")
    if args.screenshots is not None:
        print(f"screenshots in {args.screenshots}")
    return 0


def main(argv=None) -> int:
    """Stand-alone entry: `python -m uncertaintyseg.commands.scene_cli --results ... --out ...`."""
    parser = argparse.ArgumentParser(prog="uncertaintyseg")
    add_scene_parser(parser.add_subparsers(dest="command", required=True))
    return run_scene(parser.parse_args(["scene", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
