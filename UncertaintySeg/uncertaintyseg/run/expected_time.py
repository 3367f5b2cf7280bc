"""How long `predict` will take on this computer, said before it runs (issue 19 item 6).

The model's projection curve (model.json `projection_study`, per device type, written by
`evaluate --projection-study`) holds the mean seconds of a whole `predict` per projection
count on the machine that measured it, and `calibration`: that machine's seconds per 2D
view, at the study's backend and threads, on a fixed batch (`view_seconds`). Here the same
batch is timed here (cached per computer: `cached_view_seconds`), and the curve's
seconds at the run's count are split in two: the views' part (the curve's slope per
projection, `view_slope`) scaled by the ratio at the run's threads, and the rest
(loading, preprocessing, refinement, error map, writing: mostly one thread) by the ratio
at one thread. Counts between the curve's are interpolated linearly (the 2D stage is
linear in the views); beyond it, extrapolated from its last two. "About": the other
stages follow the network's speed only roughly, and the process's start-up is left out.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import time
from pathlib import Path

from uncertaintyseg_shared.atomic import write_json_atomic

from ..stages.projection_curve import model_curves

CALIBRATION_KEY = "calibration"  # in a device's study block: the study machine's view_s
CALIBRATION_BATCH = 16  # views per timed network call: the CPU's --batch-size auto
CACHE_ENV = "UNCERTAINTYSEG_CALIBRATION_CACHE"  # a file; the tests' own
QUIETER = 0.5  # load average this much below a cached timing's: time it again
# The methods whose cost the curve describes: the hybrid's projected 2D stage.
CURVE_METHODS = ("hybrid", "projection-2d")


def cache_file() -> Path:
    """$UNCERTAINTYSEG_CALIBRATION_CACHE, else the user's cache folder's
    calibration.json (~/.cache/uncertaintyseg, beside the OpenVINO exports)."""
    from ..networks.inference_backend import user_cache

    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return user_cache() / "calibration.json"


def calibration_shape(model) -> tuple[int, ...]:
    """(batch, channels, H, W) of the timed batch: the 2D network's training patch,
    the same on every computer, so that two computers' times compare."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    patch = PlansManager(model.plans).get_configuration(model.configuration_2d).patch_size
    channels = len(model.dataset["channel_names"])
    return (CALIBRATION_BATCH, channels, *[int(s) for s in patch])


