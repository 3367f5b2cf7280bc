"""Correction efficiency: what a reviewer gains by fixing the refinement boxes first.

A simulated reviewer replaces the prediction by the reference inside the union of the
top-k boxes of a region (k = 1 to 5, the run's `refinement_boxes.json`, ranked by the
region's uncertainty). We report the Dice after each k and compare with k boxes of the
same size centred on random voxels of the predicted region ("tumour", a strong
baseline: a reviewer looks at the tumour anyway) and of the brain, 50 draws each,
seeded by the case id. Share recovered = (Dice after - Dice before) / (1 - Dice before).

With several methods, the same correction is also done inside boxes ranked by *each other
method's* uncertainty (`ranked_correction`): the evaluated method's box sizes and count,
placed by the other method's `refinement_boxes.json` when its boxes have those sizes, else
by the kernel search on its uncertainty map (on the case grid, with the evaluated run's
overlap and score settings). It asks whose uncertainty points the reviewer at the
evaluated segmentation's errors.
"""

from __future__ import annotations

import zlib

import numpy as np

from .. import REGIONS

MAX_BOXES = 5
DRAWS = 50


def boxes_zyx(records: list[dict], region: str) -> list[tuple[tuple, tuple]]:
    """(start, size) in (z, y, x) voxels of a region's boxes, by rank, from the
    refinement_boxes.json records (whose IJK order is x, y, z)."""
    chosen = sorted((b for b in records if b["region"] == region), key=lambda b: b["rank"])
    return [(tuple(reversed(b["start_ijk"])), tuple(reversed(b["size_ijk"]))) for b in chosen]


def dice_after_boxes(ref: np.ndarray, pred: np.ndarray, boxes) -> list[float]:
    """Dice of `pred` corrected to `ref` inside the union of the first k boxes, for
    k = 1 .. len(boxes). Counts are updated on each box's new voxels only."""
    union = np.zeros(ref.shape, bool)
    tp = int(np.count_nonzero(ref & pred))
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    result = []
    for start, size in boxes:
        window = tuple(slice(s, s + n) for s, n in zip(start, size))
        new = ~union[window]
        r, p = ref[window] & new, pred[window] & new
        n_r = int(np.count_nonzero(r))
        tp += n_r - int(np.count_nonzero(r & p))  # inside, the prediction becomes ref
        n_pred += n_r - int(np.count_nonzero(p))
        union[window] = True
        result.append(1.0 if n_pred + n_ref == 0 else 2.0 * tp / (n_pred + n_ref))
    return result


