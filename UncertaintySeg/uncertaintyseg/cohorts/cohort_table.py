"""The cohort table: one row per case, ranked worst first by the case-quality estimate
(report.json `quality`: flagged cases first, then by estimated WT Dice), then by the
older triage score (most uncertain first).

`OUT/cohort.csv` (read by the Slicer worklist and `evaluate`) and `OUT/cohort.md` (for a
person) hold the same rows; COHORT_COLUMNS (uncertaintyseg_shared.cohort_format) is the
header of both. A case's row comes from its output folder's report.json when the output
is complete, else from the status record the run left for it (input error, failure), else
it is "pending" (another shard of a job array has not reached it yet): the table is
rebuilt from what is on disk, so
every shard may write it and the last one to finish writes the whole cohort.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

# Two shards may rewrite the table at once: each writes its own temporary file and
# renames it, so a reader sees one whole table, never a mix.
from uncertaintyseg_shared.atomic import write_json_atomic, write_text_atomic
# The format (file names, columns, status words) is shared with the Slicer worklist.
from uncertaintyseg_shared.brats import REGIONS
from uncertaintyseg_shared.cohort_format import (COHORT_COLUMNS, DONE, FAILED,  # noqa: F401
                                                 INPUT_ERROR, PENDING, RECORDS_DIR,
                                                 SKIPPED, TABLE_CSV, TABLE_MARKDOWN)
from uncertaintyseg_shared.contract_names import (BOXES_FILE, REPORT_FILE,
                                                  REQUIRED_IMAGE_FILES, SEGMENTATION_FILE)
from uncertaintyseg_shared.quality import (ESTIMATED_DICE, FLAG, QUALITY_KEY, REASONS,
                                           worst_first)


def is_complete(folder: Path) -> bool:
    """True when `folder` holds a whole UncertaintySeg result. The contract renames a
    finished folder into place, so its files are there only when all of them are."""
    try:
        report = json.loads((folder / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    needed = (SEGMENTATION_FILE, BOXES_FILE, *REQUIRED_IMAGE_FILES.values())
    return (report.get("software", {}).get("name") == "uncertaintyseg"
            and all((folder / name).is_file() for name in needed))


def row_from_report(report: dict, case: str, status: str, output: str) -> dict:
    """A table row from a case's report.json."""
    triage = report.get("triage", {})
    quality = report.get(QUALITY_KEY) or {}
    volumes = report.get("volumes_ml", {})
    row = {"case": case, "status": status, "quality_flag": quality.get(FLAG, ""),
           "estimated_dice": quality.get(ESTIMATED_DICE),
           "quality_reason": (quality.get(REASONS) or [""])[0],
           "triage_score": triage.get("score"),
           "triage_flag": triage.get("flag", ""),
           "seconds": report.get("timings_s", {}).get("total"),
           "boxes": sum(report.get("boxes_per_region", {}).values()),
           "output": output, "message": ""}
    row.update({f"{region}_ml": round(float(volumes.get(region, 0.0)), 3)
                for region in REGIONS})
    return row


def problem_row(case: str, status: str, message: str, seconds: float | None = None) -> dict:
    """A table row of a case without a result."""
    return {"case": case, "status": status, "seconds": seconds, "message": message}


def row_from_disk(out_dir: Path, case: str) -> dict:
    """What is on disk for `case`: its complete output, its status record, or pending."""
    folder = out_dir / case
    if is_complete(folder):
        report = json.loads((folder / REPORT_FILE).read_text(encoding="utf-8"))
        return row_from_report(report, case, DONE, str(folder))
    try:
        return json.loads((out_dir / RECORDS_DIR / f"{case}.json").read_text("utf-8"))
    except (OSError, ValueError):
        return problem_row(case, PENDING, "")


def write_record(out_dir: Path, row: dict) -> None:
    """Keep the status of a case without output (removed once the case has one)."""
    path = out_dir / RECORDS_DIR / f"{row['case']}.json"
    if row["status"] in (DONE, SKIPPED):
        path.unlink(missing_ok=True)
        return
    write_json_atomic(path, row)


def ranked(rows: list[dict]) -> list[dict]:
    """Cases with a result first, worst first (uncertaintyseg_shared.quality.worst_first);
    the others after, by name."""
    scored = sorted((r for r in rows if r.get("triage_score") is not None),
                    key=lambda r: (*worst_first(r.get("quality_flag"),
                                                r.get("estimated_dice"),
                                                r["triage_score"]), r["case"]))
    others = sorted((r for r in rows if r.get("triage_score") is None),
                    key=lambda r: r["case"])
    out = [{**r, "rank": index + 1} for index, r in enumerate(scored)]
    return out + [{**r, "rank": ""} for r in others]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COHORT_COLUMNS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _cell(r.get(k)) for k in COHORT_COLUMNS} for r in rows)
    return buffer.getvalue()


def to_markdown(rows: list[dict]) -> str:
    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(COHORT_COLUMNS) + " |",
             "|" + "---|" * len(COHORT_COLUMNS)]
    lines += ["| " + " | ".join(escape(_cell(r.get(k))) for k in COHORT_COLUMNS) + " |"
              for r in rows]
    return "\n".join(lines) + "\n"


def write_table(out_dir: Path, rows: list[dict]) -> Path:
    """Write cohort.csv and cohort.md (ranked), each atomically; returns the CSV path."""
    rows = ranked(rows)
    write_text_atomic(out_dir / TABLE_MARKDOWN, to_markdown(rows))
    write_text_atomic(out_dir / TABLE_CSV, to_csv(rows))
    return out_dir / TABLE_CSV


def read_table(path) -> list[dict]:
    """The rows of a cohort.csv, as strings."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
