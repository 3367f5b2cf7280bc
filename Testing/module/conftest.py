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
