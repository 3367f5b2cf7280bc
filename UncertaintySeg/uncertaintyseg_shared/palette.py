"""The colours every picture of a result uses: snapshot.png, the Slicer module and the
.mrb scene, so a box or a heatmap looks the same wherever it is seen. Imports nothing
(the Slicer Lib reads it before SimpleITK/torch exist in Slicer's Python).

Colours are RGB in [0, 1]; the heatmap maps normalised entropy t in [0, 1] to RGBA.
"""

# Box outlines (and the region outlines of the snapshot): ET as Slicer's ET segment,
# TC and WT in colours the heatmap does not use.
REGION_COLOURS = {"ET": (30 / 255, 120 / 255, 1.0), "TC": (230 / 255, 60 / 255, 230 / 255),
                  "WT": (40 / 255, 200 / 255, 80 / 255)}
# Pale yellow at the threshold, through orange, to deep red at maximal uncertainty.
HEATMAP_STOPS = ((0.0, (1.0, 1.0, 0.45)), (0.5, (1.0, 0.55, 0.0)), (1.0, (0.8, 0.0, 0.0)))
HEATMAP_THRESHOLD = 0.2   # a voxel-map value (entropy, error probability) below this is not drawn
HEATMAP_OPACITY = 0.6     # of the heatmap layer over the anatomy


def heatmap_rgba(t: float) -> tuple[float, float, float, float]:
    """Heatmap colour of normalised entropy `t`; more opaque as uncertainty grows so the
    anatomy stays readable under faint areas."""
    t = min(max(float(t), 0.0), 1.0)
    for (t0, c0), (t1, c1) in zip(HEATMAP_STOPS, HEATMAP_STOPS[1:]):
        if t <= t1:
            w = (t - t0) / (t1 - t0)
            return (*[a + w * (b - a) for a, b in zip(c0, c1)], 0.55 + 0.45 * t)
    return (*HEATMAP_STOPS[-1][1], 1.0)


# The colour bar's name of each --uncertainty-map (the error probability is not an
# entropy; a run that fell back says so in report.json "uncertainty_map").
MAP_LABELS = {"error-probability": "probability the label is wrong",
              "mean-entropy": "entropy of P2D, bits", "binned": "normalised entropy",
              "max": "max(binned, P2D) entropy"}

# The methods whose uncertainty is their own, whatever --uncertainty-map says.
OWN_MAP_METHODS = ("uncertainty-head", "full-3d")


def written_map(report: dict) -> str:
    """The voxel map a run wrote (`predict --uncertainty-map`; the fallback when the
    model had no error-probability fit; binned for runs from before the option)."""
    if report.get("method") in OWN_MAP_METHODS:
        return report["method"]
    chosen = (report.get("uncertainty_map") or {}).get("map")
    return chosen or (report.get("settings") or {}).get("uncertainty_map") or "binned"
