"""The rules of this tier on the module as it was at 9f8429e, the commit the Slicer API
review read (three errors that kill the panel on load, and SetTerminology): each rule
must fail there. Needs the project's git history (skipped in a shallow clone)."""

from __future__ import annotations

import io
import subprocess
import tarfile

import pytest

from connector_rules import problems
from metadata import verified
from module_source import ROOT, api_names, called_methods
from slicer_api import ALLOWED, NOT_IN_5_8

COMMIT = "9f8429e"


@pytest.fixture(scope="module")
def old_module(tmp_path_factory):
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", COMMIT, "UncertaintySeg"],
                             capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {COMMIT} is not in this clone's history")
    folder = tmp_path_factory.mktemp("at_9f8429e")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "UncertaintySeg"


def test_connector_rules_find_the_two_load_breakers_and_the_ranges(old_module):
    found = problems(old_module / "UncertaintySeg.py",
                     old_module / "Resources" / "UI" / "UncertaintySeg.ui")
    # review #1 (four combo boxes), #2 (the slider), #7 (six spin boxes)
    assert sum("combo box needs" in p for p in found) == 4
    assert any(p.startswith("thresholdSliderWidget") and "unbounded" in p for p in found)
    assert sum("overwrites the .ui limits" in p for p in found) == 6


def test_names_and_mrml_rules_find_vtkcommand_and_set_terminology(old_module):
    files = [old_module / "UncertaintySeg.py", *sorted((old_module / "UncertaintySegLib").glob("*.py"))]
    assert "slicer.vtkCommand.ModifiedEvent" in api_names(files) - set(ALLOWED)  # review #3
    assert not verified("slicer.vtkCommand.ModifiedEvent")
    assert "SetTerminology" in set(called_methods(files)) & NOT_IN_5_8  # review #4
