"""The static tier: the Slicer module read as source (ast, xml), no Slicer, no slicer-core.

Catches what only the application would otherwise show: a parameter bound to a widget
that Slicer's parameterNodeWrapper refuses, a Slicer name that does not exist in 5.10,
an MRML method newer than 5.10.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "UncertaintySeg"))
