"""Scoring every (case, method) pair, resumably, and collecting the results.

A case whose result is missing or broken is recorded in `problems` and the others go on;
a pair already in the cache (store.py) is not scored again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..io import InputError
from . import store
from .pairing import Method, find_cases, load_output, load_reference, result_path, source_signature
from .table import voxel_scores
from .triage import candidate_scores
from .uncertainty_quality import uncertainty_scores

VOXEL, UNCERTAINTY, LESIONWISE, CORRECTION = "voxel", "uncertainty", "lesionwise", "correction"
# What is read from a result's report.json and kept with the scores.
_REPORT_KEYS = ("triage", "timings_s", "volumes_ml")


@dataclass
class Evaluation:
    """records: {method: {case: record}} (store.py's JSON records); problems: one line
    per (case, method) pair that could not be scored; reused: pairs taken from cache."""

    methods: list[Method]
    records: dict[str, dict[str, dict]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    reused: int = 0
    scored: int = 0


def _scorers(parts: set[str]):
    """(part, scorer) in order; a scorer returns the record entries of its part. The
    lesion-wise and correction modules are imported only when asked for (slow imports)."""
    yield VOXEL, lambda ref, out: {VOXEL: voxel_scores(ref, out)}
    if UNCERTAINTY in parts:
        yield UNCERTAINTY, lambda ref, out: {UNCERTAINTY: uncertainty_scores(ref, out),
                                             "case_scores": candidate_scores(ref, out)}
    if LESIONWISE in parts:
        from .lesionwise import lesionwise_scores

        yield LESIONWISE, lambda ref, out: {LESIONWISE: lesionwise_scores(ref, out)}
    if CORRECTION in parts:
        from .correction import correction_scores

        yield CORRECTION, lambda ref, out: {CORRECTION: correction_scores(ref, out)}


def score_pair(reference, output, parts: set[str]) -> dict:
    """The record of one method on one case: the parts asked for, with their seconds."""
    seconds, record = {}, {}
    for part, score in _scorers(parts):
        start = time.perf_counter()
        record.update(score(reference, output))
        seconds[part] = time.perf_counter() - start
    report = output.report or {}
    record["report"] = {k: report[k] for k in _REPORT_KEYS if k in report}
    record["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    record["parts"] = sorted(parts | {VOXEL})
    return record


def evaluate_cases(cases_dir, methods: list[Method], out_dir, parts: set[str],
                   progress=None, on_pair=None) -> Evaluation:
    """Score every case under `cases_dir` for every method; cached pairs are reused.

    `on_pair(reference, method, output)` is called for every pair scored now (the
    QU-BraTS export uses it). Returns an Evaluation.
    """
    evaluation = Evaluation(methods, {m.name: {} for m in methods})
    case_dirs = find_cases(cases_dir)
    for done, case_dir in enumerate(case_dirs):
        _evaluate_case(case_dir, evaluation, Path(out_dir), parts | {VOXEL}, on_pair)
        if progress is not None:
            progress("evaluate", done + 1, len(case_dirs), case_dir.name)
    return evaluation


def _pending(case_id: str, evaluation: Evaluation, out_dir: Path, parts: set[str]):
    """(method, result path, signature) of the pairs the cache does not answer."""
    pending = []
    for method in evaluation.methods:
        path = result_path(method, case_id)
        if path is None:
            evaluation.problems.append(f"{case_id} / {method.name}: no result in "
                                       f"{method.root} (expected {method.root / case_id})")
            continue
        signature = source_signature(path)
        cached = store.read_cached(out_dir, method.name, case_id, signature, parts)
        if cached is not None:
            evaluation.records[method.name][case_id] = cached
            evaluation.reused += 1
        else:
            pending.append((method, path, signature))
    return pending


def _evaluate_case(case_dir: Path, evaluation: Evaluation, out_dir: Path, parts: set[str],
                   on_pair) -> None:
    case_id = case_dir.name
    pending = _pending(case_id, evaluation, out_dir, parts)
    if not pending:
        return
    try:
        reference = load_reference(case_dir)
    except (InputError, OSError, RuntimeError) as error:
        evaluation.problems.append(f"{case_id}: reference unreadable: {error}")
        return
    for method, path, signature in pending:
        try:
            start = time.perf_counter()
            output = load_output(method, path, reference)
            load_seconds = time.perf_counter() - start
            record = score_pair(reference, output, parts)
        except (InputError, OSError, RuntimeError, ValueError, KeyError) as error:
            evaluation.problems.append(f"{case_id} / {method.name}: {path}: {error}")
            continue
        record["seconds"]["load"] = round(load_seconds, 3)
        record["source"] = signature
        store.write_cached(out_dir, method.name, case_id, record)
        evaluation.records[method.name][case_id] = record
        evaluation.scored += 1
        if on_pair is not None:
            on_pair(reference, method, output)
