"""The flat module paths of before issue 21 (restructure: keep old names), kept for one
release: `import uncertaintyseg.predict` gives the module `uncertaintyseg.run.predict`
itself, with a DeprecationWarning naming the new path. Standard library only (the package
root imports it, and Slicer's module loads the root's sub-package `uncertaintyseg_shared`
beside it).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

from ._moved_table import MOVED


class _Alias(importlib.abc.Loader):
    """Loads an old path as the module of its new path (the same object, not a copy)."""

    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # The new module is already executed. The import system has just set its __spec__
        # to the old path's (it does so even for a module create_module returned): put the
        # new one back, or reload() and pickling by spec would look for the old path.
        module.__spec__ = self.spec


class MovedFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths of MOVED, and only those."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        warnings.warn(f"{fullname} moved to {new}; the old path goes in the next release",
                      DeprecationWarning, stacklevel=2)  # warnings skips importlib's frames
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Put the finder first (once). It answers only for the names of MOVED; first, because
    a finder that maps the package to another checkout (an editable install of a clone)
    would otherwise find a stale flat file there."""
    if not any(isinstance(finder, MovedFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedFinder())
