"""The module's load chain as Slicer 5.10 loads it (slicer-review-3, L1; issue 18).

At startup Slicer runs UncertaintySeg.py as a module; if any module-level import on its
chain is missing from Slicer's Python, the module is not registered and does not appear
at all, and the first Apply that would install the pipeline's packages never comes.
Here the module file (and every UncertaintySegLib module) is imported in a subprocess
whose import system admits only the standard library, Slicer's own modules (stubbed),
the packages Slicer 5.10 ships (slicer_5_10_python_packages.txt, read from its SuperBuild
by tools/slicer_python_packages.py) and the project's packages (load_chain_probe.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MODULE_DIR = HERE.parents[1] / "UncertaintySeg"
PACKAGES = HERE / "slicer_5_10_python_packages.txt"
PROBE = HERE / "load_chain_probe.py"
LIB_MODULES = sorted(f"UncertaintySegLib.{p.stem}" for p in
                     (MODULE_DIR / "UncertaintySegLib").glob("*.py") if p.stem != "__init__")
SHARED_MODULES = sorted(f"uncertaintyseg_shared.{p.stem}" for p in
                        (MODULE_DIR / "uncertaintyseg_shared").glob("*.py")
                        if p.stem != "__init__")


def probe(mode: str, targets: list[str]) -> dict:
    # -S: the test environment's .pth files (an editable install's finder) stay out.
    result = subprocess.run([sys.executable, "-S", str(PROBE), str(MODULE_DIR), str(PACKAGES),
                             mode, *targets], capture_output=True, text=True, timeout=300,
                            cwd=HERE)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def explain(found: list[dict]) -> str:
    return "\n".join(f"{item['name']}, imported by {' -> '.join(item['chain'])}"
                     for item in found)


@pytest.fixture(scope="module")
def slicer_load():
    return probe("slicer", ["UncertaintySeg.py", *LIB_MODULES])


def test_module_file_loads_with_only_what_slicer_5_10_has(slicer_load):
    assert slicer_load["refused"] == [], (
        "module-level imports that Slicer 5.10 does not have (the module would not "
        "appear):\n" + explain(slicer_load["refused"]))
    assert slicer_load["errors"] == {}
    # The chain was really followed: the module file reached the Lib's Qt glue.
    assert {"UncertaintySeg", "UncertaintySegLib.worklist_panel",
            "uncertaintyseg_shared.options"} <= set(slicer_load["loaded"])


def test_module_reaches_the_pipeline_only_through_the_shared_package(slicer_load):
    assert slicer_load["pipeline"] == [], (
        "import uncertaintyseg_shared instead:\n" + explain(slicer_load["pipeline"]))


def test_shared_package_imports_only_the_standard_library():
    assert SHARED_MODULES, "no uncertaintyseg_shared package"
    found = probe("stdlib", SHARED_MODULES)
    assert found["refused"] == [] and found["errors"] == {}, explain(found["refused"])
    assert set(SHARED_MODULES) <= set(found["loaded"])


def test_the_gate_refuses_a_third_party_import_and_names_the_chain(tmp_path):
    # The rule itself: a package Slicer lacks, two project modules deep.
    lib = tmp_path / "UncertaintySegLib"
    lib.mkdir()
    (lib / "__init__.py").write_text("")
    (lib / "outer.py").write_text("from . import inner\n")
    (lib / "inner.py").write_text("import numpy\nimport filelock\n")
    (tmp_path / "UncertaintySeg.py").write_text("import slicer\nimport UncertaintySegLib.outer\n")
    result = subprocess.run([sys.executable, "-S", str(PROBE), str(tmp_path), str(PACKAGES),
                             "slicer", "UncertaintySeg.py"], capture_output=True, text=True,
                            timeout=120, cwd=HERE)
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["refused"] == [{"name": "filelock", "chain": [
        "UncertaintySeg", "UncertaintySegLib.outer", "UncertaintySegLib.inner"]}]
    assert "filelock" in found["errors"]["UncertaintySeg.py"]


def test_package_list_is_read_from_slicer_5_10_superbuild():
    rows = [line.split() for line in PACKAGES.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
    assert all(len(row) == 4 and row[3].startswith("SuperBuild/External_") for row in rows)
    names = {row[0]: row[2] for row in rows}
    # Versions the review read at v5.10.0 (External_python-numpy.cmake:43, ...).
    assert names["numpy"] == "2.0.2" and names["packaging"] == "25.0"
    assert names["SimpleITK"] == "2.5.2" and "filelock" not in names and "torch" not in names


@pytest.mark.skipif(not os.environ.get("SLICER_SOURCE"),
                    reason="set SLICER_SOURCE to a clone of github.com/Slicer/Slicer to "
                           "re-read the package list from its v5.10.0 SuperBuild")
def test_package_list_equals_what_the_script_reads_from_slicer():
    git_dir = subprocess.run(["git", "-C", os.environ["SLICER_SOURCE"], "rev-parse",
                              "--absolute-git-dir"], capture_output=True, text=True,
                             check=True).stdout.strip()
    result = subprocess.run([sys.executable, str(HERE.parents[1] / "tools" /
                                                 "slicer_python_packages.py"),
                             "--git-dir", git_dir, "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
