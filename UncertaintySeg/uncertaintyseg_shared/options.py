"""Every user-facing run parameter of `predict`, described once.

One `Option` per parameter: its name (the `pipeline.Settings` field), CLI flag, type,
default, allowed values or range, unit and help. From this table come the argparse
options (`add_arguments`), the checks made before any work (`check`, used by `Settings`),
the Slicer parameter node's `Choice` / `WithinRange` bounds, and the command line the
Slicer module sends (`to_argv`). Imports only the standard library (and the project's
`errors` and `contract_names`, which import nothing else), so the Slicer module
and its Lib can use it before torch or SimpleITK are installed in Slicer's Python.

A default of None means "the model's own value" (model.json) or, where a model has none,
the pipeline's: such a value is sent on a command line only when the user set it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Mapping

from .contract_names import DEFAULT_OUTPUTS, OUTPUT_SETS
from .errors import InputError

# Origins per slice of each preset; None = every 8-px grid origin in the brain (design 4.1).
PROJECTION_PRESETS = {"preview": 16, "standard": 128, "paper": None}
# "auto" is resolved once the model is loaded (devices.with_model_curve): its
# measured curve for the device (projection_curve), else devices.auto_projections.
AUTO = "auto"
MAX_PROJECTIONS = 4096
# Estimators of `predict --method` (estimators.ESTIMATORS says what each does).
METHODS = ("hybrid", "projection-2d", "tta-2d", "lsu-2d", "mc-dropout", "uncertainty-head",
           "full-3d")
# The methods that need a network of their own, trained by `train --estimators`, and its
# name in the model folder (models.EXTRA_NETWORKS); here so that the CLI needs no torch.
TRAINED_NETWORKS = {"mc-dropout": "2d_dropout", "uncertainty-head": "2d_head",
                    "full-3d": "3d_full"}
# `--uncertainty-map`: the voxel maps of the view-based methods (uncertainty.UNCERTAINTY_MAPS
# makes each; docs/EVALUATION.md, "Beyond the border", measured them).
UNCERTAINTY_MAPS = ("binned", "mean-entropy", "max", "error-probability")


@dataclass(frozen=True)
class Option:
    """One run parameter; `low`/`high` bound numbers (inclusive), `choices` strings."""

    name: str
    flag: str
    kind: type
    default: object
    help: str
    unit: str = ""
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    nargs: int | None = None
    metavar: tuple | str | None = None
    group: str = "run"

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high), as Slicer's `WithinRange` takes them."""
        return self.low, self.high

    def rule(self) -> str:
        """The allowed values in words, for help texts and error messages."""
        unit = f" {self.unit}" if self.unit else ""
        if self.choices and self.low is not None:
            return (f"a number in [{self.low:g}, {self.high:g}]{unit} or one of "
                    + ", ".join(self.choices))
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return f"in [{self.low:g}, {self.high:g}]{unit}"


_PROJECTIONS_HELP = (
    "spherical projections (origins) per slice: a number (1-4096), or preview (16), "
    "standard (128), paper (every 8-px grid origin in the brain, up to 1024 per 256x256 "
    "slice), auto (the model's measured curve for the device: the smallest count within "
    "0.005 of the best Dice and error AUROC; without one, preview on CPU, paper on GPU)")

