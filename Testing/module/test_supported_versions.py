"""One supported Slicer version, said the same way everywhere it is stated."""

from __future__ import annotations

import re

from module_source import MODULE_FILE, ROOT
from UncertaintySegLib.deps import MINIMUM_PYTHON, MINIMUM_SLICER


def test_metadata_readme_docs_and_module_state_the_minimum_slicer():
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    description = re.search(r'set\(EXTENSION_DESCRIPTION "([^"]*)"\)', cmake).group(1)
    status = re.search(r'set\(EXTENSION_STATUS "([^"]*)"\)', cmake).group(1)
    stated = {"EXTENSION_DESCRIPTION": description, "EXTENSION_STATUS": status,
              "README.md": (ROOT / "README.md").read_text(encoding="utf-8"),
              "docs/SLICER.md": (ROOT / "docs" / "SLICER.md").read_text(encoding="utf-8"),
              "UncertaintySeg.py helpText": MODULE_FILE.read_text(encoding="utf-8")}
    for where, text in stated.items():
        assert f"Slicer {MINIMUM_SLICER} or newer" in text, where
    # 5.10 ships Python 3.12.10 (Slicer's CMakeLists.txt v5.10.0 L210); nnunetv2 2.6+
    # needs 3.10, which is what the version check enforces.
    assert MINIMUM_PYTHON == (3, 10)
    assert "5.6 or newer" not in stated["docs/SLICER.md"]  # review #18
