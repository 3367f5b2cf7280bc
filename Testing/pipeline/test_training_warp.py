"""The 2D trainer's projection warp on the device: drawn on the CPU as the batch
arrives, warped after the transfer. Run on the CPU that path must be the one the CPU
trainer takes (same draws, same warped batches, same weights)."""

import copy

import numpy as np
import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from uncertaintyseg.training.loop import Loop, LoopSettings
from uncertaintyseg.training.trainer2d import DeviceProjection, project_batch

torch.set_num_threads(1)
RADIUS, PROBABILITY, SEED = 9.0, 0.7, 5


def _batch(generator):
    """A (6, 4, 24, 24) batch with a brain (non-zero disc) and binary regions."""
    rows, cols = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    brain = ((rows - 12) ** 2 + (cols - 11) ** 2 < 81).float()
    data = torch.randn(6, 4, 24, 24, generator=generator) * brain
    return data, (data[:, :3] > 0.5).float()


def _draws(count):
    generator = torch.Generator().manual_seed(SEED)
    return [_batch(generator) for _ in range(count)]


def test_the_device_path_warps_each_batch_as_the_cpu_path_does():
    cpu_rng, device_rng = np.random.default_rng(SEED), np.random.default_rng(SEED)
    projection = DeviceProjection(RADIUS, PROBABILITY, device_rng)
    warped = 0
    for data, target in _draws(8):
        expected = project_batch(data, target, RADIUS, PROBABILITY, cpu_rng)
        drawn = projection.draw(data, target)
        assert drawn[0] is data  # nothing is warped before the transfer
        got = projection(*drawn)
        for e, g in zip(expected, got):
            torch.testing.assert_close(g, e, rtol=0, atol=1e-6)
        warped += int(not torch.equal(got[0], data))
    assert warped >= 4  # the test compares warped batches, not only untouched ones


def _network():
    torch.manual_seed(0)
    return PlainConvUNet(4, 2, (4, 8), nn.Conv2d, 3, (1, 2), (1, 1), 3, (1,),
                         conv_bias=True, norm_op=nn.InstanceNorm2d, nonlin=nn.LeakyReLU,
                         deep_supervision=False)


def test_a_loop_with_the_warp_after_the_transfer_takes_the_cpu_trainers_steps(tmp_path):
    settings = LoopSettings(iterations=4, validate_every=100, checkpoint_every=100,
                            seed=SEED, prior_bias=False)
    cpu_net, device_net = _network(), _network()
    cpu_draws, device_draws = iter(_draws(4)), iter(_draws(4))
    cpu_rng = np.random.default_rng(SEED)
    projection = DeviceProjection(RADIUS, PROBABILITY, np.random.default_rng(SEED))
    val = [_draws(1)[0]]
    Loop(cpu_net, tmp_path / "cpu", settings, [0, 1, 2]).run(
        lambda: project_batch(*next(cpu_draws), RADIUS, PROBABILITY, cpu_rng),
        copy.deepcopy(val))
    Loop(device_net, tmp_path / "device", settings, [0, 1, 2]).run(
        lambda: projection.draw(*next(device_draws)), copy.deepcopy(val),
        on_device=projection)
    for key, value in cpu_net.state_dict().items():
        torch.testing.assert_close(device_net.state_dict()[key], value, rtol=0, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_warp_on_cuda_matches_the_cpu():
    data, target = _draws(1)[0]
    expected = project_batch(data, target, RADIUS, 1.0, np.random.default_rng(SEED))
    projection = DeviceProjection(RADIUS, 1.0, np.random.default_rng(SEED))
    got = projection(*(t.cuda() for t in projection.draw(data, target)))
    torch.testing.assert_close(got[0].cpu(), expected[0], rtol=1e-4, atol=1e-4)
    # nearest sampling may pick the other neighbour at an exact tie: almost all agree
    assert (got[1].cpu() == expected[1]).float().mean() > 0.99
