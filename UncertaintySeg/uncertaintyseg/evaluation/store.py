"""Atomic writes and the per-case score cache that makes `evaluate` resumable.

A scored (method, case) pair is one JSON file `OUT/cases/<method>/<case>.json` holding
the scores, the parts computed (voxel, uncertainty, lesionwise) and the sizes and times
of the result files it read; it is reused while those files are unchanged and it holds
every part asked for.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..files.output_safety import atomic_path
from ..files.output_safety import write_text_atomic  # noqa: F401  (this module's name for it)
from .pairing import safe_name

CACHE_VERSION = 4  # 2: case_scores added; 3: auroc_border; 4: beyond the border (far)


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write through a temporary sibling (fsync, rename): a reader never sees half a file."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def finite(value):
    """JSON has no NaN: store it as null (read back as NaN by `as_float`)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_json_atomic(path, data) -> Path:
    return write_text_atomic(path, json.dumps(finite(data), indent=1, sort_keys=False))


def as_float(value) -> float:
    return float("nan") if value is None else float(value)


def cache_path(out_dir, method_name: str, case_id: str) -> Path:
    return Path(out_dir) / "cases" / safe_name(method_name) / f"{case_id}.json"


def read_cached(out_dir, method_name: str, case_id: str, signature: dict,
                parts: set[str]) -> dict | None:
    """The cached record when it matches the result files and holds `parts`."""
    path = cache_path(out_dir, method_name, case_id)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a damaged cache file is scored again
    if (record.get("cache_version") != CACHE_VERSION or record.get("source") != signature
            or not parts <= set(record.get("parts", []))):
        return None
    return record


def write_cached(out_dir, method_name: str, case_id: str, record: dict) -> Path:
    return write_json_atomic(cache_path(out_dir, method_name, case_id),
                             {**record, "cache_version": CACHE_VERSION})
