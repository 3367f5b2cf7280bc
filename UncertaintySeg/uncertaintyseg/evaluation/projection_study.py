"""`evaluate --projection-study MODEL_DIR`: the projection count from a measured curve.

For every count in COUNTS the real pipeline (`predict.predict`, the model's default
backend and maps) runs on the model's validation cases (model.json `split.val`) and the
result is scored as `evaluate` scores it (runner.score_pair): Dice, HD95, the error AUROC
overall and beyond 2 mm of the predicted border, the case-quality estimate against the
real WT Dice, and the CPU-seconds of the run. Each (count, case) is one record under
OUT/projection_study/cases/, written once scored, so a killed study picks up where it
stopped. The means per count are the curve (`curve_block`), stored in model.json under
STUDY_KEY (projection_curve.py reads it for `--projections auto`).
"""

from __future__ import annotations

import datetime
import json
import shutil
import time
from pathlib import Path

import numpy as np

from .. import REGIONS
from ..errors import InputError
from ..run.expected_time import CALIBRATION_KEY
from ..stages.projection_curve import STUDY_KEY, TOLERANCE
from . import store
from uncertaintyseg_shared.quality import ESTIMATED_DICE, FLAG, FLAG_REVIEW

COUNTS = (2, 4, 8, 16, 32)
STUDY_FOLDER = "projection_study"
FIGURE = "projection_curve.png"  # in the model folder, beside the card that shows it
# The record's version: a record of another version is measured again.
RECORD_VERSION = 1


def validation_cases(model_dir: Path, cases_dir: Path) -> list[Path]:
    """The model's validation case folders (model.json split.val) under `cases_dir`."""
    model = json.loads((Path(model_dir) / "model.json").read_text(encoding="utf-8"))
    names = model.get("split", {}).get("val") or []
    if not names:
        raise InputError(f"{Path(model_dir) / 'model.json'}: no split.val cases; "
                         "--projection-study needs a model trained by `uncertaintyseg train`")
    missing = [n for n in names if not (Path(cases_dir) / n).is_dir()]
    if missing:
        raise InputError(f"--cases {cases_dir}: no folder for the validation case(s) "
                         f"{', '.join(missing)}; give the folder the model was trained from")
    return [Path(cases_dir) / n for n in names]


def record_path(out: Path, count: int, case_id: str) -> Path:
    return Path(out) / STUDY_FOLDER / "cases" / f"p{count}" / f"{case_id}.json"


def source(model_dir, values: dict) -> dict:
    """What a record was measured with: the model's name and version and the run's
    values but its threads (the folder may move; threads change only the seconds)."""
    meta = json.loads((Path(model_dir) / "model.json").read_text(encoding="utf-8"))
    return {"model": meta.get("name"), "model_version": str(meta.get("version")),
            "values": {k: str(v) for k, v in sorted(values.items())
                       if k not in ("model", "threads")}}


def read_record(out: Path, count: int, case_id: str, measured_with: dict) -> dict | None:
    """The stored record of (count, case), None when absent, damaged, older or measured
    with another model or other values (`source`)."""
    path = record_path(out, count, case_id)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("version") != RECORD_VERSION or record.get("source") != measured_with:
        return None
    return record


def summarise(scores: dict, cpu_s: float) -> dict:
    """The study's numbers of one scored run (runner.score_pair's record)."""
    quality = scores.get("report", {}).get("quality") or {}
    uncertainty = scores.get("uncertainty") or {}
    timings = scores.get("report", {}).get("timings_s", {})
    # The triage score is the binned entropy's, its threshold calibrated at one count:
    # kept to see whether another count moves it.
    triage = scores.get("report", {}).get("triage") or {}
    return {"dice": {r: scores["voxel"][r]["dice"] for r in REGIONS},
            "hd95": {r: scores["voxel"][r]["hd95"] for r in REGIONS},
            "auroc": {r: uncertainty.get(r, {}).get("auroc") for r in REGIONS},
            "auroc_far": {r: uncertainty.get(r, {}).get("auroc_far") for r in REGIONS},
            "estimated_dice": quality.get(ESTIMATED_DICE),
            "review": quality.get(FLAG) == FLAG_REVIEW,
            "triage_score": triage.get("score"), "triage_review": triage.get("flag") == FLAG_REVIEW,
            "cpu_s": round(cpu_s, 2), "wall_s": timings.get("total"),
            "uncertainty_s": timings.get("uncertainty")}


