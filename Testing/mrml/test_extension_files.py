"""The extension's build files and the module's GUI wiring agree with the files on disk.

Slicer itself is not available here, so these checks read the CMake lists, the .ui file
and the module file: a Python file missing from the CMake list would be missing from the
installed extension; a parameter or widget name that does not match would break the GUI.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET

from mrml_helpers import ROOT

MODULE_DIR = ROOT / "UncertaintySeg"


def _cmake_list(text: str, variable: str) -> list[str]:
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S)
    assert match, f"{variable} not found"
    return [item.replace("${MODULE_NAME}", "UncertaintySeg") for item in match.group(1).split()]


def test_every_python_file_is_listed_and_every_listed_file_exists():
    text = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    listed = set(_cmake_list(text, "MODULE_PYTHON_SCRIPTS"))
    on_disk = {"UncertaintySeg.py"} | {
        p.relative_to(MODULE_DIR).as_posix()
        for folder in ("UncertaintySegLib", "uncertaintyseg", "uncertaintyseg_shared", "Testing")
        for p in (MODULE_DIR / folder).rglob("*.py") if "__pycache__" not in p.parts}
    assert sorted(on_disk - listed) == [], "add these to UncertaintySeg/CMakeLists.txt"
    assert sorted(listed - on_disk) == [], "listed in CMakeLists.txt but missing"
    for resource in _cmake_list(text, "MODULE_PYTHON_RESOURCES"):
        assert (MODULE_DIR / resource).is_file(), resource
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def test_extension_metadata():
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    for key in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL",
                "SCREENSHOTURLS", "DEPENDS"):
        assert f"set(EXTENSION_{key} " in text
    assert 'set(EXTENSION_CATEGORY "Segmentation")' in text
    assert re.search(r'set\(EXTENSION_DEPENDS "[^"]*\bPyTorch\b', text)
    urls = re.findall(r"\$\{_raw\}/(\S+?\.png)", text)
    assert "Resources/UncertaintySeg.png" in urls and len(urls) >= 2
    for relative in urls:
        assert (ROOT / relative).is_file(), relative
    assert "add_subdirectory(UncertaintySeg)" in text


def _module_tree():
    return ast.parse((MODULE_DIR / "UncertaintySeg.py").read_text(encoding="utf-8"))


def _ui():
    return ET.parse(MODULE_DIR / "Resources" / "UI" / "UncertaintySeg.ui").getroot()


def test_ui_parameter_names_match_the_parameter_node():
    wrapper = next(node for node in ast.walk(_module_tree()) if isinstance(node, ast.ClassDef)
                   and node.name == "UncertaintySegParameterNode")
    fields = {item.target.id for item in wrapper.body if isinstance(item, ast.AnnAssign)}
    bound = [prop.find("string").text for prop in _ui().iter("property")
             if prop.get("name") == "SlicerParameterName"]
    assert len(bound) == len(set(bound))
    assert set(bound) <= fields, f"unknown parameters in the .ui: {set(bound) - fields}"
    # The two path fields are connected by hand (ctkPathLineEdit -> str).
    assert fields - set(bound) == {"modelFolder", "python"}


# Qt widget glue that only the module file imports (it cannot run under slicer-core).
GUI_LIB_FILES = {"worklist_panel.py", "review_panel.py", "run_panel.py"}


def test_widgets_used_by_the_module_exist_in_the_ui():
    names = {w.get("name") for w in _ui().iter("widget")}
    trees = [_module_tree()] + [ast.parse((MODULE_DIR / "UncertaintySegLib" / name).read_text(
        encoding="utf-8")) for name in sorted(GUI_LIB_FILES)]
    used = {node.attr for tree in trees for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, (ast.Attribute, ast.Name))
            and getattr(node.value, "attr", getattr(node.value, "id", None)) == "ui"
            and not node.attr.startswith("_")}
    assert {"boxTable", "loadDemoButton", "applyButton"} <= used
    assert used <= names, f"not in the .ui: {used - names}"


def test_extensions_index_entry_matches_the_extension():
    """The catalog entry for Slicer's ExtensionsIndex: Slicer 5.10 builds the index from
    <name>.json files (Extensions/CMake/SlicerBlockBuildPackageAndUploadExtensions.cmake:53,
    schema Schemas/slicer-extension-catalog-entry-schema-v1.0.1.json, which requires
    $schema, category and scm_url); the .s4ext file is only generated in a build tree."""
    import json

    entry = json.loads((ROOT / "Resources" / "ExtensionsIndex" / "UncertaintySeg.json")
                       .read_text(encoding="utf-8"))
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json#")
    assert set(entry) <= {"$schema", "category", "scm_url", "scm_revision", "scm_type",
                          "build_dependencies", "build_subdirectory", "enabled", "tier"}
    assert f'set(EXTENSION_CATEGORY "{entry["category"]}")' in text
    depends = re.search(r'set\(EXTENSION_DEPENDS "([^"]*)"', text).group(1).split()
    assert entry["build_dependencies"] == depends
    repository = re.search(r'set\(UNCERTAINTYSEG_REPOSITORY "([^"]+)"', text).group(1)
    assert entry["scm_url"] == repository + ".git"


def test_lib_has_no_torch_or_qt_import():
    for path in (MODULE_DIR / "UncertaintySegLib").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] != "torch", f"{path.name}: {name}"
                assert not name.startswith("slicer.ScriptedLoadableModule"), path.name
                if path.name in GUI_LIB_FILES:
                    continue
                assert name.split(".")[0] not in {"qt", "ctk"}, f"{path.name}: {name}"
                # The Qt glue must stay out of the Qt-free Lib's import graph.
                assert name.rsplit(".", 1)[-1] not in {p[:-3] for p in GUI_LIB_FILES}, \
                    f"{path.name} imports {name}"
