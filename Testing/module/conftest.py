"""The static tier: the Slicer module read as source (ast, xml), without the application.

Catches what only the application would otherwise show: a parameter bound to a widget
that Slicer's parameterNodeWrapper refuses, a Slicer name that does not exist in 5.10,
a member that the object's class lacks (checked against real metadata: the slicer-core
wheel's MRML/VTK classes, Qt 5.15 through PyQt5, CTK/qMRML headers extracted into
slicer_metadata.json), an MRML method newer than 5.10, a reserved parameter name.
Needs slicer-core (the scene extra) and PyQt5 (the test extra); not the Slicer source.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "UncertaintySeg"))


def pytest_configure(config):
    # tools/mutate_slicer.py deselects these: they edit the unchanged module themselves to
    # show that a rule fires, so a mutation that moves their anchor is not a module error.
    config.addinivalue_line("markers", "rule_self_test: a test of a rule on an edited copy "
                                       "of the module (not a check of the module)")