def view_seconds(network, shape: tuple[int, ...], repeats: int = 3, autocast=None) -> float:
    """Wall seconds per view of `network` on a fixed batch of `shape`, the best of
    `repeats` calls after a warm-up (the warm-up compiles OpenVINO's shape); `autocast`
    as the 2D stage runs the torch backend (uncertainty._network_probs)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    batch = torch.randn(shape, generator=generator)
    with torch.inference_mode(), torch.autocast("cpu", dtype=autocast,
                                                enabled=autocast is not None):
        network(batch)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            network(batch)
            times.append(time.perf_counter() - start)
    return min(times) / shape[0]


def weights_digest(model) -> str:
    """sha256 of the 2D network's checkpoint: a new model is calibrated anew."""
    from ..networks.models import CHECKPOINT_FILE

    digest = hashlib.sha256()
    with open(model.folder / "2d" / CHECKPOINT_FILE, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def calibration_key(model, backend: str, threads: int, precision: str) -> str:
    """The cache's key: what the seconds per view depend on."""
    from ..networks.devices import cpu_name

    return "|".join((cpu_name(), weights_digest(model), backend, str(threads), precision))


def cached_view_seconds(model, backend: str, threads: int, precision: str,
                        autocast=None) -> tuple[float, bool]:
    """(seconds per view on this computer, whether it came from the cache), per CPU,
    model weights, backend, threads and precision: measured the first time, and again
    when the load average is QUIETER below the cached timing's (the fastest is kept)."""
    key = calibration_key(model, backend, threads, precision)
    path = cache_file()
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    entry, load = cache.get(key), _load()
    # A timing taken beside other jobs is slower than the computer is: it is taken again
    # when the computer is quieter than it was then, and the fastest is kept.
    # An entry without its load (older) is timed again too.
    if entry is not None and load >= entry.get("load", float("inf")) - QUIETER:
        return float(entry["view_s"]), True
    seconds = view_seconds(model.network_2d, calibration_shape(model), autocast=autocast)
    if entry is None or seconds < entry["view_s"]:
        entry = {"view_s": seconds, "measured": datetime.date.today().isoformat()}
    cache[key] = {**entry, "load": load}
    write_json_atomic(path, cache)
    return float(cache[key]["view_s"]), False


def _load() -> float:
    """The 1-minute load average (0 where the system has none: Windows)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def curve_seconds(curve: dict, count: int | None) -> float | None:
    """Mean seconds of a run at `count` projections per slice from `curve` ({count:
    row with "cpu_s"}): linear between the measured counts, extrapolated from the two
    nearest outside them; None for every grid origin (count None) or no curve."""
    import numpy as np

    points = sorted((int(c), float(row["cpu_s"])) for c, row in curve.items()
                    if row.get("cpu_s") is not None)
    if count is None or not points:
        return None
    counts, seconds = zip(*points)
    if len(points) == 1 or counts[0] <= count <= counts[-1]:
        return float(np.interp(count, counts, seconds))
    (c0, s0), (c1, s1) = points[:2] if count < counts[0] else points[-2:]
    return max(s0 + (count - c0) * (s1 - s0) / (c1 - c0), 0.0)


def format_seconds(seconds: float) -> str:
    """"40 s", "2 min 5 s": a person's reading of a duration."""
    seconds = int(round(seconds))
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _why_none(settings, block: dict | None, resolved, model) -> str | None:
    """Why the curve cannot describe this run, or None when it can."""
    if settings.method not in CURVE_METHODS:
        return (f"no estimate for --method {settings.method}: the model's curve times "
                f"the hybrid method's projections")
    if not block or not block.get("curve"):
        return (f"no estimate: model '{model.name}' has no projection curve measured on "
                f"{resolved.device.type} (evaluate --projection-study)")
    if not block.get(CALIBRATION_KEY):
        return (f"no estimate: the curve of model '{model.name}' on {resolved.device.type} has no "
                f"calibration (measured before it was recorded: evaluate --projection-study)")
    if resolved.projections_per_slice is None:
        return "no estimate for every grid origin (--projections paper): the curve stops at "\
               f"{max(int(c) for c in block['curve'])} projections per slice"
    return None


def estimate(model, values: dict) -> dict:
    """What `predict` with option `values` (by options.OPTIONS name) would cost here:
    {"seconds" (None when no curve describes the run), "projections", "threads",
    "backend", "device", "message"}. Times the 2D network once per computer, model,
    backend and thread count (the run's, and one for the stages that run on one; a few
    seconds, cached after). The process's start-up (imports, the model's loading) is
    not in the curve."""
    from ..networks.devices import resolve_run, with_model_curve
    from ..networks.inference_backend import choose_backend
    from .predict import settings_from

    settings = settings_from(values)
    resolved, _ = with_model_curve(resolve_run(settings), settings, model)
    backend = choose_backend(settings.backend, resolved.device, model)[0]
    result = {"seconds": None, "projections": resolved.projections, "backend": backend,
              "threads": resolved.threads, "device": resolved.device.type}
    block = model_curves(model).get(resolved.device.type)
    why = _why_none(settings, block, resolved, model)
    if why is not None:
        return {**result, "message": why}
    ratios = {n: _ratio_at(model, backend, n, resolved, block)
              for n in {1, resolved.threads}}
    count = resolved.projections_per_slice
    total = curve_seconds(block["curve"], count)
    per_view = view_slope(block["curve"])
    # The views' part runs on the run's threads; the rest (loading, preprocessing, the
    # 3D refinement's few cubes, the error map, writing) mostly on one.
    seconds = (total - per_view * count) * ratios[1] + per_view * count * ratios[
        resolved.threads]
    message = (f"about {format_seconds(seconds)} per case on this computer, after the "
               f"start-up ({count} projections per slice, {resolved.threads} thread(s), "
               f"{backend}): the model's curve, measured on {block.get('cpu', '?')}, "
               f"scaled by a calibration of the 2D network here")
    return {**result, "seconds": round(seconds, 1), "message": message}


def view_slope(curve: dict) -> float:
    """Seconds per projection per slice of a curve ({count: row with "cpu_s"}): the
    least-squares slope over its counts (the 2D stage's share; 0 for one point)."""
    import numpy as np

    points = [(int(c), float(r["cpu_s"])) for c, r in curve.items() if r.get("cpu_s")]
    if len(points) < 2:
        return 0.0
    counts, seconds = np.array(points).T
    return max(float(np.polyfit(counts, seconds, 1)[0]), 0.0)


def _ratio_at(model, backend: str, threads: int, resolved, block: dict) -> float:
    """This computer's seconds per view at `threads` over the study machine's."""
    import torch

    from ..networks.inference_backend import use_backend

    torch.set_num_threads(threads)
    use_backend(model, backend, threads, resolved.autocast)
    here = cached_view_seconds(model, backend, threads, resolved.precision,
                               resolved.autocast)[0]
    return here / block[CALIBRATION_KEY]["view_s"]


def calibration_record(model, backend: str, threads: int, autocast=None) -> dict:
    """The study block's CALIBRATION_KEY entry: this computer's seconds per view at the
    study's backend and threads (measured, not cached: the study is the reference)."""
    import torch

    from ..networks.inference_backend import use_backend

    torch.set_num_threads(threads)
    use_backend(model, backend, threads, autocast)
    shape = calibration_shape(model)
    return {"view_s": view_seconds(model.network_2d, shape, autocast=autocast),
            "shape": list(shape), "backend": backend, "threads": threads}
