"""Where the networks run and in what precision: `--device`, `--precision`, and the
`auto` values of `--projections`, `--batch-size` and `--threads` of a run.

`resolve_run` resolves them all, once per run (predict.run, else pipeline.run_case),
and pipeline.build_report records what it returned; `train` resolves its device with
the same `resolve_device` (training.devices).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..runtime.cores import resolve_threads
from ..errors import InputError
from ..options import AUTO, parse_projections
from ..stages.projection import resolve_count

BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
# --batch-size auto, (CPU, CUDA): on one CPU thread a batch of 64 was no faster per view
# than 16 (benchmarks/README.md); a GPU needs large batches to be kept busy.
AUTO_BATCH_SIZE = (16, 128)


def resolve_device(name: str, allow_mps: bool = False) -> torch.device:
    """`auto` picks CUDA when present, else (with `allow_mps`, as `train` asks) Apple's
    mps when present, else the CPU; `cuda` or `mps` without that device is an error.
    `predict` leaves `allow_mps` off: not every nnU-Net operation has an MPS kernel, so
    its `auto` does not choose it (`--device mps` asks for it explicitly)."""
    mps = torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if allow_mps and mps else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but torch sees no CUDA GPU; "
                           "use --device cpu (or auto), or install a CUDA build of torch")
    if name == "mps" and not mps:
        raise InputError("--device mps was asked for but torch sees no Apple GPU (MPS needs "
                         "macOS 12.3+ on Apple silicon); use --device cpu (or auto)")
    return torch.device(name)


def auto_projections(device: torch.device) -> str:
    """What `--projections auto` means (DECISIONS #6): the paper's every-origin setting
    on a GPU, the 16-origin preview on the CPU, where the paper's costs hours."""
    return "paper" if device.type == "cuda" else "preview"


def auto_batch_size(device: torch.device) -> int:
    """What `--batch-size auto` means: views per 2D network call (across slices)."""
    return AUTO_BATCH_SIZE[device.type == "cuda"]


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what `platform` knows): a
    measurement says where it was made."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16 flags).

    Read from /proc/cpuinfo (Linux): torch has no public query for these instructions.
    Elsewhere (macOS, Windows) the answer is False, so `auto` stays fp32.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as handle:
                cpuinfo = handle.read()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool(flags & BF16_FLAGS)


def resolve_precision(precision: str, device: torch.device, native_bf16=None) -> torch.dtype | None:
    """Autocast dtype: `auto` is fp16 on CUDA, bf16 on CPUs with native bf16, else fp32.

    On such a CPU bf16 ran the 2D stage 1.5x faster than fp32 on two held-out BraTS
    cases, with the Dice within 0.0011 and the normalised entropy within 0.003 (mean
    absolute difference over the brain) of fp32 (benchmarks/README.md); on CPUs
    without bf16 instructions it is slower, so `auto` keeps fp32 there.
    """
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        native = cpu_has_native_bf16() if native_bf16 is None else native_bf16
        return torch.bfloat16 if native else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@dataclass(frozen=True)
class Resolved:
    """The concrete values of a run's `auto` settings (`resolve_run`); report.json
    records them (pipeline.build_report)."""

    device: torch.device
    autocast: torch.dtype | None  # None: fp32
    projections: int | str  # a count or a preset name (preview, standard, paper)
    projections_per_slice: int | None  # origins asked per slice; None: every grid origin
    threads: int  # torch and OpenVINO CPU threads
    batch_size_2d: int  # views per 2D network call

    @property
    def precision(self) -> str:
        """fp32, bf16 or fp16."""
        return PRECISION_NAMES[self.autocast]


def resolve_run(settings) -> Resolved:
    """`settings` (a pipeline.Settings, already checked) with every `auto` made
    concrete: the device first, as the precision, projections and batch size follow
    from it; `--threads auto` is the free cores at this moment, so call it once per run.
    Raises InputError for a device that is not there."""
    device = resolve_device(settings.device)
    projections = (auto_projections(device) if settings.projections == AUTO
                   else parse_projections(settings.projections))
    batch = settings.batch_size_2d
    return Resolved(device=device, autocast=resolve_precision(settings.precision, device),
                    projections=projections, projections_per_slice=resolve_count(projections),
                    threads=resolve_threads(settings.threads),
                    batch_size_2d=auto_batch_size(device) if batch == AUTO else int(batch))


def with_model_curve(resolved: Resolved, settings, model) -> tuple[Resolved, dict | None]:
    """`--projections auto` once the model is known: the count its measured curve picks
    for the run's device (`projection_curve.choose`), else `resolve_run`'s fixed rule.
    -> (resolved, report.json's `projections_auto` record; None when a count or a preset
    was asked for). The second half of resolving a run: predict resolves the rest before
    the model is loaded, so that a missing device stops it before any work."""
    from dataclasses import replace

    from ..stages.projection_curve import choose

    if settings.projections != AUTO:
        return resolved, None
    count, record = choose(model, resolved.device.type, resolved.projections)
    return replace(resolved, projections=count,
                   projections_per_slice=resolve_count(count)), record
