"""report.html: one self-contained file (tables, and every figure embedded as a base64
PNG) that opens in any browser without the output folder beside it."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .. import __version__
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
                     f"flagged; median WT Dice flagged {s['wt_dice_flagged']:.3f} vs "
                     f"unflagged {s['wt_dice_unflagged']:.3f} (Mann-Whitney p "
                     f"{s['mann_whitney_p']:.3g}); Spearman rho(score, WT Dice) "
                     f"{s['spearman_rho']:.3f} (p {s['spearman_p']:.3g})\n")
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
            f"{len(cases)}. uncertaintyseg {__version__}.</p>"]
    if problems:
        body.append("<h2>Problems</h2>" + "".join(
            f"<p class='problem'>{html.escape(p)}</p>" for p in problems.splitlines()))
    body.append(_section("Table 1: voxel metrics", sections.get("table1")))
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
