"""Every Slicer name the module and its Lib use exists in Slicer 5.10 (real metadata:
metadata.verified; the rest in slicer_api.ALLOWED, each with the source file that has
it); no MRML method newer than 5.10; the module loads
on the Python of older Slicer (3.9), so that Apply can say which Slicer is needed."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest

from metadata import verified
from module_source import IN_SLICER_FILES, LIB_DIR, MODULE_DIR, MODULE_FILE, api_names, called_methods
from slicer_api import ALLOWED, NEWER_THAN_5_10, NOT_IN_5_8

LIB_FILES = tuple(sorted(LIB_DIR.glob("*.py")))


def test_every_slicer_name_is_verified_in_slicer_5_10():
    unknown = {n for n in api_names(IN_SLICER_FILES + LIB_FILES) - set(ALLOWED) if not verified(n)}
    assert unknown == set(), ("not in Qt 5.15, slicer_metadata.json or the slicer-core wheel: "
                              "check these in Slicer v5.10.0's source and add them to "
                              "Testing/module/slicer_api.py with the file that has them")


def test_allow_list_holds_only_names_no_metadata_has():
    assert [n for n in ALLOWED if verified(n)] == []


def test_a_name_that_slicer_does_not_have_is_caught(tmp_path):
    # review #3: slicer.vtkCommand does not exist (vtkCommand is in vtk, not slicer).
    wrong = tmp_path / "wrong.py"
    wrong.write_text("import slicer\nslicer.vtkCommand.ModifiedEvent\nslicer.vtkMRMLScene\n")
    names = api_names([wrong]) - set(ALLOWED)
    assert {n for n in names if not verified(n)} == {"slicer.vtkCommand.ModifiedEvent"}


def test_no_mrml_method_newer_than_the_oldest_supported_slicer():
    calls = called_methods(IN_SLICER_FILES + LIB_FILES)
    newer = {name: where for name, where in calls.items() if name in NEWER_THAN_5_10}
    assert newer == {}, "not in Slicer 5.10"
    older = {name: where for name, where in calls.items() if name in NOT_IN_5_8}
    assert older == {}, "not in Slicer 5.8: use SetTag(GetTerminologyEntryTagName(), ...)"


def _load_chain() -> list[Path]:
    """The module file and every project file it imports at module level, recursively
    (what Slicer runs when it loads the module)."""
    seen, todo = [], [MODULE_FILE]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if isinstance(node, ast.ImportFrom) and node.level:
                names = [f"{path.parent.name}.{node.module}" if node.module else path.parent.name]
            for name in names:
                parts = name.split(".")
                for candidate in (MODULE_DIR.joinpath(*parts).with_suffix(".py"),
                                  MODULE_DIR.joinpath(*parts, "__init__.py")):
                    if candidate.is_file():
                        todo.append(candidate)
    return seen


def test_the_module_loads_on_python_3_9():
    chain = _load_chain()
    assert {"deps.py", "runner.py", "options.py", "errors.py"} <= {p.name for p in chain}
    for path in chain:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, feature_version=(3, 9))  # no match, no 3.10 grammar
        future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
                     for n in tree.body)
        unions = [n.lineno for n in ast.walk(tree) if isinstance(n, (ast.AnnAssign, ast.arg))
                  and isinstance(n.annotation, ast.BinOp)]
        assert future or not unions, f"{path.name}:{unions}: X | Y annotations need " \
                                     "`from __future__ import annotations` on Python 3.9"
        newer_keywords = [f"{path.name}:{n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.keyword)
                          and n.arg in ("strict", "kw_only", "slots")]
        assert newer_keywords == [], "zip(strict=) and dataclass(kw_only=, slots=) are 3.10+"


@pytest.mark.skipif(not os.environ.get("SLICER_SOURCE"),
                    reason="set SLICER_SOURCE to a clone of github.com/Slicer/Slicer to "
                           "re-verify the allow-list against its v5.10.0 tag")
def test_allow_list_sources_exist_in_slicer_5_10():
    def show(path):
        return subprocess.run(["git", "-C", os.environ["SLICER_SOURCE"], "show",
                               f"v5.10.0:{path}"], capture_output=True, text=True).stdout
    for name, where in ALLOWED.items():
        words = where.split()
        path = next((w for w in words if "/" in w and "." in w), None)
        if path is None:
            continue
        file, _, line = path.rstrip(";,)").partition(":")
        text = show(file)
        assert text, f"{name}: {file} is not in Slicer v5.10.0"
        last = name.split(".")[-1]
        if line.isdigit() and not file.endswith("qSlicerAbstractCoreModule.h"):
            excerpt = "\n".join(text.splitlines()[int(line) - 3:int(line) + 2])
            assert last in excerpt or name.split(".")[1] in excerpt, (name, where)
