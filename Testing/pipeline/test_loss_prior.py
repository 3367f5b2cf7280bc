"""The training loss (nnU-Net's region loss) and the prior output biases, against direct
computations."""

import json

import numpy as np
import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from uncertaintyseg.training.loop import (Loop, LoopSettings, make_loss, output_layers,
                                          set_prior_bias)

torch.set_num_threads(1)


def _network(outputs=3):
    return PlainConvUNet(4, 3, (4, 8, 16), nn.Conv2d, 3, (1, 2, 2), (1, 1, 1), outputs,
                         (1, 1), conv_bias=True, norm_op=nn.InstanceNorm2d,
                         nonlin=nn.LeakyReLU, deep_supervision=False)


def test_dice_bce_is_bce_minus_the_batch_soft_dice():
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(2, 3, 8, 8)), dtype=torch.float32)
    target = torch.tensor(rng.random((2, 3, 8, 8)) < 0.3, dtype=torch.float32)
    p = torch.sigmoid(logits)
    dims = (0, 2, 3)  # batch Dice: one score per channel over the whole batch
    dice = (2 * (p * target).sum(dims) + 1e-5) / (p.sum(dims) + target.sum(dims) + 1e-5)
    bce = nn.functional.binary_cross_entropy_with_logits(logits, target)
    expected = bce - dice.mean()
    assert float(make_loss("dice_bce")(logits, target)) == pytest.approx(float(expected),
                                                                         abs=1e-5)
    assert float(make_loss("bce")(logits, target)) == pytest.approx(float(bce), abs=1e-6)
    with pytest.raises(ValueError, match="loss"):
        LoopSettings(loss="focal")


def test_prior_bias_is_the_regions_log_odds():
    network = _network()
    targets = [torch.zeros(2, 3, 8, 8) for _ in range(2)]
    targets[0][:, 0, :4] = 1  # channel 0: half of the first batch, a quarter overall
    targets[1][:, 1, :, :1] = 1  # channel 1: 1/8 of the second batch, 1/16 overall
    share = set_prior_bias(network, targets)
    np.testing.assert_allclose(share, [0.25, 1 / 16, 1e-4], rtol=1e-6)
    bias = output_layers(network)[-1].bias.detach()
    np.testing.assert_allclose(torch.sigmoid(bias).numpy(), share, rtol=1e-5)


def test_a_fresh_loop_starts_from_the_prior_and_a_warm_one_does_not(tmp_path):
    target = torch.zeros(2, 3, 16, 16)
    target[:, 2, :8] = 1

    def sample():
        return torch.randn(2, 4, 16, 16), target

    settings = LoopSettings(iterations=1, validate_every=1, checkpoint_every=1)
    fresh = Loop(_network(), tmp_path / "fresh", settings, [0, 1, 2])
    fresh.start_from_prior(sample)
    assert json.loads((tmp_path / "fresh" / "prior.json").read_text())["region_share"][2] == 0.5
    assert abs(float(output_layers(fresh.network)[-1].bias[2].detach())) < 1e-6  # log(0.5 / 0.5)
    assert float(output_layers(fresh.network)[-1].bias[0].detach()) < -9  # share clamped to 1e-4
    warm_net = _network()
    before = output_layers(warm_net)[-1].bias.detach().clone()
    warm = Loop(warm_net, tmp_path / "warm", settings, [0, 1, 2], warm_started=True)
    warm.start_from_prior(sample)
    assert torch.equal(output_layers(warm_net)[-1].bias.detach(), before)
    assert not (tmp_path / "warm" / "prior.json").exists()
