"""What the module installs into Slicer is what pyproject.toml asks for."""

from __future__ import annotations

import pytest

from module_source import ROOT
from UncertaintySegLib.deps import FASTER_CPU, REQUIREMENTS, SHIPPED_BY_SLICER

tomllib = pytest.importorskip("tomllib", reason="tomllib is in Python 3.11+")


def test_requirements_are_pyprojects_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert list(REQUIREMENTS) == project["dependencies"]
    assert list(FASTER_CPU) == project["optional-dependencies"]["cpu"]


def test_what_slicer_ships_is_named_as_pip_names():
    names = {r.split(">")[0].split("=")[0].lower() for r in REQUIREMENTS}
    # requests is not ours but nnU-Net's, torchvision timm's (the PyTorch extension
    # installs it with torch); the others must be requirements of ours.
    assert set(SHIPPED_BY_SLICER) - {"requests", "torchvision"} <= names
