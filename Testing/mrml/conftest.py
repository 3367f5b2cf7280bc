"""Fixtures of the MRML tier (pytest + the slicer-core wheel; no torch).

The synthetic case and its output folder come from
UncertaintySeg/Testing/Python/synthetic_case.py, which the in-Slicer self-test uses too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "UncertaintySeg"))
sys.path.insert(0, str(HERE.parents[1] / "UncertaintySeg" / "Testing" / "Python"))

from synthetic_case import FixtureCase, write_fixture_case  # noqa: E402


@pytest.fixture(scope="session")
def case2018(tmp_path_factory) -> FixtureCase:
    return write_fixture_case(tmp_path_factory.mktemp("case2018"), "brats2018")


@pytest.fixture(scope="session")
def case2023(tmp_path_factory) -> FixtureCase:
    return write_fixture_case(tmp_path_factory.mktemp("case2023"), "brats2023")


@pytest.fixture(params=["brats2018", "brats2023"])
def any_case(request, case2018, case2023) -> FixtureCase:
    return case2018 if request.param == "brats2018" else case2023


@pytest.fixture
def logics():
    """A fresh headless scene with the module logics, as Slicer would hold them."""
    from UncertaintySegLib.context import create_headless_logics

    return create_headless_logics()
