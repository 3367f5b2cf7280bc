"""Shared constants of the MRML-tier tests (a uniquely named module: `conftest` is
ambiguous when pytest collects several test folders)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout
SLICER_CORE = "the MRML tier needs the slicer-core wheel: pip install .[scene]"
