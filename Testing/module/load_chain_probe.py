"""Import the Slicer module as Slicer 5.10 loads it, in an import system that admits only
what Slicer's Python has; print what was refused, with the import chain, as JSON.

    python -S load_chain_probe.py MODULE_DIR PACKAGES_TXT MODE TARGET...

Run by Testing/module/test_load_chain.py in a subprocess, with `-S` so that nothing of
the test's own environment is imported before the hooks are in place (the editable
install's .pth files import a finder of their own); the interpreter's site-packages is
added as a plain folder, so the packages Slicer ships are found there.

MODE `slicer` admits the standard library, the Slicer-provided modules (stubbed here),
the packages Slicer 5.10 ships (PACKAGES_TXT) and the project's own packages; an import
of the pipeline package (`uncertaintyseg`) is allowed but recorded, because the module
reaches the pipeline only through `uncertaintyseg_shared`. MODE `stdlib` admits the
standard library and `uncertaintyseg_shared`, nothing else. A refused import raises
ModuleNotFoundError, as it would in Slicer.

A TARGET ending in .py is run as Slicer runs a scripted module (its file name is the
module name); any other TARGET is a module name.
"""

import importlib
import importlib.util
import json
import sys
import sysconfig
import types
from pathlib import Path
from unittest import mock

# What Slicer's application provides itself (no package on disk): the slicer package,
# VTK, PythonQt's qt and CTK, and the wrapped MRML/Slicer libraries.
SLICER_PROVIDED = {"slicer", "vtk", "vtkmodules", "qt", "ctk", "PythonQt", "sitkUtils",
                   "vtkITK", "vtkAddon", "vtkTeem"}
SLICER_PREFIXES = ("mrml", "ctkqt", "qMRML", "qSlicer", "vtkSlicer", "vtkMRML")
PROJECT = {"UncertaintySeg", "UncertaintySegLib", "uncertaintyseg_shared"}
# Slicer 5.10 runs Python 3.12.10 (its CMakeLists.txt:210); a test interpreter before
# 3.12 still lists these standard modules, which 3.12 removed (PEP 594, PEP 632).
REMOVED_IN_3_12 = {"distutils", "imp", "asynchat", "asyncore", "smtpd"}
PIPELINE = "uncertaintyseg"


def slicer_provided(top: str) -> bool:
    return top in SLICER_PROVIDED or top.startswith(SLICER_PREFIXES)


def _base(*args, **kwargs):
    """__init__ of the plain classes that stand in for Slicer's base classes (a
    MagicMock cannot be subclassed)."""
    args[0].parent = mock.MagicMock()


def _parameter_node_wrapper(cls=None, **kwargs):
    # Both @parameterNodeWrapper and @parameterNodeWrapper(...) are valid in Slicer.
    return cls if cls is not None else (lambda inner: inner)


# One class each: the module file derives from several of them at once.
REAL_NAMES = {name: type(name, (), {"__init__": _base}) for name in (
    "ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
    "ScriptedLoadableModuleTest", "VTKObservationMixin")}
REAL_NAMES["parameterNodeWrapper"] = _parameter_node_wrapper


class StubModule(types.ModuleType):
    """A Slicer-provided module: the base classes above, a MagicMock for anything else,
    so that the module file's top-level code runs."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = REAL_NAMES.get(name) or mock.MagicMock(name=f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class StubLoader:
    def create_module(self, spec):
        module = StubModule(spec.name)
        module.__path__ = []  # a package, so that `import vtkmodules.vtkCommonCore` works
        return module

    def exec_module(self, module):
        pass


class Gate:
    """The meta-path finder in front of all others: stubs Slicer's modules, lets the
    admitted ones through to the normal finders, refuses the rest (recording who asked)."""

    def __init__(self, admitted, mode):
        self.admitted, self.mode = admitted, mode
        self.refused, self.pipeline = [], []

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if self.mode == "slicer" and slicer_provided(top):
            return importlib.util.spec_from_loader(fullname, StubLoader(), is_package=True)
        if top in self.admitted:
            return None
        chain = import_chain()
        if self.mode == "slicer" and top == PIPELINE:
            self.pipeline.append({"name": fullname, "chain": chain})
            return None
        # Imports a shipped package makes of an optional package it lacks are refused
        # silently, as in Slicer; only the project's own imports are reported.
        if chain and chain[-1].partition(".")[0] in PROJECT | {PIPELINE}:
            self.refused.append({"name": fullname, "chain": chain})
        raise ModuleNotFoundError(f"No module named {fullname!r} (not in Slicer 5.10's "
                                  "Python)", name=fullname)


def import_chain() -> list:
    """The modules whose top-level code is running, outermost first: who imported whom."""
    chain, frame = [], sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "?")
        if frame.f_code.co_name == "<module>" and name != "__main__":
            chain.append(name)
        frame = frame.f_back
    return chain[::-1]


def admitted_names(packages_txt: Path, mode: str) -> set:
    stdlib = set(sys.stdlib_module_names) - REMOVED_IN_3_12
    if mode == "stdlib":
        return stdlib | {"uncertaintyseg_shared"}
    shipped = {line.split()[0] for line in packages_txt.read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")}
    return stdlib | shipped | PROJECT


def load(target: str, module_dir: Path) -> None:
    if not target.endswith(".py"):
        importlib.import_module(target)
        return
    # As qSlicerScriptedLoadableModule::setPythonSource does: the file run as a module
    # named after it.
    path = module_dir / target
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)


def main(module_dir: str, packages_txt: str, mode: str, targets: list) -> None:
    paths = sysconfig.get_paths()
    sys.path[:] = [module_dir, *sys.path[1:], paths["purelib"], paths["platlib"]]
    gate = Gate(admitted_names(Path(packages_txt), mode), mode)
    sys.meta_path.insert(0, gate)
    errors = {}
    for target in targets:
        try:
            load(target, Path(module_dir))
        except Exception as error:  # reported, not raised: the test names every failure
            errors[target] = f"{type(error).__name__}: {error}"
    project = sorted(n for n in sys.modules if n.partition(".")[0] in PROJECT | {PIPELINE})
    print(json.dumps({"errors": errors, "refused": gate.refused, "pipeline": gate.pipeline,
                      "loaded": project,
                      "numpy": "numpy" in sys.modules}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
