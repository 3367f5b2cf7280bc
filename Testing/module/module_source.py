"""Reading the Slicer module without Slicer: its parameter node (ast + a small
evaluation of the annotations), the .ui widgets bound to parameters (xml), and the
slicer/qt/ctk/vtk names and MRML calls in its Python files.

The checkers take paths, so the same rules run on the module of any commit (the
report checks them on 9f8429e, where they fail).
"""

from __future__ import annotations

import ast
import typing
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from metadata import PNW, vtk_class

ROOT = Path(__file__).resolve().parents[2]
MODULE_DIR = ROOT / "UncertaintySeg"
MODULE_FILE = MODULE_DIR / "UncertaintySeg.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "UncertaintySeg.ui"
LIB_DIR = MODULE_DIR / "UncertaintySegLib"
IN_SLICER_FILES = (MODULE_FILE, *sorted((MODULE_DIR / "Testing" / "Python").glob("*.py")))
API_ROOTS = ("slicer", "qt", "ctk", "vtk")


def _stand_in(name: str, spec: dict) -> type:
    """A class with the constructor Slicer's has (slicer_metadata.json, read from
    parameterNodeWrapper's validators.py / guiConnectors.py at v5.10.0) that keeps its
    arguments as attributes of the same names: a wrong keyword or argument count raises
    the TypeError Slicer would, and the connector rules read `.minimum`, `.choices`..."""
    positional, keyword_only = spec["positional"], spec["keyword_only"]
    required = len(positional) - spec["defaults"]
    params = [p if i < required else f"{p}=None" for i, p in enumerate(positional)]
    params += (["*"] if keyword_only and not spec["var_positional"] else []) + \
        [f"{k}=None" for k in keyword_only]
    body = "".join(f"    self.{p} = {p}\n" for p in positional + keyword_only) or "    pass\n"
    namespace: dict = {}
    exec(f"def __init__(self, {', '.join(params)}):\n{body}", namespace)
    fields = positional + keyword_only

    def __repr__(self):
        return f"{name}({', '.join(repr(getattr(self, f)) for f in fields)})"

    def __eq__(self, other):
        return type(other) is type(self) and all(getattr(self, f) == getattr(other, f)
                                                 for f in fields)

    return type(name, (), {"__init__": namespace["__init__"], "__repr__": __repr__,
                           "__eq__": __eq__, "__hash__": None, "source": spec["source"]})


ANNOTATIONS = {name: _stand_in(name, spec) for name, spec in PNW["annotations"].items()}
Choice, WithinRange = ANNOTATIONS["Choice"], ANNOTATIONS["WithinRange"]
Minimum, Maximum = ANNOTATIONS["Minimum"], ANNOTATIONS["Maximum"]


class MRMLNode:
    """Stands for the vtkMRML*Node classes the annotations name."""


@dataclass
class Parameter:
    name: str
    kind: type            # the annotation without Annotated
    validators: tuple     # the stand-ins of Choice, WithinRange, Minimum... in Annotated
    default: object

    def first(self, cls):
        return next((v for v in self.validators if isinstance(v, cls)), None)


def wrapper_decorator(node: ast.ClassDef):
    """The class's @parameterNodeWrapper or @parameterNodeWrapper(...) decorator, if any."""
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if getattr(target, "id", getattr(target, "attr", None)) == "parameterNodeWrapper":
            return decorator
    return None


def _wrapper_class(tree: ast.Module) -> ast.ClassDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and wrapper_decorator(node) is not None:
            return node
    raise AssertionError("no @parameterNodeWrapper class in the module")


def _imported_from_wrapper(tree: ast.Module) -> dict:
    """The stand-ins of what the module imports from slicer.parameterNodeWrapper (a name
    it uses without importing fails with Slicer's NameError)."""
    names = {a.asname or a.name: a.name for n in tree.body if isinstance(n, ast.ImportFrom)
             and n.module == "slicer.parameterNodeWrapper" for a in n.names}
    return {alias: ANNOTATIONS[name] for alias, name in names.items() if name in ANNOTATIONS}


