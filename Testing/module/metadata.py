"""The members of a class as Slicer 5.10 has them, from real metadata:

- Qt classes: PyQt5's Qt 5.15 (class attributes: methods, enums; QMetaObject: signals
  and properties, which PythonQt exposes as attributes). Slicer 5.10 builds Qt 5.15.
- CTK / qMRML widgets: slicer_metadata.json, extracted from their headers by
  tools/slicer_metadata.py (CTK at the commit Slicer v5.10.0 pins), plus their Qt bases.
- MRML, VTK and Slicer logic classes: the slicer-core wheel's real classes (Slicer
  5.13) less slicer_api.NEWER_THAN_5_10; the wrapped methods' docstrings give their
  C++ signatures (argument counts, return classes).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from slicer_api import NEWER_THAN_5_10

METADATA = json.loads(Path(__file__).with_name("slicer_metadata.json").read_text(encoding="utf-8"))
WIDGETS = METADATA["widgets"]
SLICER_UTIL = METADATA["slicer_util"]
PNW = METADATA["parameter_node_wrapper"]
# "Name(self, a:int, b:str) -> vtkX": one line per overload in VTK and PyQt5 docstrings.
SIGNATURE = re.compile(r"^\s*(\w+)\((.*?)\)(?:\s*->\s*([\w.\[\]]+))?", re.M)


@dataclass
class Members:
    """What an object of one class offers: `names` can be read or called; `properties`
    can be assigned; `signals` can be connected."""

    cls: str
    names: set = field(default_factory=set)
    properties: set = field(default_factory=set)
    signals: set = field(default_factory=set)
    source: str = ""


@functools.lru_cache(maxsize=None)
def _qt_modules():
    try:
        from PyQt5 import QtCore, QtGui, QtWidgets
    except ImportError as error:
        raise ImportError(f"{error}: Testing/module reads Qt 5.15's metadata through PyQt5; "
                          "install the test extra: pip install -c constraints.txt "
                          "'.[scene,test]'") from error

    return QtWidgets, QtGui, QtCore


def qt_class(name: str):
    return next((getattr(m, name) for m in _qt_modules() if hasattr(m, name)), None)


@functools.lru_cache(maxsize=None)
def _slicer():
    try:
        import slicer  # the slicer-core wheel (vtk comes with it)
        import vtk
    except ImportError as error:
        raise ImportError(f"{error}: Testing/module reads the MRML classes of the slicer-core "
                          "wheel; install the scene extra: pip install -c constraints.txt "
                          "'.[scene,test]'") from error

    return slicer, vtk


def vtk_class(name: str):
    slicer, vtk = _slicer()
    return getattr(slicer, name, None) or getattr(vtk, name, None)


def is_known(name: str) -> bool:
    return name in WIDGETS or (name.startswith("Q") and qt_class(name) is not None) \
        or (name.startswith("vtk") and vtk_class(name) is not None)


def _qt_members(name: str) -> Members:
    cls = qt_class(name)
    members = Members(name, set(dir(cls)), source="PyQt5 (Qt 5.15)")
    meta = getattr(cls, "staticMetaObject", None)
    if meta is not None:
        members.properties = {meta.property(i).name() for i in range(meta.propertyCount())}
        members.signals = {bytes(meta.method(i).name()).decode() for i in range(meta.methodCount())
                           if meta.method(i).methodType() == meta.method(i).Signal}
    members.names |= members.properties | members.signals
    return members


def _widget_members(name: str) -> Members:
    entry = WIDGETS[name]
    base = members(entry["base"])
    own = set(entry["methods"]) | set(entry["slots"]) | set(entry["enums"])
    return Members(name, base.names | own | set(entry["properties"]) | set(entry["signals"]),
                   base.properties | set(entry["properties"]), base.signals | set(entry["signals"]),
                   entry["source"])


def _vtk_members(name: str) -> Members:
    names = {n for n in dir(vtk_class(name)) if n not in NEWER_THAN_5_10}
    # VTK objects have no Qt properties; an assignment is only checked for the name
    # existing (VTK >= 9.4 wraps Get/Set pairs as snake_case properties).
    return Members(name, names, properties=names,
                   source="slicer-core (Slicer 5.13) less NEWER_THAN_5_10")


@functools.lru_cache(maxsize=None)
def _vtk_classes() -> dict:
    # Only slicer's own classes: scanning `vtk` would import every VTK module (seconds),
    # and the MRML / Slicer subclasses are all in `slicer`.
    slicer, _ = _slicer()
    return {n: getattr(slicer, n) for n in dir(slicer) if n.startswith("vtk")
            and isinstance(getattr(slicer, n, None), type)}


def _names_of_subclasses(name: str) -> set:
    """The members declared by `name` or any of its subclasses (own attributes only,
    which is fast: dir() on every subclass is not)."""
    base, names = vtk_class(name), set(dir(vtk_class(name)))
    for cls in _vtk_classes().values():
        if issubclass(cls, base):
            names |= set(vars(cls))
    return names - NEWER_THAN_5_10


@functools.lru_cache(maxsize=None)
def members(name: str) -> Members | None:
    """`name`'s members; "~vtkX" (a class a method is declared to return): what vtkX or
    any subclass has, since the wrapper returns the object's real class."""
    if name.startswith("~"):
        exact = name[1:]
        if not exact.startswith("vtk"):
            return members(exact)
        names = _names_of_subclasses(exact)
        return Members(name, names, names, source=f"{exact} or a subclass, slicer-core less "
                                                 "NEWER_THAN_5_10")
    if name in WIDGETS:
        return _widget_members(name)
    if name.startswith("Q") and qt_class(name) is not None:
        return _qt_members(name)
    if name.startswith("vtk") and vtk_class(name) is not None:
        return _vtk_members(name)
    return None


