"""The optimisation loop shared by the 2D and 3D trainers (paper 2.2.4).

nnU-Net's region loss (binary cross-entropy + batch soft Dice on the three sigmoid
region channels; `loss="bce"` for cross-entropy alone, as brats-mini v1-v3 trained),
output biases started at the regions' prior log-odds, Adam, nnU-Net's
polynomial learning-rate decay, validation Dice every `validate_every` iterations with
the best weights kept, and a resumable checkpoint (`latest.pth`: weights, optimiser,
iteration, history) written every `checkpoint_every` iterations. Every file here is a
plain state dict / list of numbers, so `torch.load(..., weights_only=True)` reads it.
The loop runs on the device it is given (`devices`: mixed precision, pinned batches on
CUDA) and, inside `distributed.run_ranks`, as one rank of a DDP run (`distributed`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import REGIONS
from ..networks.models import save_checkpoint
from ..files.output_safety import write_json_atomic
from . import devices, distributed
from .devices import PRECISIONS

Batch = tuple[torch.Tensor, torch.Tensor]  # (B, 4, ...) float32, (B, 3, ...) float32 {0, 1}
LOSSES = ("dice_bce", "bce")
# Batches drawn to estimate each region's share of the training voxels (the prior).
PRIOR_BATCHES = 4


@dataclass
class LoopSettings:
    """Optimisation settings; `iterations` counts batches, `learning_rate` is Adam's initial."""

    iterations: int = 2000
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    validate_every: int = 100
    checkpoint_every: int = 50
    seed: int = 0
    # "bf16": autocast forward pass, ~1.8x faster on bf16 CPUs; "fp16" (CUDA only):
    # autocast with a gradient scaler (devices.grad_scaler)
    precision: str = "fp32"
    # "dice_bce": nnU-Net's region loss; the soft Dice term pushes background voxels to
    # confident 0, where BCE alone left WT at 0.02-0.045 inside the brain (brats-mini v3).
    loss: str = "dice_bce"
    # Start the output biases at the regions' log-odds, so that the network does not
    # begin at p = 0.5 everywhere and spend its iterations pulling the background down.
    prior_bias: bool = True

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} must be one of {sorted(PRECISIONS)}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r} must be one of {list(LOSSES)}")


def make_loss(name: str, ddp: bool = False) -> nn.Module:
    """The training loss on (B, C, ...) logits and {0, 1} targets of the C regions.

    `ddp`: the batch Dice's sums are gathered across the DDP ranks (nnU-Net's own
    AllGatherGrad), so that N ranks' loss is that of the whole global batch."""
    if name == "bce":
        return nn.BCEWithLogitsLoss()
    from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    # The settings of nnU-Net's region-based trainers (batch Dice, background channel
    # kept: our channels are regions, none of them is a background class).
    return DC_and_BCE_loss({}, {"batch_dice": True, "do_bg": True, "smooth": 1e-5,
                                "ddp": ddp}, dice_class=MemoryEfficientSoftDiceLoss)


def output_layers(network: nn.Module) -> list[nn.Module]:
    """The convolutions that make the region logits (one per deep-supervision output)."""
    return list(network.decoder.seg_layers)


def set_prior_bias(network: nn.Module, targets: list[torch.Tensor]) -> np.ndarray:
    """Set the output biases of the region channels to log(p / (1 - p)), p each region's
    voxel share in `targets` ((B, C, ...) {0, 1}); returns p. Extra channels (the
    uncertainty head's) keep their bias."""
    dims = [0] + list(range(2, targets[0].ndim))
    share = torch.stack([t.float().mean(dim=dims) for t in targets]).mean(dim=0)
    share = share.clamp(1e-4, 1 - 1e-4)
    with torch.no_grad():
        for layer in output_layers(network):
            layer.bias[:share.numel()] = torch.log(share / (1 - share)).to(layer.bias.device)
    return share.numpy()


