"""Scoring every (case, method) pair, resumably, and collecting the results.

One case is one task (`score_case`): it reads the reference once, scores each method's
result and writes each record to the cache (store.py) before returning it, so a task
lost half-way leaves only whole records and a rerun does not score a cached pair again.
The tasks run in turn here or, given a Dask client, on a cluster through the cohort
engine of `predict --cases` (cohort.run_tasks). A case with no result is recorded in
`unpaired`, one whose result is broken in `problems`, and the others go on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..files.io import InputError
from . import store
from .pairing import (Method, find_cases, load_output, load_reference, result_path,
                      source_signature, unpaired_line)
from .table import voxel_scores
from .triage import candidate_scores
from .uncertainty_quality import uncertainty_scores

VOXEL, UNCERTAINTY, LESIONWISE, CORRECTION = "voxel", "uncertainty", "lesionwise", "correction"
# What is read from a result's report.json and kept with the scores (model, software and
# settings name the run in report.html).
_REPORT_KEYS = ("triage", "quality", "timings_s", "volumes_ml", "model", "software", "settings",
                "uncertainty_map")
# A result that cannot be read or scored is a problem of its (case, method) pair only.
_PAIR_ERRORS = (InputError, OSError, RuntimeError, ValueError, KeyError)


@dataclass
class Evaluation:
    """records: {method: {case: record}} (store.py's JSON records); rankings: {other
    method: {case: record}} of the first method's correction inside boxes ranked by the
    other method's uncertainty; problems: one line per (case, method) pair whose result
    could not be read or scored; unpaired: {method: [cases with no result]}; reused:
    pairs taken from cache."""

    methods: list[Method]
    records: dict[str, dict[str, dict]] = field(default_factory=dict)
    rankings: dict[str, dict[str, dict]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unpaired: dict[str, list[str]] = field(default_factory=dict)
    cases: list[str] = field(default_factory=list)
    reused: int = 0
    scored: int = 0

    def add(self, case: "CaseScores") -> None:
        for name, record in case.records.items():
            self.records[name][case.case_id] = record
        for name, record in case.rankings.items():
            self.rankings.setdefault(name, {})[case.case_id] = record
        for name in case.unpaired:
            self.unpaired.setdefault(name, []).append(case.case_id)
        self.cases.append(case.case_id)
        self.problems += case.problems
        self.reused += case.reused
        self.scored += case.scored

    def problem_lines(self) -> list[str]:
        """The cases not paired, in one line, then one line per pair not scored."""
        line = unpaired_line(self.unpaired, self.methods, len(self.cases))
        return ([line] if line else []) + self.problems


@dataclass
class CaseScores:
    """What one case's task returns (small and picklable: records, not images)."""

    case_id: str
    records: dict[str, dict] = field(default_factory=dict)
    rankings: dict[str, dict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unpaired: list[str] = field(default_factory=list)  # methods with no result for the case
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


def ranking_sources(methods: list[Method]) -> list[Method]:
    """The methods whose uncertainty may rank boxes for the first one: every other
    results folder (the 2D-only twin shares the run's map and boxes)."""
    return [m for m in methods[1:] if m.root != methods[0].root]


def ranking_name(target: Method, source: Method) -> str:
    """Cache name of the first method's correction in boxes ranked by `source`."""
    return f"{target.name} ranked by {source.name}"


def evaluate_cases(cases_dir, methods: list[Method], out_dir, parts: set[str],
                   *, progress=None, on_pair=None, client=None, retries: int = 2,
                   task=None) -> Evaluation:
    """Score every case under `cases_dir` for every method, one task per case (in turn,
    or on the Dask `client`); cached pairs are reused.

    `on_pair(reference, method, output)` is called for every pair scored now (the
    QU-BraTS export uses it; with a client it runs on the workers, so it must pickle).
    `task` scores one case (default `score_case`; tests wrap it). Returns an Evaluation.
    """
    from ..cohorts.cohort import run_tasks

    evaluation = Evaluation(methods, {m.name: {} for m in methods})
    case_dirs = find_cases(cases_dir)
    arguments = (methods, str(out_dir), sorted(parts | {VOXEL}), on_pair)
    tasks = run_tasks(task or score_case, case_dirs, lambda case: (str(case), *arguments),
                      client=client, retries=retries, key="evaluate")
    finished = {}
    for case_dir, scores in tasks:
        if isinstance(scores, BaseException):
            scores = CaseScores(case_dir.name, problems=[
                f"{case_dir.name}: not scored ({type(scores).__name__}: {scores})"])
        finished[case_dir.name] = scores
        if progress is not None:
            progress("evaluate", len(finished), len(case_dirs), case_dir.name)
    # Added in case order, not as the tasks finished: the tables and problems.txt of a
    # cluster run are those of an in-turn run.
    for case_dir in case_dirs:
        evaluation.add(finished[case_dir.name])
    return evaluation


def _pending(case_id: str, methods: list[Method], out_dir: Path, parts: set[str],
             scores: CaseScores):
    """(method, result path, signature) of the pairs the cache does not answer, and
    the signatures of every result found."""
    pending, signatures = [], {}
    for method in methods:
        path = result_path(method, case_id)
        if path is None:
            scores.unpaired.append(method.name)  # said once for all cases: unpaired_line
            continue
        signatures[method.name] = (path, source_signature(path))
        cached = store.read_cached(out_dir, method.name, case_id, signatures[method.name][1],
                                   parts)
        if cached is not None:
            scores.records[method.name] = cached
            scores.reused += 1
        else:
            pending.append((method, path, signatures[method.name][1]))
    return pending, signatures


def _pending_rankings(case_id: str, methods: list[Method], out_dir: Path, signatures: dict,
                      scores: CaseScores) -> list[tuple[Method, dict]]:
    """(source, signature) of the rankings the cache does not answer; a ranking's
    signature holds both results' files, so a change in either scores it again."""
    target, pending = methods[0], []
    for source in ranking_sources(methods):
        if target.name not in signatures or source.name not in signatures:
            continue
        signature = {"target": signatures[target.name][1],
                     "source": signatures[source.name][1]}
        cached = store.read_cached(out_dir, ranking_name(target, source), case_id, signature,
                                   {CORRECTION})
        if cached is not None:
            scores.rankings[source.name] = cached
        else:
            pending.append((source, signature))
    return pending


def score_case(case_dir: str, methods: list[Method], out_dir: str, parts: list[str],
               on_pair=None) -> CaseScores:
    """One case's task: every method's record (cached or scored now and cached), and
    with the correction part the rankings by the other methods' uncertainty."""
    case_dir, out_dir, parts = Path(case_dir), Path(out_dir), set(parts) | {VOXEL}
    scores = CaseScores(case_dir.name)
    pending, signatures = _pending(scores.case_id, methods, out_dir, parts, scores)
    rankings = (_pending_rankings(scores.case_id, methods, out_dir, signatures, scores)
                if CORRECTION in parts else [])
    if not pending and not rankings:
        return scores
    try:
        reference = load_reference(case_dir)
    except (InputError, OSError, RuntimeError) as error:
        scores.problems.append(f"{scores.case_id}: reference unreadable: {error}")
        return scores
    outputs = {}
    for method, path, signature in pending:
        try:
            start = time.perf_counter()
            output = load_output(method, path, reference)
            load_seconds = time.perf_counter() - start
            record = score_pair(reference, output, parts)
        except _PAIR_ERRORS as error:
            scores.problems.append(f"{scores.case_id} / {method.name}: {path}: {error}")
            continue
        record["seconds"]["load"] = round(load_seconds, 3)
        record["source"] = signature
        store.write_cached(out_dir, method.name, scores.case_id, record)
        scores.records[method.name] = record
        scores.scored += 1
        if any(method.name == m.name for m in [methods[0], *(s for s, _ in rankings)]):
            outputs[method.name] = output  # kept for the rankings only (maps are large)
        if on_pair is not None:
            on_pair(reference, method, output)
    _score_rankings(reference, methods, out_dir, rankings, outputs, signatures=signatures,
                    scores=scores)
    return scores


def _score_rankings(reference, methods, out_dir, rankings, outputs, *, signatures,
                    scores: CaseScores) -> None:
    from .correction import ranked_correction

    target = methods[0]

    def output_of(method):
        if method.name not in outputs:
            outputs[method.name] = load_output(method, signatures[method.name][0], reference)
        return outputs[method.name]

    for source, signature in rankings:
        try:
            start = time.perf_counter()
            correction = ranked_correction(reference, output_of(target), output_of(source))
        except _PAIR_ERRORS as error:
            scores.problems.append(f"{scores.case_id} / boxes ranked by {source.name}: "
                                   f"{error}")
            continue
        record = {CORRECTION: correction, "parts": [CORRECTION], "source": signature,
                  "seconds": {CORRECTION: round(time.perf_counter() - start, 3)}}
        store.write_cached(out_dir, ranking_name(target, source), scores.case_id, record)
        scores.rankings[source.name] = record