def random_boxes(candidates: np.ndarray, shape, sizes, rng) -> list[tuple[tuple, tuple]]:
    """Boxes of `sizes` centred on random voxels among `candidates` (flat indices),
    moved inside the volume where they would stick out."""
    centres = np.unravel_index(rng.choice(candidates, size=len(sizes)), shape)
    boxes = []
    for k, size in enumerate(sizes):
        start = tuple(int(min(max(c[k] - n // 2, 0), dim - n))
                      for c, n, dim in zip(centres, size, shape))
        boxes.append((start, size))
    return boxes


def _baseline(ref, pred, candidates, sizes, rng) -> list[float]:
    if candidates.size == 0:
        return [float("nan")] * len(sizes)
    runs = [dice_after_boxes(ref, pred, random_boxes(candidates, ref.shape, sizes, rng))
            for _ in range(DRAWS)]
    return np.mean(runs, axis=0).tolist()


def region_correction(ref, pred, brain, boxes, rng) -> dict:
    """{"boxes", "dice_before", "top", "random_tumour", "random_brain"} (lists over k)."""
    from .metrics import dice

    boxes = boxes[:MAX_BOXES]
    sizes = [size for _, size in boxes]
    return {"boxes": len(boxes), "dice_before": dice(ref, pred),
            "top": dice_after_boxes(ref, pred, boxes),
            "random_tumour": _baseline(ref, pred, np.flatnonzero(pred), sizes, rng),
            "random_brain": _baseline(ref, pred, np.flatnonzero(brain), sizes, rng)}


def correction_scores(reference, output) -> dict | None:
    """{region: region_correction(...)}; None when the output has no boxes."""
    if not output.boxes:
        return None
    rng = np.random.default_rng(zlib.crc32(reference.case_id.encode("utf-8")))
    return {region: region_correction(reference.regions[i], output.regions[i],
                                      reference.brain, boxes_zyx(output.boxes, region), rng)
            for i, region in enumerate(REGIONS)}


def source_boxes(source, region: str, size: tuple, count: int,
                 settings: dict) -> list[tuple[tuple, tuple]] | None:
    """Up to `count` boxes of `size` (z, y, x) for `region`, ranked by `source`'s
    uncertainty: its refinement_boxes.json boxes when they all have that size, else the
    kernel search on its uncertainty map (`settings`: the evaluated run's max_overlap and
    min_score_fraction); None when `source` has neither."""
    from ..stages.kernels import search_kernels

    listed = boxes_zyx(source.boxes or [], region)
    if listed and all(tuple(s) == tuple(size) for _, s in listed):
        return listed[:count]
    if source.uncertainty is None:
        return None
    found = search_kernels(np.asarray(source.uncertainty[REGIONS.index(region)]), size, region,
                           max_overlap=float(settings.get("max_overlap", 0.4)),
                           min_score_fraction=float(settings.get("min_score_fraction", 0.1)),
                           max_count=count)
    return [(tuple(b.start), tuple(b.size)) for b in found]


def ranked_correction(reference, target, source) -> dict | None:
    """{region: {"boxes", "dice_before", "ranked"}}: `target`'s regions corrected inside
    the boxes `source`'s uncertainty ranks (same sizes and count as `target`'s own top
    boxes, see `source_boxes`); None when `target` has no boxes or `source` nothing to
    rank by."""
    from .metrics import dice

    if not target.boxes:
        return None
    settings = (target.report or {}).get("settings") or {}
    result = {}
    for i, region in enumerate(REGIONS):
        own = boxes_zyx(target.boxes, region)[:MAX_BOXES]
        ref, pred = reference.regions[i], target.regions[i]
        boxes = source_boxes(source, region, own[0][1], len(own), settings) if own else []
        if boxes is None:
            return None
        result[region] = {"boxes": len(boxes), "dice_before": dice(ref, pred),
                          "ranked": dice_after_boxes(ref, pred, boxes)}
    return result


def share_recovered(before: float, after) -> np.ndarray:
    """(after - before) / (1 - before); NaN when nothing was left to recover."""
    after = np.asarray(after, np.float64)
    return (after - before) / (1.0 - before) if before < 1.0 else np.full(after.shape, np.nan)


STRATEGIES = (("top", "top-k refinement boxes"), ("random_tumour", "random on predicted region"),
              ("random_brain", "random in brain"))
RANKED = "ranked"


def ranked_label(source: str) -> str:
    """The strategy name of boxes ranked by another method's uncertainty."""
    return f"boxes ranked by {source}"


def _strategy_rows(region: str, k: int, label: str, usable: list[dict], key: str) -> dict:
    gains = [c[key][k - 1] - c["dice_before"] for c in usable]
    shares = [share_recovered(c["dice_before"], c[key][k - 1]) for c in usable]
    return {"region": region, "k": k, "strategy": label, "cases": len(usable),
            "dice_gain": float(np.mean(gains)),
            "share_recovered": float(np.nanmean(shares))
            if np.isfinite(shares).any() else float("nan")}


def correction_rows(records: dict[str, dict], rankings: dict[str, dict] | None = None
                    ) -> list[dict]:
    """Mean Dice gain and share recovered per region, k and strategy over the cases
    that have at least k boxes of that region; `rankings` ({source method: {case:
    record}}, records of `ranked_correction`) add one strategy per source."""
    sources = [(ranked_label(name), [r["correction"] for r in cases.values()
                                     if r.get("correction")])
               for name, cases in (rankings or {}).items()]
    own = [r["correction"] for r in records.values() if r.get("correction")]
    rows = []
    for region in REGIONS:
        for k in range(1, MAX_BOXES + 1):
            usable = [c[region] for c in own if c[region]["boxes"] >= k]
            rows += [_strategy_rows(region, k, label, usable, key)
                     for key, label in STRATEGIES if usable]
            for label, cases in sources:
                ranked = [c[region] for c in cases if c[region]["boxes"] >= k]
                if ranked:
                    rows.append(_strategy_rows(region, k, label, ranked, RANKED))
    return rows


def correction_plot(rows: list[dict], title: str) -> bytes:
    from .plots import _figure, _png

    plt, figure = _figure(10.0, 3.4)
    for index, region in enumerate(REGIONS):
        axes = figure.add_subplot(1, 3, index + 1)
        for label in dict.fromkeys(r["strategy"] for r in rows):
            chosen = [r for r in rows if r["region"] == region and r["strategy"] == label]
            axes.plot([r["k"] for r in chosen], [r["share_recovered"] for r in chosen],
                      marker="o", label=label)
        axes.set_title(region)
        axes.set_xlabel("boxes corrected (k)")
        axes.set_ylabel("share of the Dice gap recovered")
        axes.grid(alpha=0.3)
        if index == 0:
            axes.legend(fontsize=7)
    figure.suptitle(title, y=1.04)
    return _png(plt, figure)


def write_correction(evaluation, out) -> dict:
    """correction.md, correction.csv and correction.png for the first (fused) method."""
    from .store import write_bytes_atomic, write_text_atomic
    from .summary import markdown_rows
    from .table import rows_to_csv

    method = evaluation.methods[0].name
    rows = correction_rows(evaluation.records[method], evaluation.rankings)
    if not rows:
        return {"markdown": "No result with refinement boxes.\n", "figures": {}}
    markdown = (markdown_rows(rows, ["region", "k", "strategy", "cases", "dice_gain",
                                     "share_recovered"])
                + f"\nMethod {method}: the prediction is replaced by the reference inside "
                  f"k boxes; random boxes have the same sizes, {DRAWS} draws per case; boxes "
                  "ranked by another method have the same sizes and count, placed by that "
                  "method's uncertainty. Share "
                  "recovered = Dice gain / (1 - Dice before), averaged over cases.\n")
    png = correction_plot(rows, f"Correction efficiency, {method}")
    write_text_atomic(out / "correction.md", "# Correction efficiency\n\n" + markdown)
    write_text_atomic(out / "correction.csv", rows_to_csv(rows))
    write_bytes_atomic(out / "correction.png", png)
    return {"markdown": markdown, "figures": {"correction.png": png}}
