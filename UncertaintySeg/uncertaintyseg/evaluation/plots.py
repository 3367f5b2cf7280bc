"""PNG figures of an evaluation: box plots per metric, reliability diagrams, QU-BraTS
curves. Each function returns PNG bytes (the caller writes them atomically and embeds
them in the HTML report)."""

from __future__ import annotations

import io

import numpy as np

from .. import REGIONS

# ColorBrewer Dark2, all 8: the card compares 7 methods, and with 6 colours the first
# and the seventh (hybrid, tta-2d) were drawn alike.
COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d",
           "#666666")
REGION_COLOURS = {"ET": "#d62728", "TC": "#ff7f0e", "WT": "#1f77b4"}


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")  # no display: figures are files
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=100)


def _png(plt, figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def box_plot(values: dict[str, dict[str, list[float]]], metric: str) -> bytes:
    """values: {method: {region: per-case values}} -> grouped box plot, one group per
    region, one box per method."""
    plt, figure = _figure(8.5, 4.0)
    axes = figure.add_subplot(1, 1, 1)
    methods = list(values)
    width = 0.8 / max(1, len(methods))
    for j, method in enumerate(methods):
        positions = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(REGIONS))]
        data = [values[method].get(r, []) or [np.nan] for r in REGIONS]
        boxes = axes.boxplot(data, positions=positions, widths=width * 0.9,
                             patch_artist=True, showfliers=True)
        for patch in boxes["boxes"]:
            patch.set_facecolor(COLOURS[j % len(COLOURS)])
            patch.set_alpha(0.75)
        axes.plot([], [], color=COLOURS[j % len(COLOURS)], linewidth=8, label=method)
    axes.set_xticks(range(len(REGIONS)), REGIONS)
    axes.set_ylabel("HD95 (mm)" if metric == "hd95" else metric)
    axes.set_title(f"{'HD95' if metric == 'hd95' else metric.capitalize()} per region")
    # Beside the axes, not over the boxes and outliers of one region.
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    return _png(plt, figure)


def reliability_diagram(bins_by_region: dict[str, np.ndarray], title: str) -> bytes:
    """bins_by_region: {region: (3, n_bins) count / summed probability / summed
    reference} pooled over cases -> observed frequency against mean probability."""
    plt, figure = _figure(5.0, 4.6)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for region, bins in bins_by_region.items():
        count, sum_p, sum_y = np.asarray(bins, np.float64)
        filled = count > 0
        axes.plot(sum_p[filled] / count[filled], sum_y[filled] / count[filled], marker="o",
                  color=REGION_COLOURS.get(region), label=region)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("mean predicted probability (bin)")
    axes.set_ylabel("reference frequency")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(alpha=0.3)
    return _png(plt, figure)


def qubrats_plot(curves_by_region: dict[str, dict], title: str) -> bytes:
    """Mean filtered Dice, FTP and FTN over cases against the threshold, per region."""
    plt, figure = _figure(9.0, 3.2)
    for k, name in enumerate(("dice", "ftp", "ftn")):
        axes = figure.add_subplot(1, 3, k + 1)
        for region, curves in curves_by_region.items():
            axes.plot(curves["thresholds"], curves[name], color=REGION_COLOURS.get(region),
                      label=region)
        axes.set_xlabel("uncertainty threshold (0-100)")
        axes.set_title({"dice": "filtered Dice", "ftp": "filtered TP", "ftn": "filtered TN"}[name])
        axes.invert_xaxis()
        axes.grid(alpha=0.3)
        if k == 0:
            axes.legend(fontsize=8)
    figure.suptitle(title, y=1.04)  # above the panel titles
    return _png(plt, figure)


def scatter_plot(x, y, labels, xlabel: str, ylabel: str, title: str) -> bytes:
    """Case score against Dice (triage), one labelled point per case."""
    plt, figure = _figure(5.0, 4.0)
    axes = figure.add_subplot(1, 1, 1)
    axes.scatter(x, y, color=COLOURS[1])
    # Labels beside their points, not over them, and towards the middle: a label on
    # the right of the rightmost point ran out of the picture.
    middle = (min(x) + max(x)) / 2 if len(x) else 0.0
    for xi, yi, label in zip(x, y, labels):
        right = xi > middle
        axes.annotate(label, (xi, yi), xytext=(-5 if right else 5, 3),
                      textcoords="offset points", ha="right" if right else "left",
                      fontsize=6, alpha=0.8)
    axes.margins(x=0.15, y=0.1)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return _png(plt, figure)
