"""Members used on objects of known classes exist on those classes (class_names.py,
metadata.py), and the load-time rules of parameterNodeWrapper and the module class
(wrapper_rules.py); each rule fires on the mistake it is for. The mutation script
(tools/mutate_slicer.py, test_mutations.py) measures the whole tier."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import class_names
import wrapper_rules
from module_source import MODULE_FILE, ROOT, UI_FILE

SNIPPET_UI = class_names.ui_classes(UI_FILE)


def test_the_module_and_lib_use_only_members_their_classes_have():
    assert class_names.problems() == []


def test_the_module_passes_the_load_time_rules():
    assert wrapper_rules.problems() == []


def _problems(tmp_path, source, name="editing.py"):
    path = tmp_path / name
    path.write_text(source)
    return class_names.FileChecker(path, SNIPPET_UI).check()


@pytest.mark.parametrize("source, expected", [
    # a made-up method on a node built from its class name
    ("def f(scene):\n    n = scene.AddNewNodeByClass('vtkMRMLMarkupsROINode')\n    n.SetSizeMm(1, 2, 3)\n",
     "vtkMRMLMarkupsROINode has no 'SetSizeMm'"),
    # a method newer than 5.10 (in the wheel, refused by NEWER_THAN_5_10)
    ("import slicer\nd = slicer.vtkMRMLScalarVolumeDisplayNode()\nd.SetWindowMappingMethod(0)\n",
     "has no 'SetWindowMappingMethod'"),
    # an argument count no overload takes
    ("import slicer\nsh = slicer.vtkMRMLSubjectHierarchyNode()\nsh.CreateFolderItem('x')\n",
     "CreateFolderItem takes [2] arguments, not 1"),
    # a wrong Qt signal, a wrong CTK signal, a non-property assignment
    ("import qt\nt = qt.QTableWidget()\nt.rowClicked.connect(print)\n", "QTableWidget has no 'rowClicked'"),
    ("import ctk\np = ctk.ctkPathLineEdit()\np.pathChanged.connect(print)\n", "ctkPathLineEdit has no 'pathChanged'"),
    ("import qt\nb = qt.QPushButton()\nb.enable = True\n", "QPushButton has no 'enable'"),
    ("import qt\nb = qt.QPushButton()\nb.setEnabled.connect(print)\n", "setEnabled is not a signal"),
    ("import qt\nb = qt.QPushButton()\nb.setEnabled = True\n", "setEnabled is not a property"),
    # a return class read from the wrapped signature (vtkSegmentation)
    ("def f(segmentation):\n    segmentation.GetSegmentation().GetSegmentIDBySegmentName('ET')\n",
     "has no 'GetSegmentIDBySegmentName'"),
    ("import slicer\nslicer.util.tryWithErrorDisplay('x', busyCursor=True)\n", "has no keyword 'busyCursor'"),
    ("import slicer\nslicer.util.executePythonModule('x')\n", "not in Slicer 5.10's util.py"),
    ("import qt\nqt.Qt.ItemIsCheckable\n", "Qt has no 'ItemIsCheckable'"),
    ("import ctk\nctk.ctkPathLineEdit.Directories\n", "ctkPathLineEdit has no 'Directories'"),
])
def test_each_member_rule_fires(tmp_path, source, expected):
    found = _problems(tmp_path, source)
    assert any(expected in p for p in found), found


@pytest.mark.parametrize("source", [
    # real members: a base class's method, a property, a signal, an enum, a keyword
    "def f(scene):\n    n = scene.AddNewNodeByClass('vtkMRMLMarkupsROINode')\n    n.SetName('b')\n",
    "import qt\nb = qt.QPushButton()\nb.enabled = True\nb.toggled.connect(print)\n",
    "import qt\nfor w in (qt.QLabel(), qt.QLabel()):\n    w.text = ''\n",
    "import slicer\nslicer.util.tryWithErrorDisplay('x', waitCursor=True)\n",
    "import ctk\np = ctk.ctkPathLineEdit()\np.filters = ctk.ctkPathLineEdit.Dirs\np.validInputChanged.connect(print)\n",
])
def test_real_members_pass(tmp_path, source):
    assert _problems(tmp_path, source) == []


def test_a_name_given_two_classes_in_one_scope_is_not_guessed(tmp_path):
    source = "import qt\ndef f():\n    w = qt.QLabel()\n    w = qt.QTimer()\n    w.text = ''\n"
    assert _problems(tmp_path, source) == []


def _module_copy(tmp_path, old, new):
    text = MODULE_FILE.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"anchor not found once: {old!r}"
    path = tmp_path / "UncertaintySeg.py"
    path.write_text(text.replace(old, new))
    return wrapper_rules.problems(path)


@pytest.mark.rule_self_test
@pytest.mark.parametrize("old, new, expected", [
    ("class UncertaintySegWidget(", "class UncertaintySegPanel(", "no class 'UncertaintySegWidget'"),
    ("@parameterNodeWrapper\n", "@parameterNodeWrapper(prefix='u')\n", "has no keyword 'prefix'"),
    ("    force: bool = False", "    default: bool = False", "'default': a reserved name"),
    ("    force: bool = False", "    force: set = set()", "no serializer takes"),
])
def test_each_load_time_rule_fires(tmp_path, old, new, expected):
    assert any(expected in p for p in _module_copy(tmp_path, old, new))


@pytest.mark.rule_self_test
@pytest.mark.parametrize("old, new", [
    ("@parameterNodeWrapper\n", "@parameterNodeWrapper()\n"),
    ("    force: bool = False", "    force: Annotated[int, Minimum(0), Maximum(3)] = 0"),
])
def test_valid_wrapper_constructs_pass(tmp_path, old, new):
    text = MODULE_FILE.read_text(encoding="utf-8").replace(
        "import Choice, WithinRange,", "import Choice, Maximum, Minimum, WithinRange,")
    path = tmp_path / "UncertaintySeg.py"
    assert text.count(old) == 1
    path.write_text(text.replace(old, new))
    assert wrapper_rules.problems(path) == []


@pytest.mark.skipif(not (os.environ.get("SLICER_SOURCE") and os.environ.get("CTK_SOURCE")),
                    reason="set SLICER_SOURCE and CTK_SOURCE to git clones of Slicer/Slicer "
                           "and commontk/CTK to re-generate slicer_metadata.json")
def test_metadata_is_what_the_script_generates(tmp_path):
    data = ROOT / "Testing" / "module" / "slicer_metadata.json"
    before = json.loads(data.read_text(encoding="utf-8"))
    fresh = tmp_path / "slicer_metadata.json"
    subprocess.run([sys.executable, str(ROOT / "tools" / "slicer_metadata.py"),
                    os.environ["SLICER_SOURCE"], os.environ["CTK_SOURCE"], str(fresh)], check=True)
    assert json.loads(fresh.read_text(encoding="utf-8")) == before