_OPTIONS = (
    Option("method", "--method", str, "hybrid",
           "uncertainty estimator: hybrid (the paper: spherical projections, 3D refinement "
           "of the most uncertain cubes, fusion), projection-2d (its 2D stage alone), "
           "lsu-2d (linear scaling instead of the spherical projection), tta-2d (nnU-Net's "
           "flip test-time augmentation), mc-dropout (the 2D network with dropout on, one "
           "pass per projection count), uncertainty-head (the BraTS 2023 uncertainty-aware "
           "nnU-Net, one pass), full-3d (a whole-crop 3D nnU-Net, sliding window, mirror "
           "variance); the last three need a model trained with them (train --estimators)",
           choices=METHODS),
    Option("model", "--model", str, None,
           "bundled model name (see --list-models) or a model folder made by "
           "`uncertaintyseg train` (default: brats-mini)"),
    Option("device", "--device", str, "auto",
           "where the networks run (auto: CUDA if present, else the CPU; mps: Apple GPU)",
           choices=("auto", "cpu", "cuda", "mps")),
    Option("precision", "--precision", str, "auto",
           "autocast precision (auto: fp16 on CUDA; on the CPU bf16 where it has native "
           "bf16 instructions, AVX512-BF16 or AMX, else fp32)",
           choices=("auto", "fp32", "bf16", "fp16")),
    Option("backend", "--backend", str, AUTO,
           "what runs the networks on the CPU: torch, openvino (the networks exported once "
           "per model to OpenVINO and cached; 1.7-2x faster on an AVX2 CPU at the same "
           "Dice and AUROC; needs the cpu extra: `pip install openvino onnx`), or auto "
           "(openvino on the CPU when it is installed, else torch; torch on CUDA)",
           choices=(AUTO, "torch", "openvino")),
    Option("threads", "--threads", str, AUTO,
           "CPU threads for torch and OpenVINO: a number (1-512), or auto (the free cores: "
           "the CPUs this process may use less the 1-minute load, at least 1)",
           choices=(AUTO,), low=1, high=512),
    Option("postprocess", "--no-postprocess", bool, True,
           "keep small tumour components (design 4.6), to measure the method's own effect"),
    Option("min_component_fraction", "--min-component-fraction", float, None,
           "drop whole-tumour components smaller than this fraction of the largest "
           "(design 4.6; default: the model's, chosen in training; 1 keeps only the largest)",
           low=0.0, high=1.0),
    Option("label_convention", "--label-convention", str, None,
           "ET label written: brats2018 (ET = 4) or brats2023 (ET = 3); default: as the "
           "input's file names", choices=("brats2018", "brats2023")),
    Option("outputs", "--outputs", str, DEFAULT_OUTPUTS,
           "files written: minimal (segmentation, fused probabilities, uncertainty, boxes, "
           "report, snapshot: the least memory and disk, for large volumes), standard (also "
           "P2D and P3D), all (also the raw uncertainty); docs/OUTPUT-CONTRACT.md",
           choices=tuple(OUTPUT_SETS)),
    Option("projections", "--projections", str, AUTO, _PROJECTIONS_HELP,
           choices=(AUTO, *PROJECTION_PRESETS), low=1, high=MAX_PROJECTIONS,
           group="2D projections (design 4.1-4.2)"),
    Option("radius", "--radius", float, None,
           "projection sphere radius (default: the model's, else half the slice's larger "
           "side; a very large radius makes every projection the identity)",
           unit="pixels", low=4.0, high=2048.0, group="2D projections (design 4.1-4.2)"),
    Option("batch_size_2d", "--batch-size", str, AUTO,
           "projected slices per 2D network call, taken across slices: a number (1-1024), "
           "or auto (16 on the CPU, where a larger batch is not faster; 128 on CUDA, to "
           "keep the GPU busy)", choices=(AUTO,), low=1, high=1024,
           group="2D projections (design 4.1-4.2)"),
    Option("batch_size_3d", "--batch-size-3d", int, 2, "cubes per 3D network call",
           low=1, high=1024, group="2D projections (design 4.1-4.2)"),
    Option("tile_step", "--tile-step", float, 0.5,
           "full-3d's sliding-window step as a fraction of the patch (nnU-Net's step_size; "
           "1 = tiles that only touch: about 3x fewer tiles on a BraTS brain crop, faster "
           "and less accurate at the tiles' edges)", low=0.1, high=1.0,
           group="full-3d (3D-only baseline)"),
    Option("uncertainty_map", "--uncertainty-map", str, "error-probability",
           "the voxel uncertainty map of the view-based methods (the heatmap, "
           "uncertainty.nii.gz; the kernel search stays on binned), each in [0, 1]: "
           "error-probability (the probability that the voxel's label is wrong, from "
           "its distance to the predicted border and the mean-entropy, fitted on the "
           "model's validation cases: it ranked brats-mini's errors best, "
           "docs/EVALUATION.md; mean-entropy when the model has no fit), mean-entropy "
           "(the binary entropy of the mean probability P2D, / ln 2), binned (the paper's "
           "entropy of the views' probabilities in 100 bins, / ln min(N, 100)), max (the "
           "larger of those two); uncertainty-head and full-3d keep their own",
           choices=UNCERTAINTY_MAPS, group="2D projections (design 4.1-4.2)"),
    Option("kernel_mm", "--kernel-mm", float, None,
           "cube side per region (default: the model's, 32 32 64 for BraTS)", unit="mm",
           low=4.0, high=256.0, nargs=3, metavar=("ET", "TC", "WT"),
           group="kernel search (design 4.3)"),
    Option("max_overlap", "--max-overlap", float, 0.4,
           "largest overlap of a new cube with a taken one, as a fraction of the cube's "
           "volume", low=0.0, high=1.0, group="kernel search (design 4.3)"),
    Option("min_score_fraction", "--min-score-fraction", float, 0.1,
           "stop when a cube's summed uncertainty falls under this fraction of the "
           "region's first cube", low=0.0, high=1.0, group="kernel search (design 4.3)"),
    Option("max_boxes", "--max-boxes", int, 8, "most cubes per region", low=0, high=64,
           group="kernel search (design 4.3)"),
)
OPTIONS: dict[str, Option] = {option.name: option for option in _OPTIONS}
# Where the networks run, for predict (this table) and train (its own --device flag).
DEVICE_CHOICES = OPTIONS["device"].choices