def dice_per_region(logits: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """(intersection, predicted, reference) voxel counts per channel, summed over the batch."""
    pred = logits > 0
    ref = target > 0.5
    dims = [0] + list(range(2, logits.ndim))
    inter = (pred & ref).sum(dim=dims)
    return np.stack([inter.cpu().numpy(), pred.sum(dim=dims).cpu().numpy(),
                     ref.sum(dim=dims).cpu().numpy()])


def evaluate(network: nn.Module, batches: Iterable[Batch], order: list[int],
             device: torch.device | str = "cpu") -> dict:
    """Validation BCE and Dice per region (REGIONS order) pooled over the batches."""
    device = torch.device(device)
    loss_fn = nn.BCEWithLogitsLoss()
    counts, losses = 0, []
    network.eval()
    with torch.inference_mode():
        for batch in batches:
            data, target = devices.to_device(batch, device)
            # A network with extra outputs (the uncertainty head) is scored on its regions.
            logits = network(data)[:, :target.shape[1]]
            losses.append(float(loss_fn(logits, target)))
            counts = counts + dice_per_region(logits, target)
    network.train()
    inter, pred, ref = counts
    dice = np.where(pred + ref > 0, 2 * inter / np.maximum(pred + ref, 1), 1.0)
    return {"val_loss": float(np.mean(losses)),
            **{f"dice_{r}": float(dice[order[i]]) for i, r in enumerate(REGIONS)}}


def warm_start(network: nn.Module, checkpoint: Path) -> None:
    """Start `network` from another network's weights (a state dict file, e.g. the 2D
    network's best.pth): equal shapes are copied; an output layer with more channels
    (the uncertainty head) gets the old channels first and keeps its fresh extra ones."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["network_weights"]
    own = network.state_dict()
    with torch.no_grad():
        for key, value in state.items():
            target = own.get(key)
            if target is None:
                continue
            if target.shape == value.shape:
                target.copy_(value)
            elif target.shape[1:] == value.shape[1:] and target.shape[0] > value.shape[0]:
                target[:value.shape[0]].copy_(value)
    network.load_state_dict(own)


class Loop:
    """Trains `network` (bare nnU-Net net, outputs in dataset label order) in `out_dir`
    on `device` (a rank's own device in a DDP run); only rank 0 writes files."""

    def __init__(self, network: nn.Module, out_dir: Path, settings: LoopSettings,
                 order: list[int], warm_started: bool = False, device: str = "cpu"):
        from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

        self.device = torch.device(device)
        devices.check_precision(settings.precision, device)
        devices.configure(self.device)
        self.network, self.settings, self.order = network.to(self.device), settings, order
        self.model = network  # DDP-wrapped in run() when several ranks train
        self.warm_started, self.writes = warm_started, distributed.is_main()
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate,
                                          weight_decay=settings.weight_decay)
        self.scheduler = PolyLRScheduler(self.optimizer, settings.learning_rate,
                                         settings.iterations)
        self.scaler = devices.grad_scaler(self.device, settings.precision)
        self.loss_fn = make_loss(settings.loss, ddp=distributed.world_size() > 1)
        self.iteration, self.best, self.history = 0, -1.0, []
        self._resume()

    def _resume(self) -> None:
        path = self.out_dir / "latest.pth"
        if not path.is_file():
            return
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.network.load_state_dict(state["network_weights"])
        self.optimizer.load_state_dict(state["optimizer_state"])  # moved to the params' device
        if self.scaler is not None and "scaler_state" in state:
            self.scaler.load_state_dict(state["scaler_state"])
        self.iteration, self.best = int(state["iteration"]), float(state["best"])
        self.history = json.loads((self.out_dir / "history.json").read_text())

    def _save(self) -> None:
        if not self.writes:
            return
        tmp = self.out_dir / "latest.pth.tmp"
        state = {"network_weights": self.network.state_dict(),
                 "optimizer_state": self.optimizer.state_dict(),
                 "iteration": self.iteration, "best": self.best}
        if self.scaler is not None:
            state["scaler_state"] = self.scaler.state_dict()
        torch.save(state, tmp)
        tmp.replace(self.out_dir / "latest.pth")
        write_json_atomic(self.out_dir / "history.json", self.history, indent=1)

    def _validate(self, val_batches, train_losses: list[float], started: float) -> None:
        record = {"iteration": self.iteration, "train_loss": float(np.mean(train_losses)),
                  "lr": self.optimizer.param_groups[0]["lr"],
                  "seconds": round(time.time() - started, 1)}
        # Every rank validates on the same batches, so all keep the same `best`.
        record.update(evaluate(self.network, val_batches, self.order, self.device))
        score = float(np.mean([record[f"dice_{r}"] for r in REGIONS]))
        record["mean_dice"] = score
        self.history.append(record)
        if score > self.best:
            self.best = score
            if self.writes:
                save_checkpoint(self.network, self.out_dir / "best.pth")

    def autocast(self):
        """The forward pass's autocast for the settings' precision on this device."""
        return devices.autocast(self.device, self.settings.precision)

    def _loss(self, data: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of one batch; under autocast it is still taken in fp32."""
        with self.autocast():
            logits = self.model(data)
        return self.loss_fn(logits.float(), target)

    def _step(self, data: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One optimiser step on a batch (fp16: through the gradient scaler)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(data, target)
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)  # clip the true gradients
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return loss

    def _after_step(self) -> None:
        """Called after every optimiser step (the head's trainer averages its weights)."""

    def start_from_prior(self, sample: Callable[[], Batch]) -> None:
        """Prior output biases for a fresh network (not resumed, not warm-started: a
        warm-started network's biases are already trained)."""
        if self.settings.prior_bias and self.iteration == 0 and not self.warm_started:
            # The global batches: every rank draws the same ones, so all set the same bias.
            share = set_prior_bias(self.network, [sample()[1] for _ in range(PRIOR_BATCHES)])
            if not self.writes:
                return
            write_json_atomic(self.out_dir / "prior.json", {"region_share": share.tolist()},
                              indent=None)

    def run(self, sample: Callable[[], Batch], val_batches: list[Batch],
            progress: Callable | None = None, stage: str = "train",
            shared: bool = True, on_device: Callable | None = None) -> list[dict]:
        """Train until settings.iterations; returns the history (one record per validation).

        `shared`: `sample` returns the global batch, of which this rank trains on its
        share; False: it returns this rank's batch already (distributed.loader_batch).
        `on_device`: (data, target) -> (data, target) applied after the batch is on the
        device (the 2D trainer's projection warp on a GPU)."""
        torch.manual_seed(self.settings.seed + self.iteration)
        self.start_from_prior(sample)
        self.model = distributed.wrap(self.network, self.device)
        self.network.train()
        losses, started = [], time.time()
        while self.iteration < self.settings.iterations:
            batch = distributed.local_share(sample()) if shared else sample()
            data, target = devices.to_device(batch, self.device)
            if on_device is not None:
                data, target = on_device(data, target)
            self.scheduler.step(self.iteration)
            loss = self._step(data, target)
            self._after_step()
            losses.append(float(loss.detach()))
            self.iteration += 1
            done = self.iteration == self.settings.iterations
            if done or self.iteration % self.settings.validate_every == 0:
                self._validate(val_batches, losses, started)
                losses = []
            if done or self.iteration % self.settings.checkpoint_every == 0:
                self._save()
            if progress is not None and self.writes:
                progress(stage, self.iteration, self.settings.iterations,
                         f"loss {np.mean(losses[-20:]) if losses else 0:.4f} best {self.best:.3f}")
        if self.writes and not (self.out_dir / "best.pth").is_file():
            save_checkpoint(self.network, self.out_dir / "best.pth")
        return self.history
