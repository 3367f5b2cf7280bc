"""BraTS lesion-wise metrics, per region, in two definitions (each labelled by name).

"BraTS 2023" (the challenge's lesion-wise Dice / HD95): the reference mask is dilated
(3 iterations, 18-neighbourhood) and split into 26-connected components, each holding
the reference voxels inside it (one lesion); the prediction is split into 26-connected
components. A lesion's prediction is the union of the predicted components touching
its dilated extent; its Dice and HD95 (mm) are computed against the lesion. Lesions of
<= 50 reference voxels are dropped (neither counted nor penalised). Every predicted
component touching no dilated lesion is a false positive, scored Dice 0 and HD95
373.13 mm. The case's value is the mean over lesions and false positives; with nothing
in either mask it is Dice 1, HD95 0.

"BraTS 2024+" (panoptica): connected components of each mask, one-to-one matching at
IoU >= 0.5 (panoptica's BraTS preset), then the mean Dice and the mean normalised
surface Dice (tolerance: the smallest voxel spacing) over matched lesions, and the
detection F1 (panoptica's recognition quality). Nothing in either mask gives 1 for all
three; no match gives Dice and NSD 0.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .. import REGIONS
from .metrics import DEFAULT_EMPTY_HD95, dice, hd95

DILATION_ITERATIONS = 3
MIN_LESION_VOXELS = 50  # lesions of at most this many reference voxels are dropped
BRATS2023, BRATS2024 = "brats2023_lesionwise", "brats2024_lesionwise"
_CONNECTED_26 = ndimage.generate_binary_structure(3, 3)
_DILATION_18 = ndimage.generate_binary_structure(3, 2)


def brats2023(ref, pred, spacing_zyx, min_voxels: int = MIN_LESION_VOXELS,
              empty_hd95: float = DEFAULT_EMPTY_HD95) -> dict:
    """The BraTS 2023 lesion-wise Dice and HD95 of one region (bool (Z, Y, X) masks).

    Returns {"dice", "hd95", "lesions" (counted), "dropped", "false_positives",
    "per_lesion": [{"voxels", "dice", "hd95"}]}.
    """
    ref, pred = np.asarray(ref, bool), np.asarray(pred, bool)
    if not ref.any() and not pred.any():
        return {"dice": 1.0, "hd95": 0.0, "lesions": 0, "dropped": 0, "false_positives": 0,
                "per_lesion": []}
    dilated = ndimage.binary_dilation(ref, structure=_DILATION_18,
                                      iterations=DILATION_ITERATIONS)
    extents, n_lesions = ndimage.label(dilated, structure=_CONNECTED_26)
    components, _ = ndimage.label(pred, structure=_CONNECTED_26)
    touching = np.unique(components[dilated & (components > 0)])
    false_positives = int(len(np.unique(components[components > 0])) - len(touching))
    per_lesion, dropped = [], 0
    for index in range(1, n_lesions + 1):
        extent = extents == index
        lesion = ref & extent
        if int(lesion.sum()) <= min_voxels:
            dropped += 1
            continue
        hits = np.unique(components[extent & (components > 0)])
        prediction = np.isin(components, hits) if hits.size else np.zeros_like(ref)
        per_lesion.append({"voxels": int(lesion.sum()), "dice": dice(lesion, prediction),
                           "hd95": hd95(lesion, prediction, spacing_zyx, empty_hd95)})
    count = len(per_lesion) + false_positives
    if count == 0:  # only dropped lesions and no stray prediction
        return {"dice": 1.0, "hd95": 0.0, "lesions": 0, "dropped": dropped,
                "false_positives": 0, "per_lesion": []}
    return {"dice": sum(p["dice"] for p in per_lesion) / count,
            "hd95": (sum(p["hd95"] for p in per_lesion) + empty_hd95 * false_positives) / count,
            "lesions": len(per_lesion), "dropped": dropped,
            "false_positives": false_positives, "per_lesion": per_lesion}


def _panoptica_evaluator():
    from panoptica import (ConnectedComponentsInstanceApproximator, InputType,
                           NaiveThresholdMatching, Panoptica_Evaluator)
    from panoptica.metrics import Metric
    from panoptica.utils.citation_reminder import disable_citation_reminder
    from panoptica.utils.edge_case_handling import (EdgeCaseHandler, EdgeCaseResult,
                                                    MetricZeroTPEdgeCaseHandling)

    disable_citation_reminder()  # it prints a banner on stdout, which json progress owns
    # panoptica has no zero-TP rule for NSD and raises; no match scores 0 (as its DSC)
    zero = MetricZeroTPEdgeCaseHandling(no_instances_result=EdgeCaseResult.NAN,
                                        default_result=EdgeCaseResult.ZERO)
    handler = EdgeCaseHandler({Metric.DSC: zero, Metric.NSD: zero})
    return Panoptica_Evaluator(
        edge_case_handler=handler,
        expected_input=InputType.SEMANTIC,
        instance_approximator=ConnectedComponentsInstanceApproximator(),
        instance_matcher=NaiveThresholdMatching(matching_metric=Metric.IOU,
                                                matching_threshold=0.5),
        instance_metrics=[Metric.DSC, Metric.NSD], global_metrics=[Metric.DSC],
        verbose=False, log_times=False)


def brats2024(ref, pred, spacing_zyx) -> dict:
    """The BraTS 2024+ lesion-wise metrics of one region through panoptica.

    Returns {"dice" (mean over matched), "nsd" (mean over matched), "f1" (detection),
    "tp", "fp", "fn"}. ImportError with the install hint when panoptica is missing.
    """
    ref, pred = np.asarray(ref, bool), np.asarray(pred, bool)
    if not ref.any() and not pred.any():
        return {"dice": 1.0, "nsd": 1.0, "f1": 1.0, "tp": 0, "fp": 0, "fn": 0}
    try:
        evaluator = _panoptica_evaluator()
    except ImportError as error:
        raise ImportError("BraTS 2024+ lesion-wise metrics need panoptica: "
                          "pip install '.[evaluate]' (or pip install panoptica)") from error
    result = evaluator.evaluate(pred.astype(np.uint8), ref.astype(np.uint8),
                                voxelspacing=tuple(float(s) for s in spacing_zyx),
                                verbose=False)["ungrouped"].to_dict()
    tp, fp, fn = int(result["tp"]), int(result["fp"]), int(result["fn"])
    matched = tp > 0
    return {"dice": float(result["sq_dsc"]) if matched else 0.0,
            "nsd": float(result["sq_nsd"]) if matched else 0.0,
            "f1": 2 * tp / (2 * tp + fp + fn), "tp": tp, "fp": fp, "fn": fn}


def lesionwise_scores(reference, output) -> dict:
    """{definition: {region: scores}} for both definitions (per-lesion lists left out)."""
    result = {BRATS2023: {}, BRATS2024: {}}
    for i, region in enumerate(REGIONS):
        scores = brats2023(reference.regions[i], output.regions[i], reference.spacing)
        scores.pop("per_lesion")
        result[BRATS2023][region] = scores
        result[BRATS2024][region] = brats2024(reference.regions[i], output.regions[i],
                                              reference.spacing)
    return result


_COLUMNS = {BRATS2023: ("dice", "hd95", "lesions", "false_positives"),
            BRATS2024: ("dice", "nsd", "f1")}


def lesionwise_rows(evaluation) -> list[dict]:
    """Mean over cases per method, definition and region."""
    rows = []
    for method, cases in evaluation.records.items():
        scored = [r["lesionwise"] for r in cases.values() if r.get("lesionwise")]
        for definition, columns in _COLUMNS.items():
            for region in REGIONS:
                if not scored:
                    continue
                row = {"method": method, "definition": definition, "region": region,
                       "cases": len(scored)}
                for column in columns:
                    row[column] = float(np.mean([s[definition][region][column] for s in scored]))
                rows.append(row)
    return rows


def write_lesionwise(evaluation, out) -> dict:
    """lesionwise.md and lesionwise.csv (one table per definition)."""
    from .store import write_text_atomic
    from .summary import markdown_rows
    from .table import rows_to_csv

    rows = lesionwise_rows(evaluation)
    parts = []
    for definition, columns in _COLUMNS.items():
        chosen = [r for r in rows if r["definition"] == definition]
        if chosen:
            parts.append(f"{definition} (mean over cases)\n\n"
                         + markdown_rows(chosen, ["method", "region", "cases", *columns]))
    markdown = "\n".join(parts) + ("\nDefinitions: docs/EVALUATION.md (BraTS 2023: dilated "
                                   "reference lesions, <= 50 voxels dropped, false positives "
                                   "penalised; BraTS 2024+: panoptica, IoU >= 0.5 matching).\n")
    write_text_atomic(out / "lesionwise.md", "# Lesion-wise metrics\n\n" + markdown)
    write_text_atomic(out / "lesionwise.csv", rows_to_csv(rows))
    return {"markdown": markdown, "figures": {}}
