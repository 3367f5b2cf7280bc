"""Every member the module and its Lib use on an object of a known class, checked against
that class's real metadata (metadata.py): a made-up or post-5.10 method on an MRML node,
a method of another class, a signal the widget lacks, an assignment to something that
is not a Qt property, a call with a number of arguments no overload takes, a missing
enum, and slicer.util calls with a keyword the function lacks.

An object's class comes from: the .ui (`self.ui.<name>`, and `loadUI`'s root widget), a
constructor (`qt.QX()`, `ctk.ctkX()`, `slicer.vtkX()`, `vtk.vtkX()`), `AddNewNodeByClass`-
style calls with a literal class name, the return class in a wrapped method's signature
(VTK and PyQt5 docstrings), `for` loops over tuples of typed objects, and TYPES below.

    python Testing/module/class_names.py [FILE ...]   # prints the problems
"""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import metadata  # noqa: E402
from module_source import LIB_DIR, MODULE_FILE, UI_FILE  # noqa: E402
from module_source import dotted as _dotted  # noqa: E402

# The classes of names whose class the code does not show (plain parameters, dataclass
# fields typed `object` so that the Lib imports without slicer). A key matches an
# expression equal to it or ending in "." + key. "*": every file. A wrong entry shows
# up as a false report on the unchanged module, so the table cannot silently lie.
TYPES = {
    "*": {"slicer.mrmlScene": "vtkMRMLScene", "run.uncertainty": "vtkMRMLScalarVolumeNode",
          "run.segmentation": "vtkMRMLSegmentationNode",
          "run.reference_volume": "vtkMRMLScalarVolumeNode", "row.roi": "vtkMRMLMarkupsROINode",
          "logics.scene": "vtkMRMLScene", "logics.app_logic": "vtkMRMLApplicationLogic",
          "logics.segmentations": "vtkSlicerSegmentationsModuleLogic",
          "logics.volumes": "vtkSlicerVolumesLogic", "logics.markups": "vtkSlicerMarkupsLogic"},
    "review_panel.py": {"editor": "qMRMLSegmentEditorWidget"},
    "editing.py": {"editor_node": "vtkMRMLSegmentEditorNode",
                   "segmentation": "vtkMRMLSegmentationNode"},
    "scene.py": {"self.scene": "vtkMRMLScene", "roi": "vtkMRMLMarkupsROINode",
                 "sh": "vtkMRMLSubjectHierarchyNode", "labelmap": "vtkMRMLLabelMapVolumeNode"},
    "export.py": {"self.scene": "vtkMRMLScene", "segmentation": "vtkMRMLSegmentationNode",
                  "self.segmentations": "vtkSlicerSegmentationsModuleLogic"},
    "review.py": {"self.roi": "vtkMRMLMarkupsROINode"},
    "bundle.py": {"roi": "vtkMRMLMarkupsROINode"},
}
# slicer.util functions whose return class the code relies on (util.py v5.10.0).
UTIL_RETURNS = {"loadVolume": "vtkMRMLScalarVolumeNode",
                "loadLabelVolume": "vtkMRMLLabelMapVolumeNode"}
CLASS_ROOTS = {"qt": "Q", "ctk": "ctk", "slicer": ("vtk", "qMRML", "qSlicer"), "vtk": "vtk"}
BY_CLASS = {"AddNewNodeByClass", "CreateNodeByClass", "GetFirstNodeByClass"}


def ui_classes(ui_file=UI_FILE) -> dict[str, str]:
    root = ElementTree.parse(ui_file).getroot().find("widget")
    classes = {w.get("name"): w.get("class") for w in root.iter("widget")}
    classes[""] = root.get("class")  # loadUI's return value
    return classes


def _module_class(dotted: str | None) -> str | None:
    """`qt.QTimer` -> "QTimer" where the module holds that class."""
    if not dotted or dotted.count(".") != 1:
        return None
    root, name = dotted.split(".")
    if root in CLASS_ROOTS and name.startswith(CLASS_ROOTS[root]) and metadata.is_known(name):
        return name
    return None


