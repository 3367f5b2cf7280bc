"""What Slicer checks when it loads the module file, before any panel exists:

- the Widget class is `<ModuleName>Widget` (qSlicerScriptedLoadableModule.cxx L187 at
  v5.10.0 appends "Widget" to the module's class name; without it there is no panel);
- `@parameterNodeWrapper` or `@parameterNodeWrapper(...)` with the decorator's own
  parameters (wrapper.py L362: only `classtype`);
- no parameter with a reserved name (wrapper.py `checkedSetAttr` raises ValueError);
- every parameter type has a serializer (each `canSerialize` of serializers.py, as
  read from v5.10.0 and stored in slicer_metadata.json, evaluated on the type).

    python Testing/module/wrapper_rules.py [UncertaintySeg.py]
"""

from __future__ import annotations

import ast
import enum
import pathlib
import sys
import types
import typing
from pathlib import Path

if __name__ == "__main__":
    sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "UncertaintySeg"),
                    str(Path(__file__).resolve().parent)]

from metadata import PNW  # noqa: E402
from module_source import (MODULE_FILE, MRMLNode, _wrapper_class, parameters,  # noqa: E402
                           wrapper_decorator)


class _QColor:
    """Stands for qt.QColor in the serializers' tests (the module has no colour)."""


def _can_serialize():
    """The serializers' canSerialize functions, compiled from their v5.10.0 bodies."""
    namespace = {"pathlib": pathlib, "typing": typing, "enum": enum, "types": types,
                 "slicer": types.SimpleNamespace(vtkMRMLNode=MRMLNode),
                 "qt": types.SimpleNamespace(QColor=_QColor)}
    functions = []
    for serializer in PNW["can_serialize"]:
        body = "\n".join("    " + line for line in serializer["body"].splitlines())
        local: dict = {}
        exec(f"def canSerialize(type_):\n{body}", namespace, local)
        functions.append(local["canSerialize"])
    return functions


def _serializable(kind, serializers) -> bool:
    for can in serializers:
        try:
            if can(kind):
                return True
        except NotImplementedError:  # the abstract Serializer.canSerialize
            continue
    return False


def _module_class_problems(tree: ast.Module, module_file: Path) -> list[str]:
    name = Path(module_file).stem
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    missing = [c for c in (name, f"{name}Widget") if c not in classes]
    return [f"{module_file.name}: no class {c!r}: Slicer looks the module and its panel up "
            f"by the file name (qSlicerScriptedLoadableModule.cxx L187)" for c in missing]


def _decorator_problems(tree: ast.Module) -> list[str]:
    decorator = wrapper_decorator(_wrapper_class(tree))
    if not isinstance(decorator, ast.Call):
        return []
    spec, found = PNW["decorator"], []
    allowed = set(spec["positional"]) | set(spec["keyword_only"])
    found += [f"@parameterNodeWrapper has no keyword {k.arg!r} ({spec['source']}: "
              f"{sorted(allowed)})" for k in decorator.keywords if k.arg not in allowed]
    if len(decorator.args) > len(spec["positional"]):
        found.append("@parameterNodeWrapper takes at most one argument")
    return found


def problems(module_file=MODULE_FILE) -> list[str]:
    module_file = Path(module_file)
    tree = ast.parse(module_file.read_text(encoding="utf-8"))
    found = _module_class_problems(tree, module_file) + _decorator_problems(tree)
    params = parameters(module_file)
    reserved = sorted(set(params) & set(PNW["reserved_names"]))
    found += [f"parameter {r!r}: a reserved name ({PNW['reserved_source']} raises ValueError)"
              for r in reserved]
    serializers = _can_serialize()
    # Dataclass parameter packs (parameterPack.py) are not modelled: the module has none.
    for parameter in params.values():
        if not _serializable(parameter.kind, serializers):
            found.append(f"parameter {parameter.name!r}: no serializer takes "
                         f"{parameter.kind!r} (serializers.py canSerialize)")
    return found


if __name__ == "__main__":
    listed = problems(*sys.argv[1:2])
    print("\n".join(listed) or "no problems")
    sys.exit(1 if listed else 0)
