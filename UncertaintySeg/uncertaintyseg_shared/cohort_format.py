"""The format of the cohort table (`predict --cases`), which the Slicer worklist reads.

`uncertaintyseg.cohorts.cohort_table` writes it; the names of its files, its columns and the
status words are here so that the worklist reads what the writer writes.
"""

from .brats import REGIONS

TABLE_CSV = "cohort.csv"
TABLE_MARKDOWN = "cohort.md"
RECORDS_DIR = ".cohort"  # per-case status records of cases without a complete output
COHORT_COLUMNS = ("rank", "case", "status", "quality_flag", "estimated_dice",
                  "quality_reason", "triage_score", "triage_flag", "seconds",
                  *(f"{region}_ml" for region in REGIONS), "boxes", "output", "message")

DONE, SKIPPED, INPUT_ERROR, FAILED, PENDING = ("done", "skipped", "input error", "failed",
                                               "pending")
