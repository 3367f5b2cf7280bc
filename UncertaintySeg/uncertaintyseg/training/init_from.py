"""`train --init-from MODEL_DIR`: start every network from a trained model's weights.

A CPU cannot train brats-mini for the 250,000 iterations nnU-Net gives a network in one
sitting, but it can go on from where the last version stopped: brats-mini v5 starts from
v4's 2D, 3D and whole-crop 3D networks and trains them further (the dropout and head
variants start, as always, from this run's 2D network). The networks must be the same
(every weight present with the same shape), and the earlier model's training cases must
not include this run's validation cases: the weights would have seen them, and the
fusion fit, the post-processing choice, the best checkpoints and every validation number
chosen or measured on those cases would flatter the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from ..networks.models import CHECKPOINT_FILE, MODEL_FILE


def read_model(model_dir: Path) -> dict:
    """model.json of `model_dir`, or an InputError that names the folder."""
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise InputError(f"--init-from {model_dir}: no {MODEL_FILE} there; give a model "
                         "folder that `train` wrote (e.g. Resources/Models/brats-mini)")
    return json.loads(path.read_text())


def check_split(model_dir: Path, validation_cases: list[str]) -> None:
    """Refuse a start whose weights were trained on one of this run's validation cases."""
    trained_on = set(read_model(model_dir).get("split", {}).get("train", []))
    seen = sorted(trained_on & set(validation_cases))
    if seen:
        raise InputError(
            f"--init-from {model_dir}: its networks were trained on {len(seen)} of this "
            f"run's validation cases ({', '.join(seen[:4])}{' ...' if len(seen) > 4 else ''}); "
            "validating on them would flatter the model. Give --val-cases the earlier "
            "model's validation cases (its model.json 'split'), or train without --init-from")


def checkpoint_of(model_dir: Path, network: str) -> Path | None:
    """The weights of `network` ('2d', '3d', '3d_full') in `model_dir`; None when the
    model has no such network (e.g. trained with --estimators and no full-3d)."""
    if network not in read_model(model_dir).get("networks", {}):
        return None
    path = Path(model_dir) / network / CHECKPOINT_FILE
    if not path.is_file():
        raise InputError(f"--init-from {model_dir}: model.json names the network "
                         f"'{network}' but {path} is missing; the folder is incomplete")
    return path


def load_exact(network: nn.Module, checkpoint: Path) -> None:
    """Copy every weight of `checkpoint` into `network`; the two must match key for key
    and shape for shape (a model of another preset or plan is refused, not half-loaded)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["network_weights"]
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or extra or shapes:
        first = (missing or extra or shapes)[0]
        raise InputError(
            f"--init-from: {checkpoint} does not fit this run's network ({len(missing)} "
            f"weights missing, {len(extra)} unknown, {len(shapes)} of another shape, e.g. "
            f"{first}); train with the preset and plans of the model you start from")
    # The bundled checkpoints are fp16 (models' size); the network trains in fp32.
    network.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def start_from(network: nn.Module, out_dir: Path, checkpoint: Path | None) -> bool:
    """Load `checkpoint` exactly when training in `out_dir` starts afresh (a resumed run
    goes on from its own latest.pth instead); True when the network is warm-started."""
    if checkpoint is None:
        return False
    if not (Path(out_dir) / "latest.pth").is_file():
        load_exact(network, checkpoint)
    return True