def parameters(module_file: Path = MODULE_FILE) -> dict[str, Parameter]:
    """The parameter node's fields, with annotations evaluated.

    Runs only the module-level helper functions (names starting with "_") and the class
    body without its decorator, with uncertaintyseg_shared.options' real OPTIONS; any other
    name the annotations need fails here with a NameError.
    """
    from uncertaintyseg_shared.options import OPTIONS

    tree = ast.parse(Path(module_file).read_text(encoding="utf-8"))
    cls = _wrapper_class(tree)
    cls.decorator_list = []
    helpers = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("_")]
    namespace = {"Annotated": typing.Annotated, "OPTIONS": OPTIONS,
                 **_imported_from_wrapper(tree)}
    # Node classes the slicer-core wheel lacks stay undefined: a NameError, as in Slicer.
    namespace.update({n.id: MRMLNode for n in ast.walk(cls) if isinstance(n, ast.Name)
                      and n.id.startswith("vtkMRML") and vtk_class(n.id) is not None})
    # dont_inherit: this file's `from __future__ import annotations` would turn the
    # module's annotations into strings, which Slicer never sees.
    code = compile(ast.Module(body=[*helpers, cls], type_ignores=[]), str(module_file), "exec",
                   dont_inherit=True)
    exec(code, namespace)
    result = {}
    for name, annotation in namespace[cls.name].__annotations__.items():
        kind, validators = annotation, ()
        if typing.get_origin(annotation) is typing.Annotated:
            kind, *rest = typing.get_args(annotation)
            validators = tuple(rest)
        result[name] = Parameter(name, kind, validators, getattr(namespace[cls.name], name, None))
    return result


@dataclass
class BoundWidget:
    name: str
    widget_class: str
    parameter: str
    properties: dict      # .ui numeric properties: minimum, maximum, ...


def bound_widgets(ui_file: Path = UI_FILE) -> list[BoundWidget]:
    """Widgets with a SlicerParameterName property (what connectGui binds:
    parameterNodeWrapper/wrapper.py v5.10.0 _connectGui L241-253)."""
    result = []
    for widget in ElementTree.parse(ui_file).iter("widget"):
        props = {p.get("name"): p for p in widget.findall("property")}
        if "SlicerParameterName" not in props:
            continue
        numbers = {}
        for key, prop in props.items():
            value = prop.find("double") if prop.find("double") is not None else prop.find("number")
            if value is not None:
                numbers[key] = float(value.text)
        result.append(BoundWidget(widget.get("name"), widget.get("class"),
                                  props["SlicerParameterName"].find("string").text, numbers))
    return result


def ui_widget_names(ui_file: Path = UI_FILE) -> set[str]:
    return {w.get("name") for w in ElementTree.parse(ui_file).iter("widget")}


def ui_attributes_used(module_file: Path = MODULE_FILE) -> set[str]:
    """Names X in `self.ui.X` in the module."""
    tree = ast.parse(Path(module_file).read_text(encoding="utf-8"))
    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Attribute) and n.value.attr == "ui"}


def dotted(node) -> str | None:
    """`a.b.c` of an attribute chain on a name; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def api_names(files) -> set[str]:
    """The longest slicer./qt./ctk./vtk. dotted names the files use (attribute chains
    and `from slicer.x import y`)."""
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                name = dotted(node)
                if name and name.split(".")[0] in API_ROOTS:
                    found.add(name)
            elif isinstance(node, ast.ImportFrom) and node.module \
                    and node.module.split(".")[0] in API_ROOTS:
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {n for n in found if not any(other.startswith(n + ".") for other in found)}


def called_methods(files) -> dict[str, list[str]]:
    """CamelCase attribute calls (VTK/MRML style) -> "file:line" where they are made."""
    calls: dict[str, list[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr[:1].isupper():
                calls.setdefault(node.func.attr, []).append(f"{Path(path).name}:{node.lineno}")
    return calls