def signatures(cls: str, method: str) -> list[tuple[int, str | None]]:
    """(number of arguments, return class) of each overload that the docstring lists;
    [] when unknown."""
    cls = cls.lstrip("~")  # a subclass may add overloads, but keeps the base's
    owner = vtk_class(cls) if cls.startswith("vtk") else qt_class(cls)
    doc = getattr(getattr(owner, method, None), "__doc__", None) or ""
    doc = re.sub(r",\s*\n\s+", ", ", doc)  # VTK wraps long signatures after a comma
    result = []
    for name, args, returns in SIGNATURE.findall(doc):
        if name != method:
            continue
        params = [a for a in re.split(r",\s*(?![^\[]*\])", args)
                  if a.strip() and a.strip() != "self"]
        optional = sum("=" in p for p in params)
        result += [(n, returns or None) for n in range(len(params) - optional, len(params) + 1)]
    return result


def returned_class(cls: str, method: str) -> str | None:
    # PyQt5 writes "-> Optional[QHeaderView]" for pointers that may be None.
    found = {re.sub(r"^Optional\[(.*)\]$", r"\1", returns).split(".")[-1]
             for _, returns in signatures(cls, method) if returns}
    found = {r for r in found if is_known(r)}
    return "~" + found.pop() if len(found) == 1 else None


def _class_member(cls: str, parts: list[str]) -> bool:
    if not parts:
        return True
    if cls == "Qt":  # the Qt namespace: enums only
        return len(parts) == 1 and hasattr(qt_class("Qt"), parts[0])
    found = members(cls)
    return found is not None and len(parts) == 1 and parts[0] in found.names


def verified(dotted: str) -> bool:
    """Whether a qt./ctk./slicer./vtk. dotted name exists in the metadata: a class (and
    one member of it), a slicer.util function, a parameterNodeWrapper export."""
    root, *parts = dotted.split(".")
    if not parts:
        return False
    head, rest = parts[0], parts[1:]
    if root == "qt":
        return qt_class(head) is not None and _class_member(head, rest)
    if root == "ctk":
        return head in WIDGETS and _class_member(head, rest)
    if root == "vtk":
        return head.startswith("vtk") and vtk_class(head) is not None and _class_member(head, rest)
    if root == "slicer" and head == "util":
        return len(rest) == 1 and rest[0] in SLICER_UTIL
    if root == "slicer" and head == "parameterNodeWrapper":
        return len(rest) == 1 and (rest[0] in PNW["annotations"]
                                   or rest[0] == "parameterNodeWrapper")
    if root == "slicer" and head == "mrmlScene":  # the application's vtkMRMLScene
        return _class_member("vtkMRMLScene", rest)
    if root == "slicer" and head.startswith("vtk"):
        # vars, not getattr: the wheel's slicer forwards unknown names to vtk, Slicer's
        # does not (slicer.vtkCommand is an AttributeError in Slicer 5.10, review #3).
        return head in vars(_slicer()[0]) and _class_member(head, rest)
    if root == "slicer" and head in WIDGETS:
        return _class_member(head, rest)
    return False
