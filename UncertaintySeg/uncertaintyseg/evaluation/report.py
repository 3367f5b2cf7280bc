"""report.html: one self-contained file (tables, and every figure embedded as a base64
PNG) that opens in any browser without the output folder beside it."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from .. import REGIONS, __version__
from .store import write_text_atomic

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 3px solid #1f77b4; padding-bottom: .2em; }
h2 { margin-top: 1.6em; color: #1f77b4; }
table { border-collapse: collapse; margin: .6em 0; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 3px 7px; text-align: right; }
th { background: #e8f0fa; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: .4em 0; }
.note { color: #555; font-size: 13px; } .problem { color: #b00; }
"""


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(text: str) -> str:
    """The Markdown our writers produce (pipe tables, paragraphs) as HTML."""
    parts, table = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            header, body = _cells(table[0]), [_cells(t) for t in table[2:]]
            rows = ["<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr>"]
            rows += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                     for row in body]
            parts.append("<table>" + "".join(rows) + "</table>")
            table = []
        if line.strip():
            parts.append(f"<p class='note'>{html.escape(line.lstrip('# '))}</p>")
    return "\n".join(parts)


def image_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def _section(title: str, section: dict | None) -> str:
    if not section:
        return ""
    body = [f"<h2>{html.escape(title)}</h2>", markdown_to_html(section.get("markdown", ""))]
    body += [image_tag(png, name) for name, png in section.get("figures", {}).items()]
    return "\n".join(body)


def _run_line(method, records: dict) -> str:
    """One method's model (name, version), software and settings, from its runs'
    report.json; several when the cases differ."""
    reports = [r.get("report") or {} for r in records.values()]
    models = sorted({(m.get("name", "?"), str(m.get("version", "?")),
                      "trained" if m.get("trained", True) else "UNTRAINED")
                     for m in (r.get("model") for r in reports) if m})
    if not models:
        return (f"{method.name}: {method.root} (no model recorded: plain label maps, or "
                "scores cached by an older evaluate; a new --out scores them again)")
    software = sorted({r["software"].get("version", "?") for r in reports if r.get("software")})
    settings = sorted({json.dumps(r["settings"], sort_keys=True) for r in reports
                       if r.get("settings")})
    text = (f"{method.name}: {method.root}; model " + ", ".join(
        f"{n} version {v} ({t})" for n, v, t in models)
        + (f"; uncertaintyseg {', '.join(software)}" if software else ""))
    if len(settings) == 1:
        text += "; settings: " + ", ".join(f"{k} {v}" for k, v in json.loads(settings[0]).items())
    elif settings:
        text += f"; settings: {len(settings)} different sets across the cases"
    return text


def _run_html(evaluation) -> str:
    """What was evaluated: each method's model and settings, and the cases."""
    lines = [_run_line(m, evaluation.records.get(m.name, {})) for m in evaluation.methods]
    cases = sorted({c for cases in evaluation.records.values() for c in cases})
    return ("<h2>Runs</h2><ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in lines)
            + f"</ul><p>Cases scored ({len(cases)}): {html.escape(', '.join(cases))}</p>")


def per_case_markdown(evaluation) -> str:
    """Dice per case (rows) and method (columns), ET / TC / WT."""
    methods = [m for m in evaluation.records if evaluation.records[m]]
    cases = sorted({c for m in methods for c in evaluation.records[m]})
    lines = ["| case | " + " | ".join(f"{m} Dice {' / '.join(REGIONS)}" for m in methods) + " |",
             "|" + "---|" * (len(methods) + 1)]
    for case in cases:
        cells = []
        for m in methods:
            voxel = (evaluation.records[m].get(case) or {}).get("voxel")
            cells.append(" / ".join(f"{voxel[r]['dice']:.3f}" for r in REGIONS)
                         if voxel else "-")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _stat(value, digits: str = ".3g") -> str:
    """A statistic, or why there is none (NaN: too few cases, or one group empty)."""
    return "n/a (too few cases)" if value is None or math.isnan(value) else format(value, digits)


def _triage_html(triage: dict) -> str:
    rows = triage.get("rows") or []
    if not rows:
        return "<h2>Triage</h2><p class='note'>No run recorded a triage score.</p>"
    lines = ["| case | score | flag | WT Dice |", "|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['score']:.3f} | {r['flag']} | {r['wt_dice']:.3f} |"
              for r in rows]
    text = "\n".join(lines) + "\n"
    for key, title in (("as_run", "as run"), ("as_calibrated", "calibrated threshold")):
        s = triage.get(key)
        if s:
            text += (f"\n{title}: threshold {s['threshold']}, {s['flagged']} of {s['cases']} "
                     f"flagged; median WT Dice flagged {_stat(s['wt_dice_flagged'], '.3f')} "
                     f"vs unflagged {_stat(s['wt_dice_unflagged'], '.3f')} (Mann-Whitney p "
                     f"{_stat(s['mann_whitney_p'])}); Spearman rho(score, WT Dice) "
                     f"{_stat(s['spearman_rho'], '.3f')} (p {_stat(s['spearman_p'])})\n")
    ranking = triage.get("score_ranking") or []
    if ranking:
        text += ("\nCandidate case scores (computable without a reference) against WT Dice; "
                 "a useful score has a negative rho.\n\n| score | cases | Spearman rho | p |\n"
                 "|---|---|---|---|\n")
        text += "".join(f"| {r['score']} | {r['cases']} | {r['spearman_rho']:.3f} | "
                        f"{r['spearman_p']:.3g} |\n" for r in ranking)
    return _section("Triage", {"markdown": text, "figures": triage.get("figures", {})})


def write_report(path: Path, evaluation, sections: dict, problems: str) -> Path:
    """Write the HTML report; `sections` are job.run's {"markdown", "figures"} pieces."""
    methods = ", ".join(html.escape(m.name) for m in evaluation.methods)
    cases = sorted({c for cases in evaluation.records.values() for c in cases})
    body = [f"<h1>UncertaintySeg evaluation</h1><p>Methods: {methods}. Cases scored: "
            f"{len(cases)}. Evaluated by uncertaintyseg {__version__}.</p>",
            _run_html(evaluation)]
    if problems:
        body.append("<h2>Problems</h2>" + "".join(
            f"<p class='problem'>{html.escape(p)}</p>" for p in problems.splitlines()))
    body.append(_section("Table 1: voxel metrics", sections.get("table1")))
    body.append(_section("Per case", {"markdown": per_case_markdown(evaluation)}))
    body.append(_section("Uncertainty quality", sections.get("uncertainty")))
    body.append(_section("Lesion-wise metrics", sections.get("lesionwise")))
    body.append(_triage_html(sections.get("triage") or {}))
    body.append(_section("Correction efficiency", sections.get("correction")))
    body.append(_section("Kernel study (overlap and cube side)", sections.get("kernel_study")))
    body.append(_section("Cases: best, median, worst (fused WT Dice)", sections.get("cases")))
    body.append(_section("How the method works (explain)", sections.get("explain")))
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>UncertaintySeg "
            f"evaluation</title><style>{STYLE}</style></head><body>"
            + "\n".join(b for b in body if b) + "</body></html>")
    return write_text_atomic(path, page)
