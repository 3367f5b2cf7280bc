"""The one prediction entry point: `cli predict`, `demo` and training validation call it.

`run` segments a loaded case with option values (`options.OPTIONS` names) and returns
the CaseResult; `predict` also checks the output folder first and writes the output
contract. The values are resolved once here (`devices.resolve_run`: device, precision,
`auto` projections, threads and batch size; the model), and only resolved values go down
to the stages.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping

from ..errors import InputError
from ..options import OPTIONS

DEFAULT_MODEL = "brats-mini"


def settings_from(values: Mapping[str, object]):
    """`pipeline.Settings` from option values; None means "the default" and is left out.

    Raises InputError, naming the flag, for a value out of its range: before any work.
    """
    from .pipeline import OPTION_FIELDS, Settings

    unknown = set(values) - set(OPTIONS)
    if unknown:
        raise InputError(f"unknown run option(s): {', '.join(sorted(unknown))}")
    fields = {name: values[name] for name in OPTION_FIELDS
              if values.get(name) is not None}
    return Settings(**fields)


def default_model_name() -> str:
    """brats-mini when it is bundled, else the untrained analytic model."""
    from ..networks.models import available_models

    return DEFAULT_MODEL if DEFAULT_MODEL in available_models() else "analytic"


def load_run_model(name: str | None, device: str, note_stream=None):
    """The model of a run, on the run's device; says so when it is untrained."""
    from ..networks.models import load_model
    from ..networks.devices import resolve_device

    model = load_model(name or default_model_name(), device=str(resolve_device(device)))
    if not model.trained:
        print(f"note: model '{model.name}' is untrained: {model.description}",
              file=note_stream or sys.stderr)
    return model


def load_case_from(case):
    """A `Case` as it is; a case folder (Path/str) or a {modality: path} mapping loaded."""
    from ..files.io import Case, load_case

    if isinstance(case, Case):
        return case
    if isinstance(case, Mapping):
        return load_case(paths=case)
    return load_case(case_dir=Path(case))


def run(case, values: Mapping[str, object] | None = None, *, model=None, progress=None,
        note_stream=None, timer=None, force: bool = False, resolved=None):
    """Segment one case; returns (CaseResult, Settings). No file is written.

    `case`: a Case, a case folder or a {modality: path} mapping; `values`: option values
    by name (options.OPTIONS), e.g. {"projections": "preview", "max_boxes": 4};
    `model`: a loaded model (else `values["model"]` is loaded); `timer`: a
    pipeline.StageTimer that already timed earlier stages (loading the case); `force`:
    run a case that `input_checks` finds not prepared as the model expects (an
    InputError otherwise); `resolved`: `devices.resolve_run` of these values when the
    caller resolved them already (predict), else resolved here.
    """
    import torch

    from ..networks.devices import resolve_run, with_model_curve
    from ..inputs.input_checks import check_case
    from .pipeline import StageTimer, run_case
    from .quality_model import QUALITY_KEY, quality_block

    values = dict(values or {})
    settings = settings_from(values)
    resolved = resolved or resolve_run(settings)
    torch.set_num_threads(resolved.threads)  # `auto`: the free cores, read once
    timer = timer or StageTimer()
    with timer.stage("load"):
        case = load_case_from(case)
        warnings = check_case(case, force)
    model = model or load_run_model(values.get("model"), str(resolved.device), note_stream)
    # --projections auto: the model's measured curve, once the model is known.
    resolved, auto = with_model_curve(resolved, settings, model)
    result = run_case(case, model, settings, progress=progress, timer=timer,
                      resolved=resolved)
    if auto is not None:
        result.report["settings"]["projections_auto"] = auto
    result.report["input"]["warnings"] = warnings
    # Each finding a --force run went past is a strong failure signal (issue 17).
    result.report[QUALITY_KEY] = quality_block(case, result, getattr(model, "quality", {}),
                                               warnings)
    return result, settings


def predict(case, out_dir, values: Mapping[str, object] | None = None, *,
            overwrite: bool = False, snapshot: bool = True, progress=None, model=None,
            note_stream=None, force: bool = False, keep_maps: bool = True):
    """Segment one case and write the output contract into `out_dir`; returns
    (written folder, CaseResult). The options and the folder are checked before any
    work; from the model's loading on, the folder is locked against other runs and
    known to be writable with room for the case (contract.prepare_output). Without
    `keep_maps` the result's float maps are freed as they are written (the command
    line's choice: a large volume's maps do not all fit in memory at once); its
    labels, boxes and report stay."""
    from ..files.contract import check_output_folder, prepare_output, write_outputs
    from ..networks.devices import resolve_run
    from .pipeline import StageTimer

    # The option values checked, and the device found, before the output folder.
    resolved = resolve_run(settings_from(dict(values or {})))
    check_output_folder(out_dir, overwrite)
    timer = StageTimer()
    with timer.stage("load"):
        case = load_case_from(case)
    with prepare_output(out_dir, overwrite, case.image.shape[1:]):
        result, settings = run(case, values, model=model, progress=progress,
                               note_stream=note_stream, timer=timer, force=force,
                               resolved=resolved)
        _notify(progress, "write", 0, str(out_dir))
        written = write_outputs(result, out_dir, overwrite=overwrite, snapshot=snapshot,
                                outputs=settings.outputs, release=not keep_maps)
    _notify(progress, "write", 1, str(written))
    return written, result


def _notify(progress, stage: str, done: int, message: str) -> None:
    if progress is not None:
        progress(stage, done, 1, message)
