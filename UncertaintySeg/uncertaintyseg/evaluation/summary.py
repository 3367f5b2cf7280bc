"""Tables and figures of an Evaluation, written into the output folder.

Every writer returns {"markdown": str, "figures": {name: png bytes}} pieces that the
HTML report embeds; files are written atomically.
"""

from __future__ import annotations

from collections import Counter

from pathlib import Path

import numpy as np

from .. import REGIONS
from . import plots, store
from .pairing import safe_name
from .table import per_case_rows, rows_to_csv, table1, table1_markdown
from .uncertainty_quality import FAR_MM, ece
from ..files.snapshot import written_map  # the snapshot's colour bar names it too

# A box of one or two values draws a line that looks like a distribution: not drawn.
MIN_BOX_CASES = 3
UNCERTAINTY_MEASURES = ("auroc", "auroc_border", "auroc_far", "auroc_border_far",
                        "error_share_far", "ece", "pearson", "rmsd", "qubrats_auc_dice",
                        "qubrats_auc_ftp", "qubrats_auc_ftn", "qubrats_score")


def voxel_scores(evaluation) -> dict:
    """{method: {case: {region: metrics}}} of the methods with at least one case."""
    return {m: {c: r["voxel"] for c, r in cases.items()}
            for m, cases in evaluation.records.items() if cases}


def write_voxel_tables(evaluation, out: Path) -> dict:
    """per_case.csv, table1.md, table1.csv and box_<metric>.png."""
    scores = voxel_scores(evaluation)
    if not scores:
        return {"markdown": "No case could be scored.\n", "figures": {}}
    rows = table1(scores)
    markdown = table1_markdown(scores, rows)
    store.write_text_atomic(out / "table1.md", "# Table 1\n\n" + markdown)
    store.write_text_atomic(out / "table1.csv", rows_to_csv(rows))
    store.write_text_atomic(out / "per_case.csv", rows_to_csv(per_case_rows(scores)))
    figures = {}
    plotted = {m: cases for m, cases in scores.items() if len(cases) >= MIN_BOX_CASES}
    for metric in ("dice", "hd95") if plotted else ():
        values = {m: {r: [cases[c][r][metric] for c in cases] for r in REGIONS}
                  for m, cases in plotted.items()}
        figures[f"box_{metric}.png"] = plots.box_plot(values, metric)
        store.write_bytes_atomic(out / f"box_{metric}.png", figures[f"box_{metric}.png"])
    left_out = [f"{m} ({len(c)})" for m, c in scores.items() if m not in plotted]
    if left_out:
        markdown += (f"\nNo box plot for {', '.join(left_out)}: a box needs at least "
                     f"{MIN_BOX_CASES} cases.\n")
    return {"markdown": markdown, "figures": figures}


def _uncertainty_records(evaluation, method: str) -> dict:
    return {c: r["uncertainty"] for c, r in evaluation.records[method].items()
            if r.get("uncertainty")}


def uncertainty_rows(evaluation) -> list[dict]:
    """Per method and region: means over cases of each measure (NaNs skipped, n says
    how many cases count), and the ECE of the bins pooled over the cases."""
    rows = []
    for method in evaluation.records:
        cases = _uncertainty_records(evaluation, method)
        if not cases:
            continue
        for region in REGIONS:
            row = {"method": method, "region": region, "cases": len(cases)}
            for name in UNCERTAINTY_MEASURES:
                values = np.array([store.as_float(c[region].get(name)) for c in cases.values()])
                row[name] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
            bins = [np.asarray(c[region]["calibration_bins"]) for c in cases.values()
                    if c[region].get("calibration_bins") is not None]
            row["ece_pooled"] = ece(np.sum(bins, axis=0)) if bins else float("nan")
            rows.append(row)
    return rows


