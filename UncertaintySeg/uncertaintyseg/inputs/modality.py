"""Which modality each volume is, recognised from the image itself.

A multinomial logistic regression on input_features.FEATURE_NAMES (histogram shape of
the robust z-scores, deep brain vs surface), fitted by tools/fit_input_checks.py on the
shared BraTS 2018 cases with augmentation (noise, bias field, gamma, thick slices); its
parameters are modality_model.json beside this file. The check is assignment-wide: the
permutation of the four volumes that fits the classifier best is compared with the
assignment given, so one uncertain volume does not cause a false alarm.
"""
from __future__ import annotations

import itertools
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import MODALITIES
from .input_features import FEATURE_NAMES, volume_features

MODEL_PATH = Path(__file__).with_name("modality_model.json")
# The best assignment must beat the given one by this much log-likelihood (summed over
# the four volumes), e^1 ~ 2.7 to 1, before a swap is claimed. Leave-cases-out on the
# shared cases, clean and augmented, the given assignment always fit best, by 0.79 or
# more; an exchanged FLAIR and T1 beat it by 1.1 or more (docs/INPUT-CHECKS.md).
MIN_LOG_ODDS = 1.0
NAMES = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1ce", "t2": "T2"}


@lru_cache(maxsize=1)
def _model() -> dict:
    model = json.loads(MODEL_PATH.read_text())
    if tuple(model["features"]) != FEATURE_NAMES or tuple(model["classes"]) != MODALITIES:
        raise RuntimeError(f"{MODEL_PATH}: fitted for other features; run "
                           "tools/fit_input_checks.py again")
    return model


def log_probabilities(features: np.ndarray) -> np.ndarray:
    """(n, len(FEATURE_NAMES)) features -> (n, 4) log-probabilities per MODALITIES."""
    model = _model()
    scaled = (features - np.asarray(model["mean"])) / np.asarray(model["scale"])
    logits = scaled @ np.asarray(model["coef"]).T + np.asarray(model["intercept"])
    logits -= logits.max(axis=1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def case_log_probabilities(view: np.ndarray, spacing, depths) -> np.ndarray:
    """(4, 4): row = the volume given as MODALITIES[row], column = what it looks like;
    `depths`: each volume's input_features.depth_mm."""
    return log_probabilities(np.stack([volume_features(v, spacing, d)
                                       for v, d in zip(view, depths)]))


def best_assignment(log_p: np.ndarray) -> tuple[tuple[int, ...], float]:
    """(permutation, log-odds over the given assignment): permutation[i] = the modality
    (index) that volume i looks like, in the most likely one-to-one assignment."""
    given = float(np.trace(log_p))
    best = max(itertools.permutations(range(len(log_p))),
               key=lambda p: sum(log_p[i, p[i]] for i in range(len(p))))
    return best, sum(log_p[i, best[i]] for i in range(len(best))) - given


def _exchanged(permutation) -> str:
    moved = [i for i, p in enumerate(permutation) if p != i]
    if len(moved) == 2:
        a, b = (NAMES[MODALITIES[i]] for i in moved)
        return f"{a} and {b} appear exchanged. "
    cycle = ", ".join(f"{NAMES[MODALITIES[i]]} as {NAMES[MODALITIES[permutation[i]]]}"
                      for i in moved)
    return f"The assignment that fits is: {cycle}. "


def swap_finding(paths: dict, log_p: np.ndarray) -> list[str]:
    """An error naming the volumes whose content says another modality than the one they
    were given as, when a re-assignment of the four fits clearly better."""
    permutation, log_odds = best_assignment(log_p)
    if log_odds < MIN_LOG_ODDS:
        return []
    probability = np.exp(log_p)
    parts = [f"the volume given as {NAMES[m]} ({paths[m]}) looks like a "
             f"{NAMES[MODALITIES[permutation[i]]]} (confidence "
             f"{probability[i, permutation[i]]:.2f})"
             for i, m in enumerate(MODALITIES) if permutation[i] != i]
    text = "; ".join(parts)
    return [text[0].upper() + text[1:] + ". " + _exchanged(permutation)
            + "Check which file is which modality and give them again (--flair --t1 "
            "--t1ce --t2); modalities are recognised from the images "
            "(docs/INPUT-CHECKS.md)."]