def run_one(case_dir: Path, count: int, model, out: Path, values: dict) -> dict:
    """Predict one case with `count` projections, score it and return the record (the
    caller stores it). CPU-seconds: this process's (every thread's) time over the
    prediction."""
    from ..run.predict import predict
    from .pairing import Method, load_output, load_reference
    from .runner import UNCERTAINTY, VOXEL, score_pair

    folder = Path(out) / STUDY_FOLDER / "runs" / f"p{count}" / case_dir.name
    start = time.process_time()
    predict(case_dir, folder, {**values, "projections": count}, overwrite=True,
            snapshot=False, model=model)
    cpu_s = time.process_time() - start
    reference = load_reference(case_dir)
    output = load_output(Method(f"p{count}", folder.parent), folder, reference)
    scores = score_pair(reference, output, {VOXEL, UNCERTAINTY})
    shutil.rmtree(folder, ignore_errors=True)  # the maps are large; the record is kept
    return {"version": RECORD_VERSION, "case": case_dir.name, "count": count,
            **summarise(scores, cpu_s)}


def run_study(model_dir, cases_dir, out, counts=COUNTS, *, values=None, progress=None,
              runner=run_one, only=None) -> list[dict]:
    """Every (count, case) record, measured now or read back; `values`: predict's option
    values (threads, backend...); `only`: these validation cases alone (a study cut
    short). `runner` measures one pair (tests replace it)."""
    from ..run.predict import load_run_model

    cases = [c for c in validation_cases(model_dir, cases_dir)
             if only is None or c.name in only]
    values = {"model": str(model_dir), "outputs": "minimal", **(values or {})}
    measured_with = source(model_dir, values)
    records, model, total = [], None, len(counts) * len(cases)
    # Case by case, every count: a study cut short still has whole curves of its cases.
    for case_dir in cases:
        for count in counts:
            record = read_record(out, count, case_dir.name, measured_with)
            if record is None:
                if model is None and runner is run_one:  # loaded once, when needed
                    model = load_run_model(values["model"], values.get("device") or "cpu")
                record = {**runner(case_dir, count, model, out, values),
                          "source": measured_with}
                store.write_json_atomic(record_path(out, count, case_dir.name), record)
            records.append(record)
            if progress is not None:
                progress("projection study", len(records), total,
                         f"{case_dir.name} at {count}")
    return records


def _mean(values) -> float | None:
    kept = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(kept)) if kept else None


def mean_curve(records: list[dict]) -> dict:
    """{count: means over the cases} of the records (one entry per count measured)."""
    curve = {}
    for count in sorted({r["count"] for r in records}):
        chosen = [r for r in records if r["count"] == count]
        row = {"cases": sorted(r["case"] for r in chosen)}
        for key in ("dice", "hd95", "auroc", "auroc_far"):
            row[key] = {reg: _mean(r[key][reg] for r in chosen) for reg in REGIONS}
        row["cpu_s"] = _mean(r["cpu_s"] for r in chosen)
        row["quality_abs_error"] = _mean(
            None if r["estimated_dice"] is None else abs(r["estimated_dice"] - r["dice"]["WT"])
            for r in chosen)
        row["review_flags"] = sum(bool(r["review"]) for r in chosen)
        row["triage_score"] = _mean(r.get("triage_score") for r in chosen)
        row["triage_reviews"] = sum(bool(r.get("triage_review")) for r in chosen)
        curve[str(count)] = row
    return curve


