"""A cohort of output folders as a review worklist (stdlib only: no Slicer, Qt or torch).

The folder the reviewer opens is either
- a folder of output folders, one per case: `OUT/<case>/` as `predict --out OUT/<case>`
  or a cohort run writes them, optionally with the cohort table `OUT/cohort.csv`
  (columns: uncertaintyseg.cohorts.cohort_table.COHORT_COLUMNS; only case and status are read); or
- one output folder itself (a one-case worklist).

`scan(folder)` gives one `CaseRow` per case, ranked worst first by the report's
case-quality estimate (flagged first, then the lowest estimated Dice), then by its triage
score (most uncertain first). Cases that cannot be loaded are rows too, with the reason, so that a
failed or half-copied case is reported in the table instead of stopping the scan.

Each case's review lives in `review.json` beside its outputs (`ReviewRecord`), written
atomically (temporary name + os.replace); `write_worklist_csv` summarises the cohort.
The scene side (loading a case, ticks and edits on the nodes) is `worklist_scene`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

# The pipeline's atomic writer, under the name this module has always called it by.
from uncertaintyseg_shared import atomic as output_safety
from uncertaintyseg_shared.cohort_format import DONE, SKIPPED, TABLE_CSV
from uncertaintyseg_shared.contract_names import BOXES_FILE, REPORT_FILE, SEGMENTATION_FILE
from uncertaintyseg_shared.errors import OutputError
from uncertaintyseg_shared.quality import ESTIMATED_DICE, FLAG, QUALITY_KEY, REASONS, worst_first

REVIEW_FILE = "review.json"
COHORT_TABLE = TABLE_CSV  # written by `predict --cases` (uncertaintyseg.cohorts.cohort_table)
WORKLIST_FILE = "worklist.csv"
REVIEW_FORMAT = 1
REGIONS = ("ET", "TC", "WT")

# Review states, in the order a case goes through them; the last two cannot be opened.
TO_REVIEW, IN_REVIEW, REVIEWED, CORRECTED = "to review", "in review", "reviewed", "corrected"
FAILED, BROKEN = "failed", "broken"
DONE_STATES = (REVIEWED, CORRECTED)
UNLOADABLE_STATES = (FAILED, BROKEN)
# Cohort-table statuses of a case whose output is complete (the cohort run's words; an
# empty status: a table written by hand).
OK_STATUSES = {"", DONE, SKIPPED}
CSV_COLUMNS = ("rank", "case", "quality_flag", "estimated_dice", "quality_reason",
               "triage_score", "triage_flag", "ET_ml", "TC_ml", "WT_ml",
               "state", "reviewer", "updated_at", "boxes_ticked", "boxes_total", "edited",
               "corrected", "exported_label_map", "problem", "folder")


# The panel's table (worklist_panel shows these; `table_cells` fills them).
TABLE_COLUMNS = ("#", "Case", "Triage", "Quality", "ET ml", "TC ml", "WT ml", "Boxes ticked", "Edited",
                 "State", "Reviewer")


class WorklistError(ValueError):
    """A worklist folder or review file that cannot be used as asked."""


def now_utc() -> str:
    """ISO 8601 time stamp, UTC, to the second (what review.json records)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` to `path` atomically (output_safety: temporary sibling, fsync,
    rename), so readers see the old file or the new one, never half of one. Unlike the
    pipeline's writer it does not make a missing folder: a review belongs in a case
    folder that exists."""
    path = Path(path)
    if not path.parent.is_dir():
        raise WorklistError(f"cannot write {path}: its folder is missing; check that the "
                            "case folder exists and is writable")
    try:
        return output_safety.write_text_atomic(path, text)
    except OutputError as error:
        raise WorklistError(f"cannot write {path}: {error}") from error


@dataclass
class ReviewRecord:
    """The content of one case's review.json."""

    case: str
    reviewer: str = ""
    opened_at: str = ""
    updated_at: str = ""
    reviewed_at: str = ""          # when the reviewer marked it reviewed (or ticked all)
    boxes_total: int = 0
    boxes_ticked: list = field(default_factory=list)  # [{"region": "ET", "rank": 1}, ...]
    edited: bool = False           # segments differ from segmentation.nii.gz
    corrected: bool = False        # an edited label map was exported
    exports: list = field(default_factory=list)       # [{"path", "at", "edited", "reviewer"}]
    history: list = field(default_factory=list)       # [{"at", "reviewer", "event"}]
    format_version: int = REVIEW_FORMAT

    @property
    def state(self) -> str:
        if self.corrected:
            return CORRECTED
        if self.reviewed_at:
            return REVIEWED
        return IN_REVIEW if self.opened_at else TO_REVIEW

    def log(self, reviewer: str, event: str) -> None:
        """Record who did what, now."""
        stamp = now_utc()
        self.reviewer, self.updated_at = reviewer, stamp
        self.history.append({"at": stamp, "reviewer": reviewer, "event": event})

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "state": self.state}, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> "ReviewRecord":
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


def read_review(case_dir) -> ReviewRecord | None:
    """The case's review.json, or None when it has none; WorklistError when unreadable."""
    path = Path(case_dir) / REVIEW_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "case" not in data:
            raise ValueError("not a review record (no 'case')")
        return ReviewRecord.from_dict(data)
    except (ValueError, TypeError) as error:
        raise WorklistError(f"{path}: unreadable review file ({error}); move it away to "
                            "start this case's review afresh") from error


def write_review(case_dir, record: ReviewRecord) -> Path:
    """Write review.json into the case's output folder, atomically."""
    return write_text_atomic(Path(case_dir) / REVIEW_FILE, record.to_json())


@dataclass
class CaseRow:
    """One case of the worklist."""

    case: str
    folder: Path
    triage_score: float | None = None
    triage_flag: str = ""
    quality_flag: str = ""         # report.json `quality` (uncertaintyseg_shared.quality)
    estimated_dice: float | None = None
    quality_reason: str = ""
    volumes_ml: dict = field(default_factory=dict)
    boxes_total: int = 0
    report: dict = field(default_factory=dict)
    review: ReviewRecord | None = None
    problem: str = ""              # why the case cannot be loaded (failed / broken)
    unloadable: str = ""           # FAILED or BROKEN, "" when the case can be loaded

    @property
    def state(self) -> str:
        if self.unloadable:
            return self.unloadable
        return self.review.state if self.review else TO_REVIEW

    @property
    def loadable(self) -> bool:
        return not self.unloadable

    def cells(self) -> dict:
        """The row as CSV / table cells (strings), keyed by CSV_COLUMNS (less "rank")."""
        review = self.review or ReviewRecord(self.case)
        score = "" if self.triage_score is None else f"{self.triage_score:.4f}"
        volumes = {f"{r}_ml": _number(self.volumes_ml.get(r)) for r in REGIONS}
        exported = review.exports[-1]["path"] if review.exports else ""
        return {"case": self.case, "triage_score": score, "triage_flag": self.triage_flag,
                "quality_flag": self.quality_flag,
                "estimated_dice": _number(self.estimated_dice),
                "quality_reason": self.quality_reason,
                **volumes, "state": self.state, "reviewer": review.reviewer,
                "updated_at": review.updated_at, "boxes_ticked": str(len(review.boxes_ticked)),
                "boxes_total": str(self.boxes_total), "edited": _yes(review.edited),
                "corrected": _yes(review.corrected), "exported_label_map": exported,
                "problem": self.problem, "folder": str(self.folder)}


def _number(value) -> str:
    return "" if value is None else f"{float(value):.2f}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _read_quality(row: CaseRow, quality: dict) -> None:
    """The case-quality block's flag, estimate and first reason (older reports: none)."""
    row.quality_flag = str(quality.get(FLAG, ""))
    estimate = quality.get(ESTIMATED_DICE)
    row.estimated_dice = None if estimate is None else float(estimate)
    row.quality_reason = str((quality.get(REASONS) or [""])[0])


def _read_case(case: str, folder: Path) -> CaseRow:
    """A row from an output folder; broken folders become rows with the reason."""
    row = CaseRow(case, folder)
    missing = [n for n in (SEGMENTATION_FILE, BOXES_FILE, REPORT_FILE) if not (folder / n).is_file()]
    try:
        if missing:
            raise WorklistError(f"{folder}: incomplete output folder (missing "
                                f"{', '.join(missing)}); run `uncertaintyseg predict` for "
                                "this case again")
        try:
            row.report = json.loads((folder / REPORT_FILE).read_text(encoding="utf-8"))
            boxes = json.loads((folder / BOXES_FILE).read_text(encoding="utf-8"))
            row.boxes_total = len(boxes.get("boxes", []))
            triage = row.report.get("triage") or {}
            if "score" in triage:
                row.triage_score = float(triage["score"])
            row.triage_flag = str(triage.get("flag", ""))
            _read_quality(row, row.report.get(QUALITY_KEY) or {})
            row.volumes_ml = dict(row.report.get("volumes_ml") or {})
        except (ValueError, TypeError, AttributeError) as error:
            raise WorklistError(f"{folder}: unreadable {REPORT_FILE} or {BOXES_FILE} "
                                f"({error}); run the pipeline for this case again") from error
        row.review = read_review(folder)
    except WorklistError as error:
        row.problem, row.unloadable = str(error), BROKEN
    return row


def _norm(key: str) -> str:
    return key.strip().lower().replace(" ", "_").replace("-", "_")


def read_cohort_table(folder) -> dict[str, dict]:
    """{case: row} of `folder/cohort.csv` (keys lower case, spaces as "_"); {} when absent.

    Only `case` and `status` are used (everything else is read from report.json, the
    record of the run itself); other columns are kept as they are.
    """
    path = Path(folder) / COHORT_TABLE
    if not path.is_file():
        return {}
    try:
        with path.open(encoding="utf-8", newline="") as stream:
            rows = [{_norm(k): (v or "").strip() for k, v in row.items() if k}
                    for row in csv.DictReader(stream)]
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        raise WorklistError(f"{path}: unreadable cohort table ({error}); move it away to "
                            "list the case folders alone") from error
    if rows and "case" not in rows[0]:
        raise WorklistError(f"{path}: no 'case' column (found {', '.join(rows[0])}); "
                            "is this the cohort table of a cohort run?")
    return {row["case"]: row for row in rows if row.get("case")}


def _looks_like_output(folder: Path) -> bool:
    return any((folder / name).exists() for name in (REPORT_FILE, SEGMENTATION_FILE, BOXES_FILE))


def _from_table(case: str, entry: dict, folder: Path) -> CaseRow:
    status = entry.get("status", "")
    detail = entry.get("error") or entry.get("message") or ""
    if _norm(status) in OK_STATUSES:
        problem = (f"{folder}: listed in {COHORT_TABLE} but missing; was it moved or "
                   "deleted? Rerun the cohort to write it again")
    else:
        problem = (f"the cohort run reported '{status}'" + (f": {detail}" if detail else "")
                   + f"; fix the case's input and rerun the cohort ({folder} was not written)")
    return CaseRow(case, folder, problem=problem, unloadable=FAILED)


def rank(rows: list[CaseRow]) -> list[CaseRow]:
    """Worst first (flagged, lowest estimated Dice, highest triage score); cases without a
    score (or unloadable) last; ties by name."""
    return sorted(rows, key=lambda r: (r.triage_score is None, *worst_first(
        r.quality_flag, r.estimated_dice, r.triage_score), r.case))


def scan(folder) -> list[CaseRow]:
    """The ranked worklist of a folder (see the module docstring)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise WorklistError(f"{folder}: no such folder; choose the folder that holds the "
                            "cases' output folders")
    if (folder / REPORT_FILE).is_file():
        return [_read_case(folder.name, folder)]
    table = read_cohort_table(folder)
    rows = {}
    # Hidden folders are skipped: `.<name>.partial-XXXX` is a run still being written.
    for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if child.name in table or _looks_like_output(child):
            rows[child.name] = _read_case(child.name, child)
    for case, entry in table.items():
        if case not in rows:
            rows[case] = _from_table(case, entry, folder / case)
    return rank(list(rows.values()))


def next_case(rows: list[CaseRow], current: str | None = None) -> CaseRow | None:
    """The highest-ranked case still to review (not reviewed, corrected or unloadable),
    other than `current`; a case left in review comes before one never opened only by rank."""
    for row in rows:
        if row.loadable and row.state not in DONE_STATES and row.case != current:
            return row
    return None


def worklist_csv_text(rows: list[CaseRow]) -> str:
    """The worklist as CSV text (columns CSV_COLUMNS), in the rows' order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for index, row in enumerate(rows, start=1):
        writer.writerow({"rank": str(index), **row.cells()})
    return buffer.getvalue()


def write_worklist_csv(rows: list[CaseRow], path) -> Path:
    """Write the worklist CSV atomically; returns the path."""
    return write_text_atomic(Path(path), worklist_csv_text(rows))


def table_cells(rows: list[CaseRow]) -> list[tuple[str, ...]]:
    """The panel's table: one tuple of strings per row, columns TABLE_COLUMNS."""
    table = []
    for index, row in enumerate(rows, start=1):
        cells = row.cells()
        boxes = f"{cells['boxes_ticked']} / {cells['boxes_total']}" if row.loadable else ""
        quality = f"{cells['quality_flag']} {cells['estimated_dice']}".strip()
        table.append((str(index), row.case, cells["triage_score"], quality, cells["ET_ml"],
                      cells["TC_ml"], cells["WT_ml"], boxes, cells["edited"] if row.loadable
                      else "", row.state, cells["reviewer"]))
    return table


def summary(rows: list[CaseRow]) -> str:
    """E.g. "3 cases: 1 corrected, 1 reviewed, 1 to review"."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    order = (CORRECTED, REVIEWED, IN_REVIEW, TO_REVIEW, FAILED, BROKEN)
    parts = [f"{counts[s]} {s}" for s in order if counts.get(s)]
    noun = "case" if len(rows) == 1 else "cases"
    return f"{len(rows)} {noun}" + (": " + ", ".join(parts) if parts else "")
