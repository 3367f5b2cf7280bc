"""DDP training (`train --gpus N`) on the CPU with the gloo backend and 2 processes:
the same weights as one process on the same global batch, a 2-process checkpoint
resumed by one process, and a killed rank that leaves a readable checkpoint."""

import os
import signal

import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from uncertaintyseg.training import distributed
from uncertaintyseg.training.loop import Loop, LoopSettings

pytestmark = pytest.mark.slow
GLOBAL_BATCH = 4


def _network():
    torch.manual_seed(0)
    # No convolution bias: before an instance norm its gradient is rounding noise, which
    # Adam scales to full steps, so the two runs' biases would differ by the noise alone.
    return PlainConvUNet(4, 2, (4, 8), nn.Conv2d, 3, (1, 2), (1, 1), 3, (1,),
                         conv_bias=False, norm_op=nn.InstanceNorm2d, nonlin=nn.LeakyReLU,
                         deep_supervision=False)


def _train(out_dir, iterations, device="cpu", kill_at=None):
    """A tiny network on synthetic global batches of GLOBAL_BATCH (every rank draws the
    same ones: the loop's seeds); rank 1 kills itself at sample `kill_at`."""
    torch.set_num_threads(1)
    settings = LoopSettings(iterations=iterations, validate_every=2, checkpoint_every=2,
                            seed=1)
    drawn = [0]

    def sample():
        drawn[0] += 1
        if kill_at is not None and distributed.rank() == 1 and drawn[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        data = torch.randn(GLOBAL_BATCH, 4, 16, 16)
        return data, (data[:, :3] > 0.5).float()

    torch.manual_seed(5)
    val = [sample()]
    Loop(_network(), out_dir, settings, [0, 1, 2], device=device).run(sample, val)


def _weights(folder):
    return torch.load(folder / "latest.pth", weights_only=True)


def _assert_close(a, b):
    for key, value in a["network_weights"].items():
        torch.testing.assert_close(value, b["network_weights"][key], rtol=1e-4, atol=1e-5,
                                   msg=key)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """4 iterations on 2 gloo ranks and in 1 process (spawned once for two tests)."""
    root = tmp_path_factory.mktemp("ddp")
    distributed.run_ranks(_train, 2, (root / "ddp", 4), backend="gloo")
    _train(root / "one", 4)
    return root


def test_two_ranks_take_the_steps_of_one_process(runs):
    ddp, one = _weights(runs / "ddp"), _weights(runs / "one")
    assert ddp["iteration"] == one["iteration"] == 4
    _assert_close(ddp, one)
    start = _network().state_dict()  # and they trained: the weights moved
    assert any(not torch.allclose(v, start[k]) for k, v in one["network_weights"].items())
    assert sorted(p.name for p in (runs / "ddp").iterdir()) == sorted(
        p.name for p in (runs / "one").iterdir())  # rank 1 wrote nothing of its own


def test_a_two_rank_checkpoint_resumes_in_one_process(runs):
    for folder in ("ddp", "one"):  # both resumed by one process to 6 iterations
        _train(runs / folder, 6)
    ddp, one = _weights(runs / "ddp"), _weights(runs / "one")
    assert ddp["iteration"] == one["iteration"] == 6
    _assert_close(ddp, one)


def test_a_killed_rank_stops_the_run_with_a_whole_checkpoint(tmp_path):
    out = tmp_path / "ddp"
    # 4 prior-bias batches, 1 validation batch, then one per iteration: rank 1 dies
    # drawing the batch of iteration 4 (index 3), after the checkpoint of iteration 2.
    with pytest.raises(Exception, match="terminated with signal|exited with exit code"):
        distributed.run_ranks(_train, 2, (out, 6), {"kill_at": 9}, backend="gloo")
    state = _weights(out)  # loads: the rename is atomic
    assert state["iteration"] in (2, 4)
    _train(out, 6)  # one process resumes it to the end
    assert _weights(out)["iteration"] == 6
