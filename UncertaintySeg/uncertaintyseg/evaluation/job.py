"""One `evaluate` run: score, then write every table, figure and the report."""

from __future__ import annotations

import functools
from pathlib import Path

from . import plots, store, summary, triage
from .pairing import safe_name
from .runner import CORRECTION, LESIONWISE, evaluate_cases


def write_qubrats_pair(folder: Path, reference, method, output) -> None:
    """The QU-BraTS files of one scored pair, under folder/METHOD (a module-level
    function: with a Dask client it is pickled to the workers)."""
    from .qubrats_export import write_qubrats_case

    write_qubrats_case(Path(folder) / safe_name(method.name), reference, output)


def _triage_section(evaluation, out: Path, calibrate_model) -> dict:
    """Triage of the first (fused) method; with `calibrate_model`, its threshold."""
    fused = evaluation.methods[0].name
    rows = triage.case_table(evaluation.records[fused])
    result = {"rows": rows, "as_run": triage.triage_summary(rows),
              "score_ranking": triage.score_ranking(evaluation.records[fused])}
    if rows:
        png = plots.scatter_plot([r["score"] for r in rows], [r["wt_dice"] for r in rows],
                                 [r["case"] for r in rows], "triage score (report.json)",
                                 "WT Dice", f"Triage score against WT Dice, {fused}")
        store.write_bytes_atomic(out / "triage.png", png)
        result["figures"] = {"triage.png": png}
    if calibrate_model is not None and rows:
        result["calibrated"] = triage.calibrate(calibrate_model, rows)
        result["as_calibrated"] = triage.triage_summary(rows,
                                                        result["calibrated"]["threshold"])
    store.write_json_atomic(out / "triage.json",
                            {k: v for k, v in result.items() if k != "figures"})
    return result


def _explain_section(case_dir, model_name: str, out: Path) -> dict:
    """explain's figures of one case, written to OUT/explain and embedded in the report."""
    from .explain import CAPTIONS, explain_case

    paths = explain_case(case_dir, out / "explain", model_name=model_name)
    figures = {p.name: p.read_bytes() for p in paths if p.suffix == ".png"}
    markdown = "\n".join(f"{name}: {CAPTIONS[name]}" for name in figures) + "\n"
    return {"markdown": markdown, "figures": figures}


def run(cases_dir, methods, out_dir, parts: set[str], *, qubrats: bool = False,
        calibrate_model=None, html: bool = True, progress=None,
        kernel_study: bool = False, explain_case=None, explain_model: str | None = None,
        client=None, retries: int = 2, model_card=None) -> dict:
    """Score every case (one task per case; on the Dask `client` when given) and write
    OUT: table1.md/.csv, per_case.csv, box plots, uncertainty.md/.csv and figures,
    lesionwise.md/.csv, triage.json, problems.txt, summary.json and report.html; with
    `model_card`, the methods' numbers into that model folder's card. Returns the
    summary dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    on_pair = functools.partial(write_qubrats_pair, out / "qubrats") if qubrats else None
    evaluation = evaluate_cases(cases_dir, methods, out, parts, progress=progress, on_pair=on_pair,
                                client=client, retries=retries)
    sections = {"table1": summary.write_voxel_tables(evaluation, out),
                "uncertainty": summary.write_uncertainty(evaluation, out)}
    if LESIONWISE in parts:
        from .lesionwise import write_lesionwise

        sections["lesionwise"] = write_lesionwise(evaluation, out)
    if CORRECTION in parts:
        from .correction import write_correction

        sections["correction"] = write_correction(evaluation, out)
    if kernel_study:
        from .kernel_study import write_kernel_study

        sections["kernel_study"] = write_kernel_study(cases_dir, evaluation, out)
    sections["triage"] = _triage_section(evaluation, out, calibrate_model)
    problems = summary.write_problems(evaluation, out)
    if model_card is not None:
        from .model_card import store_in_model

        fused = evaluation.methods[0].name
        store_in_model(model_card, out, [name for name in evaluation.records],
                       list(evaluation.records[fused]))
    result = {"methods": [m.name for m in methods], "scored": evaluation.scored,
              "reused": evaluation.reused, "problems": evaluation.problem_lines(),
              "table1_markdown": sections["table1"]["markdown"],
              "uncertainty_markdown": sections["uncertainty"]["markdown"],
              "triage": {k: v for k, v in sections["triage"].items()
                         if k not in ("rows", "figures")},
              "seconds_per_pair": summary.seconds_table(evaluation)}
    store.write_json_atomic(out / "summary.json", result)
    if html:
        from .case_figures import case_figures
        from .report import write_report

        sections["cases"] = case_figures(cases_dir, evaluation)
        for name, png in sections["cases"]["figures"].items():
            store.write_bytes_atomic(out / "case_figures" / name, png)
        if explain_case is not None:
            sections["explain"] = _explain_section(explain_case, explain_model, out)

        write_report(out / "report.html", evaluation, sections, problems)
    return result
