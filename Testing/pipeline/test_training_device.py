"""`train --device`: the loop on the CPU is the plain Adam + poly-LR + loss loop it always
was, the fp16 scaler path takes the same steps, and the device and precision checks
stop a run before any work."""

import copy
import json

import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from uncertaintyseg.commands.cli import main
from uncertaintyseg.errors import InputError
from uncertaintyseg.training import devices
from uncertaintyseg.training.loop import Loop, LoopSettings, make_loss, set_prior_bias

torch.set_num_threads(1)
SEED, ITERATIONS, BATCH = 3, 5, 2


def _network():
    torch.manual_seed(0)
    return PlainConvUNet(4, 3, (4, 8, 16), nn.Conv2d, 3, (1, 2, 2), (1, 1, 1), 3, (1, 1),
                         conv_bias=True, norm_op=nn.InstanceNorm2d, nonlin=nn.LeakyReLU,
                         deep_supervision=False)


def _sample():
    data = torch.randn(BATCH, 4, 16, 16)
    return data, (data[:, :3] > 0.8).float()


def _reference(network, settings):
    """The loop written out from torch primitives: prior biases, then Adam with
    nnU-Net's poly learning rate (lr0 (1 - i / n)^0.9), the loss, clipping at 12."""
    torch.manual_seed(settings.seed)
    set_prior_bias(network, [_sample()[1] for _ in range(4)])
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    loss_fn = make_loss(settings.loss)
    dtype = devices.PRECISIONS[settings.precision]
    for i in range(settings.iterations):
        data, target = _sample()
        for group in optimizer.param_groups:
            group["lr"] = settings.learning_rate * (1 - i / settings.iterations) ** 0.9
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            logits = network(data)
        loss_fn(logits.float(), target).backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 12)
        optimizer.step()
    return network.state_dict()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_cpu_loop_takes_the_reference_loops_steps(tmp_path, precision):
    settings = LoopSettings(iterations=ITERATIONS, validate_every=100, checkpoint_every=100,
                            seed=SEED, precision=precision)
    network = _network()
    expected = _reference(copy.deepcopy(network), settings)
    Loop(network, tmp_path, settings, [0, 1, 2], device="cpu").run(_sample, [_sample()])
    for key, value in network.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_the_gradient_scaler_path_takes_the_unscaled_steps(tmp_path):
    # fp16 needs CUDA; torch's CPU GradScaler runs the same code path here. Its scale
    # is a power of two, so scaling and unscaling the gradients is exact in fp32.
    settings = LoopSettings(iterations=ITERATIONS, validate_every=100, checkpoint_every=2,
                            seed=SEED)
    plain, scaled = _network(), _network()
    Loop(plain, tmp_path / "plain", settings, [0, 1, 2]).run(_sample, [_sample()])
    loop = Loop(scaled, tmp_path / "scaled", settings, [0, 1, 2])
    loop.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    loop.run(_sample, [_sample()])
    for key, value in plain.state_dict().items():
        assert torch.equal(value, scaled.state_dict()[key]), key
    state = torch.load(tmp_path / "scaled" / "latest.pth", weights_only=True)
    assert state["scaler_state"]["scale"] == 2.0 ** 10  # no overflow: the scale kept


