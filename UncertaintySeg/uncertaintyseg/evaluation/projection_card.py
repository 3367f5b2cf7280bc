"""The projection study on the model card: its table (`curve_lines`, one per device
measured) and its figure (`curve_figure`, projection_curve.png in the model folder)."""

from __future__ import annotations

from uncertaintyseg_shared.options import PROJECTION_PRESETS

from .. import REGIONS
from ..stages.projection_curve import CHOSEN_BY_TEXT
from .plots import REGION_COLOURS, _figure, _png


def _cells(values: dict, digits: int = 3) -> str:
    return " / ".join("n/a" if values.get(r) is None else f"{values[r]:.{digits}f}"
                      for r in REGIONS)


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def curve_lines(block: dict) -> list[str]:
    """Markdown of one device's curve: where it was measured, a row per count, the count
    `auto` takes from it."""
    curve = block["curve"]
    cases = sorted({c for row in curve.values() for c in row["cases"]})
    lines = [f"Measured {block['measured']} on {block['device']} ({block['cpu']}, "
             f"{block['threads']} thread(s), {block['backend']} backend, "
             f"{block.get('uncertainty_map', 'the default')} uncertainty map), "
             f"{len(cases)} validation case(s) ({', '.join(cases)}), `{block['command']}`. "
             "Means over the cases; AUROC: the voxel uncertainty map against the error "
             "voxels in the brain, overall and beyond 2 mm of the predicted border; "
             "quality abs error: the case-quality estimate (report.json `quality`) against the "
             "real WT Dice, and its review flags; triage: report.json's triage score (the "
             "binned entropy's) and its review flags at the model's threshold; CPU s: the "
             "process's CPU-seconds of one `predict` (all stages, a shared machine).", "",
             "| projections | Dice ET / TC / WT | HD95 mm ET / TC / WT | AUROC ET / TC / WT "
             "| AUROC beyond 2 mm ET / TC / WT | quality abs error | quality review | "
             "triage score (review) | CPU s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for count in sorted(curve, key=int):
        row = curve[count]
        lines.append(f"| {count} | {_cells(row['dice'])} | {_cells(row['hd95'], 2)} | "
                     f"{_cells(row['auroc'])} | {_cells(row['auroc_far'])} | "
                     f"{_number(row['quality_abs_error'])} | {row['review_flags']} / "
                     f"{len(row['cases'])} | {_number(row.get('triage_score'))} "
                     f"({row.get('triage_reviews', 0)}) | {_number(row['cpu_s'], 1)} |")
    gap, tolerance = block.get("auto_shortfall"), block["tolerance"]
    rule = (f"the smallest count within {tolerance} of the best {CHOSEN_BY_TEXT} on "
            "every region" if gap is None or gap <= tolerance + 1e-9 else
            f"no count is within {tolerance} of the best {CHOSEN_BY_TEXT} on every region (the "
            f"nearest, {block.get('nearest')}, falls {gap:.3f} short on its worst measure), "
            "so the fixed rule's count, the one the model's fits were made at")
    return lines + ["", f"`--projections auto` on {block['device']}: {block.get('auto')} "
                        f"({rule})."]


def card_section(blocks: dict | None) -> list[str]:
    """The card's section: every device's curve and the figure."""
    if not blocks:
        return []
    lines = ["## Projections per slice (`evaluate --projection-study`)", ""]
    for device in sorted(blocks):
        lines += [f"### {device}", "", *curve_lines(blocks[device]), ""]
    return lines + ["![projection curve](projection_curve.png)", ""]


def curve_figure(block: dict) -> bytes:
    """PNG: Dice, AUROC (solid) and AUROC beyond 2 mm (dashed), CPU-seconds per count."""
    plt, figure = _figure(12.0, 3.6)
    counts = sorted(block["curve"], key=int)
    x = [int(c) for c in counts]
    panels = (("Dice", ("dice",)), ("error AUROC (dashed: beyond 2 mm)",
                                    ("auroc", "auroc_far")))
    for index, (title, keys) in enumerate(panels):
        axes = figure.add_subplot(1, 3, index + 1)
        for key, style in zip(keys, ("-", "--")):
            for region in REGIONS:
                y = [block["curve"][c][key].get(region) for c in counts]
                axes.plot(x, [float("nan") if v is None else v for v in y], style,
                          marker="o", color=REGION_COLOURS[region],
                          label=region if key == keys[0] else None)
        axes.set_title(title)
        axes.legend(fontsize=8)
    axes = figure.add_subplot(1, 3, 3)
    auto = block.get("auto")
    axes.plot(x, [block["curve"][c]["cpu_s"] or float("nan") for c in counts], marker="o",
              color="#444444")
    axes.set_title(f"CPU-seconds per case ({block['device']})")
    for axes in figure.axes:
        axes.set_xscale("log", base=2)
        axes.set_xticks(x, [str(v) for v in x])
        axes.set_xlabel("projections per slice")
        axes.grid(alpha=0.3)
        if auto is not None:  # a preset name (the fixed rule) at its count of origins
            axes.axvline(PROJECTION_PRESETS.get(auto, auto), color="#888888", linestyle=":",
                         label="auto")
    return _png(plt, figure)
