"""The flat module paths of before issue 21 still import, for one release, as the moved
modules themselves, with a DeprecationWarning (restructure: keep old names)."""
import importlib
import sys
import warnings
from pathlib import Path

import pytest

import uncertaintyseg
from uncertaintyseg._moved_table import MOVED

PACKAGE = Path(uncertaintyseg.__file__).parent


def _forget(name: str) -> None:
    """Drop an old path from the import cache (and its attribute on the parent), so the
    next import goes through the finder again."""
    sys.modules.pop(name, None)
    parent, _, child = name.rpartition(".")
    if parent in sys.modules and child in vars(sys.modules[parent]):
        delattr(sys.modules[parent], child)


@pytest.mark.parametrize("old", ["uncertaintyseg.predict", "uncertaintyseg.io",
                                 "uncertaintyseg.training.cli"])
def test_an_old_path_is_the_new_module_and_warns(old):
    new = importlib.import_module(MOVED[old])
    _forget(old)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}"):
        module = importlib.import_module(old)
    assert module is new
    assert sys.modules[old] is new
    assert new.__name__ == new.__spec__.name == MOVED[old]  # the old path is only a name


def test_from_an_old_path_import_a_name():
    _forget("uncertaintyseg.predict")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from uncertaintyseg.predict import predict
    from uncertaintyseg.run.predict import predict as moved
    assert predict is moved


def test_the_warning_points_at_the_importing_line():
    _forget("uncertaintyseg.cohort")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import uncertaintyseg.cohort  # noqa: F401
    assert [Path(w.filename).name for w in caught
            if issubclass(w.category, DeprecationWarning)] == ["test_moved.py"]


def test_every_new_path_exists_and_no_old_file_is_left():
    for old, new in MOVED.items():
        assert (PACKAGE.parent / (new.replace(".", "/") + ".py")).is_file(), new
        assert not (PACKAGE.parent / (old.replace(".", "/") + ".py")).exists(), old


def test_an_unknown_name_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("uncertaintyseg.no_such_module")

