"""Voxel-wise scores per case and the paper's Table 1 (mean +- sd, Wilcoxon p).

Scores come from `metrics.region_metrics` (Dice and HD95 on the whole masks,
sensitivity / specificity / accuracy over the brain mask). Table 1 compares the first
method (the fused result) with every other method by a two-sided Wilcoxon signed-rank
test paired over the cases every method has, Bonferroni-corrected for the number of
methods compared with it (per metric and region).
"""

from __future__ import annotations

import csv
import io
from typing import Mapping

import numpy as np

from .. import REGIONS
from .metrics import METRIC_NAMES, region_metrics, wilcoxon_bonferroni

ALPHA = 0.05
# With n pairs the smallest two-sided exact Wilcoxon p is 2 / 2**n: 0.0625 for n = 5, so
# with fewer than 6 pairs no difference could ever reach p < 0.05. The test is not run
# then (p NaN) and the table says so, instead of printing a p that means nothing.
MIN_WILCOXON_PAIRS = 6
Scores = Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]]  # method/case/region/metric


def voxel_scores(reference, output) -> dict[str, dict[str, float]]:
    """{region: {dice, hd95 (mm), sensitivity, specificity, accuracy}} of one case."""
    return {region: region_metrics(reference.regions[i], output.regions[i],
                                   reference.spacing, mask=reference.brain)
            for i, region in enumerate(REGIONS)}


def common_cases(scores: Scores) -> list[str]:
    """Cases scored for every method, in the first method's order."""
    methods = list(scores)
    if not methods:
        return []
    return [c for c in scores[methods[0]] if all(c in scores[m] for m in methods[1:])]


def table1(scores: Scores, metrics=METRIC_NAMES, alpha: float = ALPHA) -> list[dict]:
    """Rows {metric, region, n, <method> mean, <method> sd, p and p_corrected per other
    method, significant} on the cases common to every method; the first method is the
    one the others are tested against."""
    methods = list(scores)
    cases = common_cases(scores)
    n_comparisons = max(1, len(methods) - 1)
    tested = len(cases) >= MIN_WILCOXON_PAIRS
    rows = []
    for metric in metrics:
        for region in REGIONS:
            values = {m: np.array([scores[m][c][region][metric] for c in cases]) for m in methods}
            row = {"metric": metric, "region": region, "n": len(cases)}
            for m in methods:
                row[f"{m} mean"] = float(values[m].mean()) if cases else float("nan")
                # one case has no spread to speak of: NaN, shown as the mean alone
                row[f"{m} sd"] = float(values[m].std(ddof=1)) if len(cases) > 1 else float("nan")
            for m in methods[1:]:
                _, p, corrected = (wilcoxon_bonferroni(values[methods[0]], values[m], n_comparisons)
                                   if tested else (0.0, float("nan"), float("nan")))
                row[f"p {methods[0]} vs {m}"] = p
                row[f"p_bonferroni {methods[0]} vs {m}"] = corrected
                row[f"significant {methods[0]} vs {m}"] = bool(corrected < alpha)
            rows.append(row)
    return rows


def significance_statement(scores: Scores, alpha: float = ALPHA) -> str:
    """One sentence that says which test, on how many cases, with which threshold."""
    methods = list(scores)
    n = len(common_cases(scores))
    k = max(1, len(methods) - 1)
    if len(methods) > 1 and n < MIN_WILCOXON_PAIRS:
        return (f"No Wilcoxon test: {n} case(s) every method has, and it needs at least "
                f"{MIN_WILCOXON_PAIRS} pairs (with fewer, no difference could reach p < "
                f"{ALPHA}). HD95 in mm; sensitivity, specificity and accuracy over the brain "
                "mask.")
    return (f"Two-sided Wilcoxon signed-rank test of {methods[0] if methods else '-'} against "
            f"each other method, paired over the {n} cases every method has; p multiplied "
            f"by {k} (Bonferroni, {k} comparison{'s' if k > 1 else ''} per metric and "
            f"region); * marks corrected p < {alpha}. HD95 in mm; sensitivity, specificity "
            "and accuracy over the brain mask.")


def _cell(metric: str, mean: float, sd: float) -> str:
    digits = 2 if metric == "hd95" else 3
    if np.isnan(sd):
        return f"{mean:.{digits}f}"  # one case: no sd
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def table1_markdown(scores: Scores, rows: list[dict], alpha: float = ALPHA) -> str:
    """Table 1 as Markdown: one row per metric and region, methods side by side, then
    the corrected p of the first method against each other one."""
    methods = list(scores)
    others = methods[1:]
    header = (["metric", "region"] + methods
              + [f"p ({methods[0]} vs {m}, Bonferroni)" for m in others])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        label = "HD95 (mm)" if row["metric"] == "hd95" else row["metric"]
        cells = [label, row["region"]]
        cells += [_cell(row["metric"], row[f"{m} mean"], row[f"{m} sd"]) for m in methods]
        for m in others:
            p = row[f"p_bonferroni {methods[0]} vs {m}"]
            star = "*" if row[f"significant {methods[0]} vs {m}"] else ""
            cells.append("not tested" if np.isnan(p) else f"{p:.3g}{star}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + significance_statement(scores, alpha) + "\n"


def rows_to_csv(rows: list[dict]) -> str:
    """Rows (dicts) as CSV text; the columns are the union of their keys, in order of
    appearance, and a row without a column leaves it empty."""
    if not rows:
        return ""
    fields = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def per_case_rows(scores: Scores) -> list[dict]:
    """One row per method, case and region with every voxel metric."""
    return [{"method": m, "case": c, "region": r, **scores[m][c][r]}
            for m in scores for c in scores[m] for r in REGIONS]