class FileChecker:
    def __init__(self, path: Path, ui: dict[str, str]):
        self.path, self.ui = Path(path), ui
        self.tree = ast.parse(self.path.read_text(encoding="utf-8"))
        self.table = {**TYPES["*"], **TYPES.get(self.path.name, {})}
        self.env: dict[str, str] = {}
        self.problems: list[str] = []
        self.parents = {child: parent for parent in ast.walk(self.tree)
                        for child in ast.iter_child_nodes(parent)}

    def class_of(self, node) -> str | None:
        text = ast.unparse(node)
        if text in self.env:
            return self.env[text]
        for key, cls in self.table.items():
            if text == key or text.endswith("." + key):
                return cls
        # `self.ui.<name>` in the module; `ui.<name>` in the Lib's panels, which are
        # handed the module's ui.
        if isinstance(node, ast.Attribute) and ast.unparse(node.value) in ("self.ui", "ui"):
            return self.ui.get(node.attr)
        if isinstance(node, ast.Call):
            return self._call_class(node)
        return None

    def _call_class(self, node: ast.Call) -> str | None:
        dotted = _dotted(node.func)
        if _module_class(dotted):
            return _module_class(dotted)
        if dotted and dotted.startswith("slicer.util."):
            if dotted == "slicer.util.loadUI":
                return self.ui.get("")
            return UTIL_RETURNS.get(dotted.split(".")[-1])
        if not isinstance(node.func, ast.Attribute):
            return None
        receiver = self.class_of(node.func.value)
        if node.func.attr in BY_CLASS and node.args and isinstance(node.args[0], ast.Constant):
            return node.args[0].value if metadata.is_known(str(node.args[0].value)) else None
        return metadata.returned_class(receiver, node.func.attr) if receiver else None

    def _learn(self, nodes) -> dict[str, str]:
        """Classes of the names assigned (and loop variables) in `nodes`; a name given
        two classes in one scope is dropped. Twice, so that chains resolve."""
        learnt: dict[str, str | None] = {}
        for _ in range(2):
            for node in (n for top in nodes for n in ast.walk(top)):
                pairs = []
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    pairs = [(node.targets[0], self.class_of(node.value))]
                elif isinstance(node, ast.For) and isinstance(node.iter, (ast.Tuple, ast.List)):
                    pairs = self._loop_classes(node.target, node.iter.elts)
                for target, cls in pairs:
                    key = ast.unparse(target)
                    if cls and learnt.get(key, cls) == cls:
                        learnt[key] = self.env[key] = cls
                    elif cls:
                        learnt[key] = None
                        self.env.pop(key, None)
        return {k: v for k, v in learnt.items() if v}

    def _loop_classes(self, target, items) -> list:
        targets = target.elts if isinstance(target, ast.Tuple) else [target]
        rows = [i.elts if isinstance(target, ast.Tuple) and isinstance(i, ast.Tuple) else [i]
                for i in items]
        pairs = []
        for position, name in enumerate(targets):
            classes = {self.class_of(row[position]) for row in rows if position < len(row)}
            if len(classes) == 1 and None not in classes:
                pairs.append((name, classes.pop()))
        return pairs

    def _scopes(self):
        """(statements, class-level names) of the module level and of each top-level
        function or method (nested functions and lambdas share their enclosing scope);
        `self.x` names are learnt over all of a class's methods."""
        functions = (ast.FunctionDef, ast.AsyncFunctionDef)
        top = [n for n in self.tree.body if not isinstance(n, (*functions, ast.ClassDef))]
        yield top, {}
        for node in self.tree.body:
            if isinstance(node, functions):
                yield [node], {}
            elif isinstance(node, ast.ClassDef):
                methods = [m for m in node.body if isinstance(m, functions)]
                self.env = {}
                shared = {k: v for k, v in self._learn(methods).items() if k.startswith("self.")}
                for method in methods:
                    yield [method], shared

    def check(self) -> list[str]:
        for nodes, shared in self._scopes():
            self.env = dict(shared)
            self._learn(nodes)
            for node in (n for top in nodes for n in ast.walk(top)):
                if isinstance(node, ast.Attribute):
                    self._check_attribute(node)
                elif isinstance(node, ast.Call) and \
                        (_dotted(node.func) or "").startswith("slicer.util."):
                    self._check_util_call(node)
        return self.problems

    def _report(self, node, message) -> None:
        self.problems.append(f"{self.path.name}:{node.lineno}: {message}")

    def _check_attribute(self, node: ast.Attribute) -> None:
        cls = _module_class(_dotted(node.value))  # qt.QTableView.SelectRows, qt.Qt.Checked
        if cls is None:
            cls = self.class_of(node.value)
        if cls is None:
            return
        found = metadata.members(cls)
        if found is None:
            return
        parent = self.parents.get(node)
        if node.attr not in found.names:
            self._report(node, f"{cls} has no {node.attr!r} ({found.source})")
        elif isinstance(node.ctx, ast.Store) and node.attr not in found.properties:
            self._report(node, f"{cls}.{node.attr} is not a property: assigning it does nothing "
                               "in Slicer")
        elif isinstance(parent, ast.Attribute) and parent.attr == "connect" \
                and node.attr not in found.signals:
            self._report(node, f"{cls}.{node.attr} is not a signal")
        elif isinstance(parent, ast.Call) and parent.func is node:
            self._check_arguments(node, parent, cls)

    def _check_arguments(self, node, call: ast.Call, cls: str) -> None:
        if any(isinstance(a, ast.Starred) for a in call.args) or call.keywords:
            return
        counts = {n for n, _ in metadata.signatures(cls, node.attr)}
        if counts and len(call.args) not in counts:
            self._report(node, f"{cls}.{node.attr} takes {sorted(counts)} arguments, "
                               f"not {len(call.args)}")

    def _check_util_call(self, call: ast.Call) -> None:
        name = _dotted(call.func).split(".", 2)[2]
        spec = metadata.SLICER_UTIL.get(name)
        if spec is None:
            self._report(call, f"slicer.util.{name} is not in Slicer 5.10's util.py")
            return
        if spec.get("class"):
            return
        allowed = set(spec["positional"]) | set(spec["keyword_only"])
        for keyword in call.keywords:
            if keyword.arg and keyword.arg not in allowed and not spec["var_keyword"]:
                self._report(call, f"slicer.util.{name} has no keyword {keyword.arg!r} "
                                   f"(util.py:{spec['line']}: {sorted(allowed)})")
        if len(call.args) > len(spec["positional"]) and not spec["var_positional"]:
            self._report(call, f"slicer.util.{name} takes at most {len(spec['positional'])} "
                               "positional arguments")


def checked_files(module_file=MODULE_FILE, lib_dir=LIB_DIR) -> list[Path]:
    return [Path(module_file), *sorted(Path(lib_dir).glob("*.py"))]


def problems(module_file=MODULE_FILE, ui_file=UI_FILE, lib_dir=LIB_DIR) -> list[str]:
    ui = ui_classes(ui_file)
    found = []
    for path in checked_files(module_file, lib_dir):
        found += FileChecker(path, ui).check()
    return found


if __name__ == "__main__":
    files = [Path(p) for p in sys.argv[1:]] or checked_files()
    listed = [p for f in files for p in FileChecker(f, ui_classes()).check()]
    print("\n".join(listed) or "no problems")
    sys.exit(1 if listed else 0)
