"""The floors of the pipeline (docs/ARCHITECTURE.md, "Floors"): pyproject.toml's
import-linter contracts hold (lazy imports included), the doc lists the same floors in the
same order (the contract is the source), and the check does catch an upward import, a
module on no floor, and the 18 upward imports of 9ee41c5 (code review 3, section 2.4;
its flat module names are kept here on purpose: restructure: keep old names)."""
import importlib.util
import shutil
import subprocess
import tarfile
import tomllib
from pathlib import Path

import importlinter  # noqa: F401 (the test extra: pip install -c constraints.txt -e '.[test]')
import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "UncertaintySeg"
_spec = importlib.util.spec_from_file_location("check_layers", ROOT / "tools" / "check_layers.py")
check_layers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_layers)


def _contract_floors() -> list[set[str]]:
    """The floors contract's layers, ground first, under uncertaintyseg_shared."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (floors,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "floors"]
    layers = [{name.strip() for name in layer.split("|")} for layer in floors["layers"]]
    return [{"uncertaintyseg_shared"}] + layers[::-1]


def _copy(tmp_path) -> Path:
    """The two packages in a scratch folder, to break."""
    copy = tmp_path / "UncertaintySeg"
    for package in ("uncertaintyseg", "uncertaintyseg_shared"):
        shutil.copytree(SOURCE / package, copy / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _lint(source: Path) -> tuple[int, str]:
    return check_layers.run_contracts(ROOT / "pyproject.toml", source)


def test_the_floors_hold():
    code, report = _lint(SOURCE)
    assert code == 0, report
    assert "2 kept, 0 broken" in report


def test_the_doc_lists_the_floors_of_the_contract():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert [set(floor) for floor in check_layers.floors_from_doc(doc)] == _contract_floors()


def test_a_lazy_upward_import_breaks_the_floors(tmp_path):
    source = _copy(tmp_path)
    io = source / "uncertaintyseg" / "files" / "io.py"
    io.write_text(io.read_text(encoding="utf-8")
                  + "\n\ndef _late():\n    from ..commands import cli\n    return cli\n",
                  encoding="utf-8")
    code, report = _lint(source)
    assert code != 0
    assert "uncertaintyseg.files.io -> uncertaintyseg.commands.cli" in report


def test_a_module_on_no_floor_breaks_the_floors(tmp_path):
    # A flat module added beside the sub-packages (another branch's new module) must be
    # placed: restructure.py's table, then a floor here.
    source = _copy(tmp_path)
    (source / "uncertaintyseg" / "newcomer.py").write_text('"""New."""\n', encoding="utf-8")
    code, report = _lint(source)
    assert code != 0 and "uncertaintyseg.newcomer" in report


def test_the_shared_package_importing_the_pipeline_breaks_its_contract(tmp_path):
    source = _copy(tmp_path)
    (source / "uncertaintyseg_shared" / "late.py").write_text(
        "def f():\n    import uncertaintyseg.run.predict\n", encoding="utf-8")
    code, report = _lint(source)
    assert code != 0 and "uncertaintyseg_shared.late -> uncertaintyseg.run.predict" in report


def test_the_check_fails_on_9ee41c5(tmp_path):
    # The commit code review 3 read: its doc's flat floor order (one module table row per
    # floor) against its own import graph.
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "9ee41c5", "docs",
                              "UncertaintySeg/uncertaintyseg"], capture_output=True)
    if archive.returncode:
        pytest.skip("commit 9ee41c5 is not in this clone's history")
    (tmp_path / "old.tar").write_bytes(archive.stdout)
    with tarfile.open(tmp_path / "old.tar") as tar:
        tar.extractall(tmp_path / "old", filter="data")
    code, report, unplaced = check_layers.check(tmp_path / "old")
    assert code != 0
    assert check_layers.upward_imports(report) == 18
    assert "uncertaintyseg.io -> uncertaintyseg.dicom (l.103, l.241)" in report
    assert unplaced == ["analytic", "evaluate_cli", "progress", "scene_cli", "views"]


def test_the_tool_passes_this_checkout_with_its_known_ignore():
    # tools/check_layers.py reads the doc's floors and pyproject's accepted upward imports
    assert check_layers.known_ignores(ROOT) == [
        "uncertaintyseg.evaluation.model_card -> uncertaintyseg.training.bundle"]
    code, report, unplaced = check_layers.check(ROOT)
    assert code == 0 and not unplaced, report