def _counts_or_names(option: Option) -> bool:
    """An option that takes a number in its range or one of its names (projections,
    threads): argparse passes the text through and `check` parses it."""
    return bool(option.choices) and option.low is not None


def parse_projections(text) -> int | str:
    """A preset name (or auto) as it is, else the count as an int; InputError otherwise."""
    return parse_count("projections", text)


def parse_count(name: str, text) -> int | str:
    """For an option with names and a range: a name as it is, else the number as an
    int in the range; InputError otherwise."""
    option = OPTIONS[name]
    if isinstance(text, str) and text in option.choices:
        return text
    try:
        count = int(text)
    except (TypeError, ValueError):
        raise InputError(f"{option.flag} {text}: use a number ({option.low:g}-"
                         f"{option.high:g}) or one of {', '.join(option.choices)}") from None
    return _check_range(option, count)


def _check_range(option: Option, value):
    if not option.low <= value <= option.high:
        raise InputError(f"{option.flag} {value:g}: must be {option.rule()}")
    return value


def check(name: str, value):
    """`value` if allowed for the option `name` (None always is: "the default");
    otherwise an InputError in the user's words, naming the flag and the range."""
    option = OPTIONS[name]
    if value is None or option.kind is bool:
        return value
    if _counts_or_names(option):
        return parse_count(name, value)
    if option.choices:
        if value not in option.choices:
            raise InputError(f"{option.flag} {value}: must be {option.rule()}")
        return value
    if option.low is None:  # free text (a model name or folder): checked where it is used
        return value
    values = value if option.nargs else (value,)
    if option.nargs and len(values) != option.nargs:
        raise InputError(f"{option.flag}: give {option.nargs} values "
                         f"({' '.join(option.metavar or ())})")
    for item in values:
        _check_range(option, item)
    return value


def _help(option: Option) -> str:
    text = option.help
    if option.low is not None and not _counts_or_names(option):
        text += f"; {option.rule()}"
    elif option.unit:
        text += f" ({option.unit})"
    if option.default is not None and option.kind is not bool:
        text += f". Default: {option.default}"
    return text


def add_arguments(parser: argparse.ArgumentParser, names=None, help_texts=None) -> None:
    """Add the options `names` (default: all) to `parser`, grouped as in the help;
    `help_texts` replaces the help of some (a subcommand with other defaults).

    Types are argparse's plain conversions; the ranges are checked by `check` (through
    `Settings`) so that library callers get the same messages as the command line.
    """
    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in (OPTIONS[n] for n in (names or OPTIONS)):
        target = parser if option.group == "run" else groups.setdefault(
            option.group, parser.add_argument_group(option.group))
        text = (help_texts or {}).get(option.name) or _help(option)
        if option.kind is bool:
            target.add_argument(option.flag, dest=option.name, action="store_false",
                                help=text)
            continue
        extra = ({"choices": option.choices}
                 if option.choices and not _counts_or_names(option) else {})
        target.add_argument(option.flag, dest=option.name, default=option.default,
                            type=option.kind, nargs=option.nargs,
                            metavar=option.metavar or option.flag[2:].upper().replace("-", "_"),
                            help=text, **extra)


def from_namespace(args: argparse.Namespace) -> dict:
    """The option values of parsed arguments, by option name (absent ones skipped)."""
    values = {name: getattr(args, name) for name in OPTIONS if hasattr(args, name)}
    if values.get("kernel_mm") is not None:
        values["kernel_mm"] = tuple(values["kernel_mm"])
    return values


def _format(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def to_argv(values: Mapping[str, object]) -> list[str]:
    """Command-line arguments for the values the user set: None and defaults are left
    out, so the pipeline (and the model's own values) decide the rest."""
    argv: list[str] = []
    for name, value in values.items():
        option = OPTIONS[name]
        if value is None or value == option.default:
            continue
        check(name, value)
        if option.kind is bool:
            argv.append(option.flag)
        elif option.nargs:
            argv += [option.flag, *(_format(v) for v in value)]
        else:
            argv += [option.flag, _format(value)]
    return argv
