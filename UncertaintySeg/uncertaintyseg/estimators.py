"""The uncertainty estimators behind `predict --method` (design 5), one interface.

Every method yields the same things for `pipeline.run_case`: P2D and the binned entropy
of its test-time views (`views`), boxes from the same kernel search on its own
uncertainty, and fused probabilities; so the output contract and `evaluate` need no
special cases. Only `hybrid` refines its boxes with the 3D network and fuses; the other
methods report P3D as -1 everywhere (no cube refined) and their P2D as the result.

| method | views of each slice | 3D refinement |
|---|---|---|
| hybrid | spherical projections (the paper) | yes, fused |
| projection-2d | spherical projections | no (the paper's 2D-only result) |
| lsu-2d | linear scaling about the same origins (LSU-Net baseline) | no |
| tta-2d | nnU-Net's four 2D flips | no |

The method names are defined in `options.METHODS` (the Slicer module reads them there).
"""

from __future__ import annotations

from dataclasses import dataclass

from .options import METHODS
from .views import FlipViews, ProjectionViews


@dataclass(frozen=True)
class Method:
    """How one estimator makes its views and whether it refines in 3D."""

    name: str
    refines: bool

    def views(self, radius: float):
        """The view family of this method for a sphere (or scaling) radius in px."""
        if self.name == "tta-2d":
            return FlipViews()
        return ProjectionViews(radius, "linear" if self.name == "lsu-2d" else "spherical")


ESTIMATORS = {name: Method(name, refines=name == "hybrid") for name in METHODS}