def curve_block(records: list[dict], device: str, threads: int, backend: str) -> dict:
    """model.json's STUDY_KEY block: the curve and where it was measured."""
    from ..networks.devices import cpu_name

    return {"counts": sorted({r["count"] for r in records}), "device": device,
            "cpu": cpu_name(), "threads": threads,
            "backend": backend, "tolerance": TOLERANCE,
            "measured": datetime.date.today().isoformat(),
            "command": "uncertaintyseg evaluate --projection-study MODEL_DIR",
            "curve": mean_curve(records)}


def store_curve(model_dir, block: dict, figure: bytes | None = None) -> None:
    """Write the block into MODEL_DIR/model.json under STUDY_KEY and its device (the
    other devices' curves kept), the figure beside it, and re-render the card."""
    from .model_card import store_block

    path = Path(model_dir) / "model.json"
    curves = json.loads(path.read_text(encoding="utf-8")).get(STUDY_KEY) or {}
    if figure is not None:
        store.write_bytes_atomic(Path(model_dir) / FIGURE, figure)
    # model_card writes model.json atomically and re-renders the card (training.bundle).
    store_block(model_dir, STUDY_KEY, {**curves, block["device"]: block})


def study_calibration(model_dir, values: dict, device, backend: str, threads: int) -> dict:
    """This computer's seconds per 2D view at the study's backend and threads: what
    `expected-time` scales the curve by on another computer (run.expected_time)."""
    from ..networks.devices import resolve_precision
    from ..run.expected_time import calibration_record
    from ..run.predict import load_run_model

    model = load_run_model(str(model_dir), str(device))
    autocast = resolve_precision(values.get("precision") or "auto", device)
    return calibration_record(model, backend, threads, autocast)


def write_projection_study(model_dir, cases_dir, out, *, values=None, progress=None,
                           counts=COUNTS, only=None) -> dict:
    """Run (or resume) the study (`only`: run_study's), store the curve in MODEL_DIR
    (model.json, figure, card) and OUT/projection_study/curve.md; returns the block."""
    from types import SimpleNamespace

    from ..runtime.cores import resolve_threads
    from ..networks.devices import auto_projections, resolve_device
    from ..networks.inference_backend import choose_backend
    from ..options import OPTIONS
    from ..stages.projection_curve import pick
    from .projection_card import curve_figure, curve_lines

    values = dict(values or {})
    records = run_study(model_dir, cases_dir, out, counts, values=values, progress=progress,
                        only=only)
    device = resolve_device(values.get("device") or "auto")
    # The backend the runs used: predict chose it the same way (inference_backend).
    folder = SimpleNamespace(folder=Path(model_dir), name=Path(model_dir).name)
    backend = choose_backend(values.get("backend") or "auto", device, folder)[0]
    threads = resolve_threads(values.get("threads"))
    block = curve_block(records, device.type, threads, backend)
    block[CALIBRATION_KEY] = study_calibration(model_dir, values, device, backend, threads)
    # The map whose AUROC the curve holds: a later default map needs a study of its own.
    block["uncertainty_map"] = values.get("uncertainty_map") or OPTIONS["uncertainty_map"].default
    nearest, gap = pick(block["curve"])
    # auto takes a curve's count only within the tolerance (projection_curve.choose).
    block["auto"] = nearest if gap <= TOLERANCE + 1e-9 else auto_projections(device)
    block["nearest"], block["auto_shortfall"] = nearest, round(gap, 4)
    figure = curve_figure(block)
    store_curve(model_dir, block, figure)
    study = Path(out) / STUDY_FOLDER
    store.write_text_atomic(study / "curve.md", "\n".join(curve_lines(block)) + "\n")
    store.write_bytes_atomic(study / FIGURE, figure)
    store.write_json_atomic(study / "records.json", records)
    return block