def test_cpu_helpers_leave_batches_and_precision_as_they_were():
    batch = _sample()
    assert devices.to_device(batch, torch.device("cpu")) is batch
    assert devices.grad_scaler(torch.device("cpu"), "fp32") is None
    assert devices.grad_scaler(torch.device("cpu"), "bf16") is None
    loader = object()
    assert devices.background(loader, torch.device("cpu")) is loader
    with pytest.raises(InputError, match="fp16 needs a CUDA device"):
        devices.check_precision("fp16", "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_auto_is_the_cpu_here_and_cuda_or_mps_without_one_is_an_error():
    assert devices.resolve_training_device("auto") in ("cpu", "mps")
    with pytest.raises(InputError, match="--device cuda"):
        devices.resolve_training_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(InputError, match="--device mps"):
            devices.resolve_training_device("mps")


def _train(tmp_path, *extra):
    return main(["train", "--phantoms", "2", "--preset", "tiny", "--out",
                 str(tmp_path / "model"), "--work", str(tmp_path / "work"), *extra])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("extra, message", [
    (["--device", "cuda"], "--device cuda was asked for"),
    (["--device", "cpu", "--precision", "fp16"], "fp16 needs a CUDA device"),
    (["--device", "cpu", "--gpus", "2"], "--gpus 2 needs 2 CUDA GPUs"),
])
def test_train_stops_before_any_work(tmp_path, capsys, extra, message):
    assert _train(tmp_path, *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "work").exists() and not (tmp_path / "model").exists()


def test_dry_run_prints_the_plan_and_does_nothing(tmp_path, capsys):
    assert _train(tmp_path, "--device", "cpu", "--iterations-2d", "7", "--n-val", "1",
                  "--dry-run") == 0
    plan = capsys.readouterr().out
    assert "device: cpu" in plan and "net2d: 7 iterations, batch 2" in plan
    assert "cases: 2 (1 for validation)" in plan
    assert "train2d -> uncertainty" in plan and "-> train_full3d\n" in plan
    assert not (tmp_path / "work").exists() and not (tmp_path / "model").exists()


def test_print_sbatch_runs_the_same_training_on_a_gpu_node(tmp_path, capsys):
    assert _train(tmp_path, "--gpus", "4", "--print-sbatch", "--slurm-queue", "gpu",
                  "--slurm-cpus", "32", "--slurm-prologue", "module load cuda") == 0
    script = capsys.readouterr().out
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert {"#SBATCH --gres=gpu:4", "#SBATCH --partition=gpu", "#SBATCH --nodes=1",
            "#SBATCH --cpus-per-task=32", "module load cuda"} <= set(lines)
    run = [line for line in lines if line.startswith("srun ")]
    assert len(run) == 1
    command = run[0].split()
    assert command[:3] == ["srun", "uncertaintyseg", "train"]
    assert command[command.index("--gpus") + 1] == "4"
    assert command[command.index("--device") + 1] == "cuda"
    assert command[command.index("--work") + 1] == str((tmp_path / "work").resolve())
    assert "--print-sbatch" not in command and "--slurm-queue" not in command
    assert not (tmp_path / "work").exists()


def test_batch_zero_takes_nnunets_planned_batch_split_evenly_across_the_gpus(tmp_path):
    from uncertaintyseg.training.chain_settings import ChainSettings
    from uncertaintyseg.training.prepare import planned_batch_sizes

    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"configurations": {"2d": {"batch_size": 13},
                                                    "3d_fullres": {"batch_size": 2}}}))
    settings = ChainSettings.from_dict({"gpus": 4, "net2d": {"batch_size": 0},
                                        "net3d": {"batch_size": 0},
                                        "net_full3d": {"batch_size": 0},
                                        "net_head": {"batch_size": 8}})
    planned_batch_sizes(plans, settings)
    assert (settings.net2d.batch_size, settings.net_dropout.batch_size) == (16, 8)
    assert (settings.net3d.batch_size, settings.net_full3d.batch_size) == (4, 4)
    assert settings.net_head.batch_size == 8  # not 0: its own
    with pytest.raises(InputError, match="net2d batch 6 does not split across --gpus 4"):
        ChainSettings.from_dict({"gpus": 4, "net2d": {"batch_size": 6},
                                 "net3d": {"batch_size": 4}, "net_full3d": {"batch_size": 4},
                                 "net_dropout": {"batch_size": 4}})


def test_ranks_on_an_accelerator_draw_their_own_share(monkeypatch):
    from uncertaintyseg.training import distributed

    assert distributed.loader_batch(8, torch.device("cuda")) == (8, True)  # one process
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    assert distributed.loader_batch(8, torch.device("cuda")) == (4, False)
    assert distributed.loader_batch(8, torch.device("cpu")) == (8, True)  # gloo: shared
    assert devices.augmentation_workers("cpu", 1) == 2  # the CPU's, as before
    assert devices.augmentation_workers("cuda", 64) == 1
