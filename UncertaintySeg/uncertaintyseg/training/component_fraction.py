"""The WT component fraction of a model, chosen by the training chain on fused validation
cases (docs/DECISIONS.md #13). Here, not in `stages.postprocess`, because it scores with
`evaluation.metrics`, a floor above the stages."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import REGIONS
from ..evaluation.metrics import dice
from ..stages.postprocess import DEFAULT_COMPONENT_FRACTION, nest, remove_small_components

# Candidate WT component fractions tried by the training chain: the default (0.1), two
# stricter ones, and 1.0 = keep only the largest whole-tumour component.
COMPONENT_FRACTIONS = (DEFAULT_COMPONENT_FRACTION, 0.25, 0.5, 1.0)


def choose_component_fraction(cases: Sequence[tuple[np.ndarray, np.ndarray]],
                              candidates: Sequence[float] = COMPONENT_FRACTIONS
                              ) -> tuple[float, dict[float, list[float]]]:
    """The WT component fraction for a model, chosen on (probabilities, reference) pairs.

    Each case is (probabilities (3, ...) float, reference regions (3, ...) bool), REGIONS
    order. Every candidate is scored by the Dice per region of
    `remove_small_components(nest(p > 0.5), fraction)`, averaged over the cases. The
    choice is the largest fraction whose mean Dice over the three regions is not below
    the best one's: like nnU-Net's `determine_postprocessing` (keep the largest
    component when it helps), except that ties go to the stricter filter, because on
    training cases the networks rarely produce stray components at all, so "no worse"
    is the usual outcome there (docs/DECISIONS.md #13).
    Returns (fraction, {fraction: [Dice ET, TC, WT]}).
    """
    if not cases:
        raise ValueError("choose_component_fraction needs at least one case")
    table = {}
    for fraction in sorted(candidates):
        scores = []
        for probabilities, reference in cases:
            kept = remove_small_components(nest(np.asarray(probabilities) > 0.5), fraction)
            scores.append([dice(reference[r], kept[r]) for r in range(len(REGIONS))])
        table[float(fraction)] = np.mean(scores, axis=0).tolist()
    best = max(np.mean(v) for v in table.values())
    chosen = max(f for f, v in table.items() if np.mean(v) >= best - 1e-9)
    return chosen, table
