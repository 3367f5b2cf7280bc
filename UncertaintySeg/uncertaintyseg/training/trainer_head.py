"""The uncertainty head (BraTS 2023 uncertainty-aware nnU-Net, `../shared/papers/
uncertainty-aware-nnunet-head.txt`): the 2D network with one more output channel.

The extra channel's sigmoid is trained against the network's own error map with the
paper's composite loss and weights:

    l = l_seg + 0.4 MSE(u, e) + 0.5 mean_b RMSD_b(u, e | cancer) + 0.4 (1 - mean_b corr_b)

RMSD_b is the root mean square of u - e over the cancer mask of sample b, corr_b the
Pearson correlation of u and e over that mask (mask-weighted). l_seg is our BCE (the
paper's is nnU-Net's Dice + CE; every network here trains with the paper's BCE).

Deviations, each for a reason:
- The error map e = |p_WT - WT| comes from an exponential moving average of the
  network's weights (torch's `AveragedModel` with `get_ema_multi_avg_fn`), not from a
  per-voxel EMA of error maps across epochs: our patches are re-sampled and augmented
  every iteration, so no voxel is seen twice in the same place to average.
- The cancer mask is the reference WT or the averaged network's predicted WT (the paper:
  WT, labels 1-3), so that false positives outside the tumour count as errors too.
- The MSE is taken over the whole patch, not only the mask: otherwise nothing trains the
  head outside the tumour and the kernel search would follow an untrained output there.
The network starts from the trained 2D network (`loop.warm_start`), so a few hundred
iterations fit the head; its output bias starts at HEAD_INIT_LOGIT. The checkpoint kept
is the last validated one, not the best validation Dice: the Dice does not see the head,
and its best is usually the warm start itself, before the head has learned anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import REGIONS
from ..networks.models import save_checkpoint
from .loop import Loop
from .trainer2d import Settings2D

# The paper's "empirically optimized weights".
UNC_WEIGHT, RMSD_WEIGHT, CORR_WEIGHT = 0.4, 0.5, 0.4
_EPS = 1e-6
# The head's initial output, sigmoid 0.047: the error map is near 0 over most of a patch,
# and Adam moves a bias by about the learning rate per step, so starting at 0 (0.5)
# would spend hundreds of iterations on the level alone.
HEAD_INIT_LOGIT = -3.0


def init_head(network: nn.Module, n_regions: int) -> None:
    """Set the head channel's bias of every nnU-Net output layer to HEAD_INIT_LOGIT."""
    with torch.no_grad():
        for layer in network.decoder.seg_layers:
            layer.bias[n_regions] = HEAD_INIT_LOGIT


@dataclass
class SettingsHead(Settings2D):
    """2D settings plus the decay of the weight average that makes the error map."""

    ema_decay: float = 0.99


def weighted_pearson(u: torch.Tensor, e: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-sample Pearson correlation of u and e with weights w, all (B, ...) -> (B,)."""
    dims = tuple(range(1, u.ndim))
    total = w.sum(dim=dims, keepdim=True).clamp_min(_EPS)
    du = u - (w * u).sum(dim=dims, keepdim=True) / total
    de = e - (w * e).sum(dim=dims, keepdim=True) / total
    cov = (w * du * de).sum(dim=dims)
    return cov / torch.sqrt((w * du ** 2).sum(dim=dims) * (w * de ** 2).sum(dim=dims) + _EPS)


def head_loss(u: torch.Tensor, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The paper's uncertainty terms for head output u (in [0, 1]), error map e and cancer
    mask (all (B, H, W)); samples without mask voxels add only to the MSE."""
    mse = torch.mean((u - e) ** 2)
    dims = tuple(range(1, u.ndim))
    count = mask.sum(dim=dims)
    present = count > 0
    if not present.any():
        return UNC_WEIGHT * mse
    rmsd = torch.sqrt(((u - e) ** 2 * mask).sum(dim=dims) / (count + _EPS) + _EPS)
    corr = weighted_pearson(u, e, mask)
    return (UNC_WEIGHT * mse + RMSD_WEIGHT * rmsd[present].mean()
            + CORR_WEIGHT * (1 - corr[present].mean()))


class HeadLoop(Loop):
    """Loop whose network has one more output (the head) and whose loss adds its terms."""

    extra_outputs = 1

    def __init__(self, network: nn.Module, out_dir, settings: SettingsHead, order: list[int],
                 warm_started: bool = False, device: str = "cpu"):
        super().__init__(network, out_dir, settings, order, warm_started, device)
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        if self.iteration == 0:  # a fresh start, not a resumed run
            init_head(network, len(order))

        # Starts from the current (warm-started or resumed) weights: a resumed run
        # restarts the average, which the decay forgets within a few hundred steps.
        self.average = AveragedModel(network,
                                     multi_avg_fn=get_ema_multi_avg_fn(settings.ema_decay))
        self.wt = order[REGIONS.index("WT")]

    def _after_step(self) -> None:
        self.average.update_parameters(self.network)

    def _validate(self, val_batches, train_losses, started) -> None:
        super()._validate(val_batches, train_losses, started)
        if self.writes:
            save_checkpoint(self.network, self.out_dir / "best.pth")  # the last (see above)

    def _loss(self, data: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            logits = self.model(data)
            with torch.no_grad():
                averaged = self.average.module(data)
        logits, n = logits.float(), target.shape[1]
        reference = target[:, self.wt]
        p_wt = torch.sigmoid(averaged[:, self.wt].float())
        error = (p_wt - reference).abs()
        mask = ((reference > 0.5) | (p_wt > 0.5)).float()
        return (self.loss_fn(logits[:, :n], target)
                + head_loss(torch.sigmoid(logits[:, n]), error, mask))
