"""Re-generate Testing/module/slicer_metadata.json from clones of Slicer and CTK.

    python tools/slicer_metadata.py SLICER_GIT_DIR CTK_GIT_DIR [OUTPUT.json]

reads (with `git show REV:PATH`, no checkout needed) Slicer v5.10.0 and the CTK commit
that v5.10.0's SuperBuild/External_CTK.cmake pins, and writes what the static tier
(Testing/module/class_names.py) checks the module against:

- `widgets`: the CTK and qMRML widget classes the module's .ui and Python name, and
  their bases up to the first Qt class: signals, Q_PROPERTY names, public slots and
  methods, enum values, each with the header it came from;
- `slicer_util`: every top-level function of Base/Python/slicer/util.py with its
  parameters (to check keyword arguments);
- `parameter_node_wrapper`: the validators and annotations (`__all__` classes of
  validators.py and guiConnectors.py) with their constructor parameters, the
  decorator's parameters, the reserved names (`checkedSetAttr` in wrapper.py) and each
  serializer's `canSerialize` body (serializers.py), which the tier evaluates.

The tier itself needs only the committed JSON, never the clones.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "Testing" / "module" / "slicer_metadata.json"
UI_FILE = ROOT / "UncertaintySeg" / "Resources" / "UI" / "UncertaintySeg.ui"
SLICER_TAG = "v5.10.0"
# Where Slicer and CTK keep the widget headers the module can reach.
CTK_DIRS = ("Libs/Widgets", "Libs/Core", "Libs/Visualization/VTK/Widgets")
SLICER_DIRS = ("Libs/MRML/Widgets", "Base/QTGUI", "Modules/Loadable/Segmentations/Widgets")
# Widgets reached through objects rather than named in the code: the Segment Editor
# module's `editor` (qSlicerSegmentEditorModuleWidget.editor, used in onEdit).
EXTRA_WIDGETS = ("qMRMLSegmentEditorWidget",)
PNW = "Base/Python/slicer/parameterNodeWrapper/"
CPP_WORDS = {"if", "for", "while", "switch", "return", "sizeof", "Q_PROPERTY", "Q_ENUM",
             "Q_FLAGS", "Q_FLAG", "Q_DECLARE_PRIVATE", "Q_DISABLE_COPY", "Q_OBJECT",
             "Q_DECLARE_FLAGS", "Q_ENUMS", "QVTK_OBJECT", "Q_INVOKABLE", "operator"}


def show(git_dir: str, rev: str, path: str) -> str:
    result = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{rev}:{path}"],
                            capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else ""


def ctk_revision(slicer_git: str) -> str:
    text = show(slicer_git, SLICER_TAG, "SuperBuild/External_CTK.cmake")
    match = re.search(r'Slicer_\$\{proj\}_GIT_TAG\s*"([0-9a-f]{40})"', text)
    if not match:
        raise SystemExit("External_CTK.cmake: the pinned CTK commit was not found")
    return match.group(1)


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _class_body(text: str, name: str):
    """(base, body) of `class [EXPORT] name : public Base { body };`."""
    match = re.search(rf"class\s+(?:\w+_EXPORT\s+)?{name}\s*:\s*public\s+([\w:]+)[^{{;]*{{",
                      text)
    if not match:
        return None, None
    depth, start = 1, match.end()
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return match.group(1), text[start:index]
    return match.group(1), text[start:]


def _flatten(body: str) -> str:
    """The class body at depth 0 only (inline function bodies and enum braces kept
    as markers), so that every declaration is one statement."""
    out, depth = [], 0
    for char in body:
        if char == "{":
            depth += 1
            out.append("{" if depth == 1 else "")
        elif char == "}":
            depth -= 1
            out.append("};" if depth == 0 else "")
        else:
            out.append(char)
    return "".join(out)


def parse_widget_header(text: str, name: str) -> dict | None:
    base, body = _class_body(_strip_comments(text), name)
    if body is None:
        return None
    props = re.findall(r"Q_PROPERTY\s*\(\s*[\w:<>]+\s*\*?\s*(\w+)\s+READ", body)
    entry = {"base": base.split("::")[-1], "properties": sorted(set(props)), "signals": [],
             "slots": [], "methods": [], "enums": []}
    section = "private"
    for statement in re.split(r"(?<=[;}])", _flatten(body)):
        for label in re.findall(r"(public|protected|private|signals|Q_SIGNALS)"
                                r"(?:\s+(?:Q_SLOTS|slots))?\s*:", statement):
            section = label
        statement = re.sub(r".*(?:public|protected|private|signals|Q_SIGNALS)"
                           r"(?:\s+(?:Q_SLOTS|slots))?\s*:", "", statement, flags=re.S)
        if section not in ("public", "signals", "Q_SIGNALS"):
            continue
        enum = re.search(r"\benum\s+(?:class\s+)?\w*\s*{([^}]*)}", statement, flags=re.S)
        if enum:
            entry["enums"] += [v.split("=")[0].strip() for v in enum.group(1).split(",")
                               if v.split("=")[0].strip()]
            continue
        method = re.search(r"(~?\w+)\s*\(", statement)
        if method and method.group(1) not in CPP_WORDS and not method.group(1).startswith("~"):
            kind = "signals" if section in ("signals", "Q_SIGNALS") else "methods"
            entry[kind].append(method.group(1))
    for key in ("signals", "methods", "enums"):
        entry[key] = sorted(set(entry[key]))
    return entry


def find_header(git_dir: str, rev: str, dirs, name: str) -> str | None:
    for folder in dirs:
        if show(git_dir, rev, f"{folder}/{name}.h"):
            return f"{folder}/{name}.h"
    return None


def used_widget_classes() -> set[str]:
    names = {w.get("class") for w in ElementTree.parse(UI_FILE).iter("widget")}
    for path in [ROOT / "UncertaintySeg" / "UncertaintySeg.py",
                 *(ROOT / "UncertaintySeg" / "UncertaintySegLib").glob("*.py")]:
        names |= set(re.findall(r"\b(?:ctk|slicer)\.((?:ctk|qMRML|qSlicer)\w+)",
                                path.read_text(encoding="utf-8")))
    return {n for n in names if n.startswith(("ctk", "qMRML", "qSlicer"))} | set(EXTRA_WIDGETS)


def widgets(slicer_git: str, ctk_git: str, ctk_rev: str) -> dict:
    result, todo = {}, sorted(used_widget_classes())
    while todo:
        name = todo.pop()
        if name in result or name.startswith("Q"):
            continue
        if name.startswith("ctk"):
            path, text = find_header(ctk_git, ctk_rev, CTK_DIRS, name), None
            source = f"CTK {ctk_rev[:10]} "
            text = show(ctk_git, ctk_rev, path) if path else ""
        else:
            path = find_header(slicer_git, SLICER_TAG, SLICER_DIRS, name)
            source = f"Slicer {SLICER_TAG} "
            text = show(slicer_git, SLICER_TAG, path) if path else ""
        entry = parse_widget_header(text, name) if text else None
        if entry is None:
            raise SystemExit(f"{name}: no header with its class in {CTK_DIRS + SLICER_DIRS}")
        entry["source"] = source + path
        result[name] = entry
        todo.append(entry["base"])
    return dict(sorted(result.items()))


def _parameters(function: ast.FunctionDef) -> dict:
    args = function.args
    return {"positional": [a.arg for a in args.posonlyargs + args.args],
            "keyword_only": [a.arg for a in args.kwonlyargs],
            "defaults": len(args.defaults),
            "var_positional": args.vararg is not None, "var_keyword": args.kwarg is not None,
            "line": function.lineno}


def slicer_util(slicer_git: str) -> dict:
    tree = ast.parse(show(slicer_git, SLICER_TAG, "Base/Python/slicer/util.py"))
    result = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            result[node.name] = _parameters(node)
        elif isinstance(node, ast.ClassDef):
            result[node.name] = {"class": True, "line": node.lineno}
    return result


def _exported_classes(text: str, path: str) -> dict:
    tree = ast.parse(text)
    exported = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                     and getattr(n.targets[0], "id", "") == "__all__"), [])
    result = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.name not in exported:
            continue
        init = next((f for f in node.body if isinstance(f, ast.FunctionDef)
                     and f.name == "__init__"), None)
        if init is not None:
            params = _parameters(init)
            params["positional"] = params["positional"][1:]  # self
        else:  # a dataclass: its fields, in order
            params = {"positional": [f.target.id for f in node.body
                                     if isinstance(f, ast.AnnAssign)],
                      "keyword_only": [], "defaults": sum(f.value is not None for f in node.body
                                                          if isinstance(f, ast.AnnAssign)),
                      "var_positional": False, "var_keyword": False, "line": node.lineno}
        result[node.name] = dict(params, source=f"{path}:{node.lineno}")
    return result


def parameter_node_wrapper(slicer_git: str) -> dict:
    read = {name: show(slicer_git, SLICER_TAG, PNW + name) for name in
            ("validators.py", "guiConnectors.py", "wrapper.py", "serializers.py")}
    annotations = {}
    for name in ("validators.py", "guiConnectors.py"):
        annotations.update(_exported_classes(read[name], PNW + name))
    wrapper = ast.parse(read["wrapper.py"])
    decorator = next(n for n in wrapper.body if isinstance(n, ast.FunctionDef)
                     and n.name == "parameterNodeWrapper")
    reserved = sorted({c.args[1].value for c in ast.walk(wrapper) if isinstance(c, ast.Call)
                       and getattr(c.func, "id", "") == "checkedSetAttr"})
    serializers = []
    for node in ast.walk(ast.parse(read["serializers.py"])):
        if isinstance(node, ast.FunctionDef) and node.name == "canSerialize":
            body = ast.unparse(ast.Module(body=node.body, type_ignores=[]))
            serializers.append({"source": f"{PNW}serializers.py:{node.lineno}", "body": body})
    return {"annotations": annotations, "decorator": dict(_parameters(decorator),
                                                          source=f"{PNW}wrapper.py:{decorator.lineno}"),
            "reserved_names": reserved, "reserved_source": f"{PNW}wrapper.py checkedSetAttr",
            "can_serialize": serializers}


def main(slicer_git: str, ctk_git: str, output: Path = OUTPUT) -> None:
    ctk_rev = ctk_revision(slicer_git)
    if subprocess.run(["git", f"--git-dir={ctk_git}", "cat-file", "-e", ctk_rev]).returncode:
        raise SystemExit(f"CTK {ctk_rev} (pinned by Slicer {SLICER_TAG}) is not in {ctk_git}")
    data = {"about": (f"Generated by tools/slicer_metadata.py from Slicer {SLICER_TAG} "
                      f"(SuperBuild/External_CTK.cmake pins CTK {ctk_rev}, read at that "
                      "commit). Do not edit: re-run the script."),
            "slicer": SLICER_TAG, "ctk": ctk_rev,
            "widgets": widgets(slicer_git, ctk_git, ctk_rev),
            "slicer_util": slicer_util(slicer_git),
            "parameter_node_wrapper": parameter_node_wrapper(slicer_git)}
    temporary = output.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    temporary.replace(output)  # atomic: the tier never reads a half-written file
    print(f"wrote {output}: {len(data['widgets'])} widget classes, "
          f"{len(data['slicer_util'])} slicer.util names")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], *[Path(p) for p in sys.argv[3:]])