def markdown_rows(rows: list[dict], keys: list[str]) -> str:
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def maps_scored(evaluation) -> str:
    """A line naming, per method, the voxel maps its runs wrote and on how many cases."""
    parts = []
    for method, records in evaluation.records.items():
        counts = Counter(written_map(r.get("report") or {}) for r in records.values()
                         if r.get("uncertainty"))
        if counts:
            parts.append(f"{method}: " + ", ".join(f"{m} ({n} cases)"
                                                  for m, n in sorted(counts.items())))
    return ("\nVoxel maps scored (`--uncertainty-map`): " + "; ".join(parts) + ".\n"
            if parts else "")


def write_uncertainty(evaluation, out: Path) -> dict:
    """uncertainty.md / .csv, reliability_<method>.png, qubrats_<method>.png."""
    rows = uncertainty_rows(evaluation)
    if not rows:
        return {"markdown": "No method with an uncertainty map.\n", "figures": {}}
    keys = ["method", "region", "cases", *UNCERTAINTY_MEASURES, "ece_pooled"]
    markdown = (markdown_rows(rows, keys) + "\nVoxel set: the brain mask (voxels non-zero in "
                "any modality). Error = voxels where the method's mask differs from the "
                "reference. AUROC: uncertainty as a detector of error voxels; auroc_border: "
                "that of 1 / (1 + distance in mm to the method's predicted border), a "
                "baseline without uncertainty; auroc_far and auroc_border_far: the same "
                f"over the voxels more than {FAR_MM:g} mm from the predicted border, where "
                "nearness to the border cannot explain a ranking; error_share_far: the "
                "share of the error voxels that lie there. ECE: 15 equal "
                "probability bins, positive-class reliability; ece is the mean over cases, "
                "ece_pooled that of the bins summed over cases. QU-BraTS: thresholds 100, "
                "97.5, ..., 0 on uncertainty x 100.\n" + maps_scored(evaluation))
    store.write_text_atomic(out / "uncertainty.md", "# Uncertainty quality\n\n" + markdown)
    store.write_text_atomic(out / "uncertainty.csv", rows_to_csv(rows))
    figures = {}
    for method in evaluation.records:
        figures.update(_method_figures(evaluation, method, out))
    return {"markdown": markdown, "figures": figures}


def _method_figures(evaluation, method: str, out: Path) -> dict:
    cases = list(_uncertainty_records(evaluation, method).values())
    if not cases:
        return {}
    name = safe_name(method)
    figures = {}
    pooled = {r: np.sum([c[r]["calibration_bins"] for c in cases], axis=0) for r in REGIONS
              if all(c[r].get("calibration_bins") is not None for c in cases)}
    if pooled:
        figures[f"reliability_{name}.png"] = plots.reliability_diagram(
            pooled, f"Reliability, {method} (brain mask, {len(cases)} cases)")
    curves = {r: {"thresholds": cases[0][r]["curves"]["thresholds"],
                  **{k: np.nanmean([[store.as_float(v) for v in c[r]["curves"][k]]
                                    for c in cases], axis=0) for k in ("dice", "ftp", "ftn")}}
              for r in REGIONS}
    figures[f"qubrats_{name}.png"] = plots.qubrats_plot(curves, f"QU-BraTS curves, {method}")
    for file_name, data in figures.items():
        store.write_bytes_atomic(out / file_name, data)
    return figures


def write_problems(evaluation, out: Path) -> str:
    """problems.txt: the cases not paired (one line), then each pair not scored."""
    lines = evaluation.problem_lines()
    text = "\n".join(lines) + ("\n" if lines else "")
    store.write_text_atomic(out / "problems.txt", text or "none\n")
    return text


def seconds_table(evaluation) -> dict:
    """Mean seconds per (method, case) pair for each part scored now (cached pairs keep
    the seconds of the run that scored them)."""
    table = {}
    for method, cases in evaluation.records.items():
        parts: dict[str, list[float]] = {}
        for record in cases.values():
            for part, seconds in record.get("seconds", {}).items():
                parts.setdefault(part, []).append(float(seconds))
        table[method] = {p: round(float(np.mean(v)), 3) for p, v in parts.items()}
    return table
