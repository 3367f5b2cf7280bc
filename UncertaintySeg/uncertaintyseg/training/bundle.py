"""The model folder `train` writes (layout in docs/TRAINING.md), its curves and its card."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .. import REGIONS, __version__
from ..stages.error_map import ERROR_MAP_KEY
from ..evaluation.model_card import (QUALITY_KEYS, VOXEL_MAPS_KEY, error_map_section,
                                     quality_section, voxel_maps_section)
from ..evaluation.projection_card import card_section as projection_section
from ..evaluation.uncertainty_quality import FAR_MM
from ..networks.feature_distance import FIT_KEY
from ..stages.fusion import normalized_weights
from ..files.image_writer import write_text_atomic
from ..networks.models import CHECKPOINT_FILE, EXTRA_NETWORKS, FORMAT_VERSION, MODEL_FILE, save_state
from ..options import TRAINED_NETWORKS
from ..files.output_safety import write_json_atomic
from ..stages.postprocess import DEFAULT_COMPONENT_FRACTION
from ..stages.projection_curve import STUDY_KEY as PROJECTION_STUDY_KEY
from ..run.quality_model import QUALITY_KEY
from . import folds
from .prepare import CONFIG_2D, CONFIG_3D, CONFIG_DROPOUT, CONFIG_FULL_3D, CONFIG_HEAD

# Per estimator network: its settings in ChainSettings and its title in curves / card.
EXTRA_SETTINGS = {CONFIG_DROPOUT: "net_dropout", CONFIG_HEAD: "net_head",
                  CONFIG_FULL_3D: "net_full3d"}
EXTRA_TITLES = {CONFIG_DROPOUT: "2D dropout", CONFIG_HEAD: "2D uncertainty head",
                CONFIG_FULL_3D: "3D full crop"}


def _copy_checkpoint(best: Path, target: Path, half: bool) -> None:
    """best.pth (state dict) -> target, floats in fp16 when `half` (halves the size)."""
    state = torch.load(best, map_location="cpu", weights_only=True)["network_weights"]
    target.parent.mkdir(parents=True, exist_ok=True)
    save_state(state, target, half)


def _plans_for(plans: dict, configuration: str) -> dict:
    """The plans with only `configuration` and the configurations it inherits from."""
    keep, name = {}, configuration
    while name is not None:
        keep[name] = plans["configurations"][name]
        name = keep[name].get("inherits_from")
    return {**plans, "configurations": keep}


def write_model_folder(out: Path, chain, record: dict, half: bool = True) -> Path:
    """Assemble the model folder from a finished Chain; returns `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    extras = chain.estimator_networks()
    for sub, config in (("2d", CONFIG_2D), ("3d", CONFIG_3D), *((e, e) for e in extras)):
        (out / sub).mkdir(exist_ok=True)
        write_json_atomic(out / sub / "plans.json", _plans_for(chain.plans, config))
        shutil.copyfile(chain.pre / "dataset.json", out / sub / "dataset.json")
        _copy_checkpoint(chain.train_dir / sub / "best.pth", out / sub / CHECKPOINT_FILE, half)
    for sub in set(EXTRA_NETWORKS) - set(extras):  # a folder of an earlier run's choice
        shutil.rmtree(out / sub, ignore_errors=True)
    networks = {"2d": {"configuration": CONFIG_2D}, "3d": {"configuration": CONFIG_3D}}
    for sub in extras:
        networks[sub] = {"configuration": sub, **({"extra_outputs": 1} if sub == CONFIG_HEAD
                                                  else {})}
    histories = record.get("histories", {})
    weights = np.asarray(record["fusion"], dtype=np.float64)
    w2d, w3d = normalized_weights(weights)
    s = chain.settings
    meta = {
        "format_version": FORMAT_VERSION, "name": s.name, "version": s.version,
        "trained": True, "software_version": __version__,
        "description": f"{s.name}: 2D + 3D nnU-Net v2 region networks (ET, TC, WT) trained "
                       f"by `uncertaintyseg train` on {len(chain.split['train'])} cases",
        "radius": s.net2d.radius, "kernel_mm": list(s.kernel_mm),
        "fusion_weights": weights.tolist(),
        "fusion_weights_normalized": {r: [float(a), float(b)] for r, a, b in
                                      zip(REGIONS, np.atleast_1d(w2d), np.atleast_1d(w3d))},
        "networks": networks,
        "postprocess": record.get("postprocess") or {"min_component_fraction": DEFAULT_COMPONENT_FRACTION},
        "split": chain.split, "settings": asdict(s),
        "training": {"seconds": record["timings"],
                     "iterations_2d": s.net2d.iterations, "iterations_3d": s.net3d.iterations,
                     "best_val_2d": _best(record["history_2d"]),
                     "best_val_3d": _best(record["history_3d"]),
                     **{f"iterations_{sub}": getattr(s, EXTRA_SETTINGS[sub]).iterations
                        for sub in extras},
                     **{f"best_val_{sub}": _best(histories.get(sub, [])) for sub in extras}},
    }
    if record.get("validation"):
        meta["validation"] = record["validation"]
    write_json_atomic(out / MODEL_FILE, meta)
    write_curves({"2D": record["history_2d"], "3D (cubes)": record["history_3d"],
                  **{EXTRA_TITLES[sub]: histories.get(sub, []) for sub in extras}},
                 out / "curves.png")
    return out


def _best(history: list[dict]) -> dict:
    return max(history, key=lambda h: h["mean_dice"]) if history else {}


def write_curves(histories: dict[str, list[dict]], path: Path) -> None:
    """Training/validation loss and validation Dice per region against iterations (PNG),
    one column per network (`histories`: title -> history)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server / in tests
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(histories), figsize=(5 * len(histories), 7), squeeze=False)
    for col, (title, history) in enumerate(histories.items()):
        it = [h["iteration"] for h in history]
        # the head's training loss is BCE plus its own terms (training/trainer_head.py)
        axes[0, col].plot(it, [h["train_loss"] for h in history], label="train loss")
        axes[0, col].plot(it, [h["val_loss"] for h in history], label="validation BCE")
        axes[0, col].set_title(f"{title}: loss")
        for region in REGIONS:
            axes[1, col].plot(it, [h[f"dice_{region}"] for h in history], label=region)
        axes[1, col].set_title(f"{title}: validation Dice")
        axes[1, col].set_ylim(0, 1)
        for ax in axes[:, col]:
            ax.set_xlabel("iteration")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _metrics_table(mean: dict, cases: dict) -> list[str]:
    lines = ["| case | " + " | ".join(f"{r} Dice | {r} HD95 (mm)" for r in REGIONS) + " |",
             "|---|" + "---|---|" * len(REGIONS)]
    for case_id, m in {**cases, "**mean**": mean}.items():
        lines.append(f"| {case_id} | " + " | ".join(
            f"{m[r]['dice']:.3f} | {m[r]['hd95']:.1f}" for r in REGIONS) + " |")
    return lines


def write_card(out: Path, command: str | None = None, notes: str | None = None) -> Path:
    """MODEL_CARD.md from model.json: data, settings, time, validation, the estimators'
    numbers (`evaluate --model-card`), reproduction. `command` and `notes` are kept in
    model.json ("card"), so a later call without them renders the same card again."""
    meta = json.loads((Path(out) / MODEL_FILE).read_text(encoding="utf-8"))
    kept = meta.get("card", {})
    command = kept.get("command", "") if command is None else command
    notes = kept.get("notes", "") if notes is None else notes
    if kept != {"command": command, "notes": notes}:
        meta["card"] = {"command": command, "notes": notes}
        write_text_atomic(Path(out) / MODEL_FILE, json.dumps(meta, indent=2) + "\n")
    s, t = meta["settings"], meta["training"]
    size_mb = sum(p.stat().st_size for p in Path(out).rglob("*.pth")) / 1e6
    lines = [f"# Model card: {meta['name']} (version {meta['version']})", "",
             meta["description"] + ".", "",
             "## Data", "",
             f"- training cases ({len(meta['split']['train'])}): "
             + ", ".join(meta["split"]["train"]),
             f"- validation cases ({len(meta['split']['val'])}): "
             + (", ".join(meta["split"]["val"]) or "none"),
             f"- cross-validation fold: {folds.text(s.get('fold'))}", "",
             "## Settings", "",
             f"- 2D: nnU-Net `2d_small`, features {s['features_2d']}..{s['max_features_2d']}, "
             f"batch {s['net2d']['batch_size']}, {s['net2d']['iterations']} iterations, Adam "
             f"lr {s['net2d']['learning_rate']} (poly decay), {_loss_text(s['net2d'])} on "
             f"WT/TC/ET, spherical "
             f"projection augmentation p={s['net2d']['projection_probability']}",
             f"- 3D: nnU-Net `3d_cube`, features {s['features_3d']}..{s['max_features_3d']}, "
             f"batch {s['net3d']['batch_size']}, {s['net3d']['iterations']} iterations on the "
             f"cubes selected with {s['net3d']['projections']} projections per slice",
             f"- kernels (mm, ET/TC/WT): {meta['kernel_mm']}; fusion weights [w2d, w3d, b]: "
             f"{[[round(v, 3) for v in row] for row in meta['fusion_weights']]}",
             f"- post-processing: {_postprocess_text(meta['postprocess'])}",
             f"- the fusion and the post-processing were chosen on "
             f"{_fit_cases_text(meta)} (docs/DECISIONS.md #13)",
             f"- estimators' networks: {_estimators_text(meta)}",
             f"- checkpoints: {_size_text(size_mb)}", "",
             "## Training time", "",
             f"Seconds per step ({_device_text(s)}, {s['threads']} thread(s), "
             f"{s['net2d']['precision']}): "
             + ", ".join(
                 f"{k} {v:.0f}" for k, v in t["seconds"].items()), "",
             f"Best patch-level validation Dice during training: 2D "
             f"{t['best_val_2d'].get('mean_dice', float('nan')):.3f}, 3D "
             f"{t['best_val_3d'].get('mean_dice', float('nan')):.3f} (curves.png).", ""]
    validation = meta.get("validation")
    if validation:
        lines += ["## Validation (the real pipeline, `predict` with "
                  f"--projections {validation['projections']})", "",
                  *_metrics_table(validation["mean"], validation["cases"]), "",
                  "2D only (P2D > 0.5, same post-processing):", "",
                  *_metrics_table(validation["mean_2d_only"], validation["cases_2d_only"]), ""]
    lines += estimators_section(meta.get("estimators_validation"))
    lines += voxel_maps_section(meta.get(VOXEL_MAPS_KEY))
    lines += error_map_section(meta.get(ERROR_MAP_KEY))
    lines += quality_section(meta.get(QUALITY_KEY), meta.get(FIT_KEY))
    lines += projection_section(meta.get(PROJECTION_STUDY_KEY))
    lines += ["## Reproduce", "", "```", command, "```", ""]
    if notes:
        lines += ["## Notes", "", notes, ""]
    path = Path(out) / "MODEL_CARD.md"
    write_text_atomic(path, "\n".join(lines))  # UTF-8: the card may hold ± and ρ
    return path


def _device_text(settings: dict) -> str:
    """Where the chain ran (model.json from before train --device: the CPU)."""
    device, gpus = settings.get("device", "cpu"), settings.get("gpus", 1)
    if device == "cpu":
        return "CPU"
    return f"{device}, {gpus} GPUs (DDP)" if gpus > 1 else device


def _triple(values: dict, digits: int, signed: bool = False) -> str:
    form = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    return " / ".join("n/a" if values.get(r) is None else form.format(values[r])
                      for r in REGIONS)


def estimators_section(record: dict | None) -> list[str]:
    """The card's per-estimator table and the fused-minus-other differences."""
    if not record:
        return []
    # A record stored before the beyond-the-border measures has none: their columns are
    # left out rather than shown as n/a (the voxel-map section has them for the default).
    far = any("auroc_far" in m for m in record["methods"].values())
    keys = QUALITY_KEYS if far else QUALITY_KEYS[:2]
    heads = ["error AUROC", "border AUROC", f"AUROC beyond {FAR_MM:g} mm",
             f"border AUROC beyond {FAR_MM:g} mm", f"errors beyond {FAR_MM:g} mm"]
    lines = [f"## Estimators on the validation cases (measured {record['measured']})", "",
             f"{len(record['cases'])} cases: {', '.join(record['cases'])}; the real "
             "pipeline's outputs scored by `uncertaintyseg evaluate` (brain mask for the "
             "AUROC of the uncertainty for error voxels). Border AUROC: that of 1 / (1 + "
             "distance to the method's own predicted border), a baseline that uses no "
             "uncertainty." + (f" Beyond {FAR_MM:g} mm: the same AUROCs over the voxels "
                               f"more than {FAR_MM:g} mm from the predicted border, and "
                               "the share of the error voxels there." if far else ""), "",
             "| method | Dice ET / TC / WT | HD95 mm ET / TC / WT | "
             + " | ".join(f"{h} ET / TC / WT" for h in heads[:len(keys)]) + " |",
             "|---|---|---|" + "---|" * len(keys)]
    for method, m in record["methods"].items():
        lines.append(f"| {method} | {_triple(m['dice'], 3)} | {_triple(m['hd95'], 1)} | "
                     + " | ".join(_triple(m.get(key, {}), 3) for key in keys) + " |")
    lines += ["", f"{record['fused']} minus each other method (Dice: higher is better for "
              f"{record['fused']} when positive; HD95: when negative):", "",
              "| other method | Dice ET / TC / WT | HD95 mm ET / TC / WT |", "|---|---|---|"]
    for other, d in record["fused_minus"].items():
        lines.append(f"| {other} | {_triple(d['dice'], 3, True)} | "
                     f"{_triple(d['hd95'], 1, True)} |")
    return lines + [""]


def _estimators_text(meta: dict) -> str:
    """Which of the estimators' networks the folder holds, with their training."""
    s, present = meta["settings"], []
    for method, sub in TRAINED_NETWORKS.items():
        if sub in meta["networks"]:
            net = s[EXTRA_SETTINGS[sub]]
            extra = {CONFIG_DROPOUT: f", Dropout2d p={s['dropout_probability']}",
                     CONFIG_FULL_3D: f", patch {s['patch_full_3d']}^3"}.get(sub, "")
            present.append(f"`{sub}` for `--method {method}` ({net['iterations']} iterations"
                           f"{extra})")
    if not present:
        return ("none: `predict --method` mc-dropout, uncertainty-head and full-3d need "
                "`train --estimators`")
    return "; ".join(present)


def _loss_text(net: dict) -> str:
    # Settings of models trained before the loss became a setting hold no "loss" key.
    loss = net.get("loss", "bce")
    prior = ", output biases from the regions' prior" if net.get("prior_bias") else ""
    return ("nnU-Net's BCE + batch soft Dice" if loss == "dice_bce" else "BCE") + prior


def _fit_cases_text(meta: dict) -> str:
    cases = meta["postprocess"].get("cases")
    if cases is None:  # models before the choice moved to held-out cases
        return "the training cases"
    held_out = set(cases) <= set(meta["split"]["val"])
    return (f"the {len(cases)} validation cases (not seen in network training; the "
            f"networks' best checkpoints were also chosen on them)" if held_out
            else f"{len(cases)} training cases (no validation split)")


def _postprocess_text(postprocess: dict) -> str:
    fraction = float(postprocess["min_component_fraction"])
    if fraction >= 1.0:
        return "only the largest whole-tumour component is kept (fraction 1.0)"
    return f"whole-tumour components below {fraction} x the largest are removed"


def _size_text(size_mb: float) -> str:
    return f"{size_mb:.1f} MB (fp16)"
