"""train --init-from: v5 goes on from v4's weights, exactly, and never from weights that
saw this run's validation cases (training/init_from.py)."""

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch

from uncertaintyseg.errors import InputError
from uncertaintyseg.networks.models import build_network
from uncertaintyseg.training import init_from

PHANTOM = Path(__file__).resolve().parents[2] / "UncertaintySeg/Resources/Models/phantom"


def _network(sub: str, configuration: str):
    plans = json.loads((PHANTOM / sub / "plans.json").read_text())
    dataset = json.loads((PHANTOM / sub / "dataset.json").read_text())
    return build_network(plans, dataset, configuration)


def test_every_weight_of_the_model_is_loaded():
    network = _network("2d", "2d_small")
    checkpoint = init_from.checkpoint_of(PHANTOM, "2d")
    init_from.load_exact(network, checkpoint)
    saved = torch.load(checkpoint, weights_only=True)["network_weights"]
    own = network.state_dict()
    assert set(own) == set(saved)
    for key, value in saved.items():
        assert own[key].dtype == torch.float32  # trained on in fp32, stored as fp16
        assert torch.equal(own[key], value.float()), key


def test_a_network_of_another_plan_is_refused_by_name():
    with pytest.raises(InputError, match=r"2d/checkpoint.pth does not fit.*preset and plans"):
        init_from.load_exact(_network("3d", "3d_cube"), PHANTOM / "2d" / "checkpoint.pth")


def test_weights_that_saw_a_validation_case_are_refused():
    init_from.check_split(PHANTOM, ["Phantom_0002", "Phantom_0009"])  # its own: fine
    with pytest.raises(InputError, match="trained on 1 of this run's validation cases "
                                         r"\(Phantom_0003\)"):
        init_from.check_split(PHANTOM, ["Phantom_0002", "Phantom_0003"])


def test_a_network_the_model_lacks_is_none_and_a_missing_file_an_error(tmp_path):
    assert init_from.checkpoint_of(PHANTOM, "3d_full") is None  # phantom: no estimators
    model = tmp_path / "model"
    shutil.copytree(PHANTOM, model)
    (model / "3d" / "checkpoint.pth").unlink()
    with pytest.raises(InputError, match="names the network '3d' but .* is missing"):
        init_from.checkpoint_of(model, "3d")
    with pytest.raises(InputError, match="no model.json"):
        init_from.read_model(tmp_path)


def test_a_resumed_run_keeps_its_own_weights(tmp_path):
    network = _network("2d", "2d_small")
    before = {k: v.clone() for k, v in network.state_dict().items()}
    (tmp_path / "latest.pth").write_bytes(b"")  # a run in this folder to resume
    assert init_from.start_from(network, tmp_path, PHANTOM / "2d" / "checkpoint.pth")
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())
    assert not init_from.start_from(network, tmp_path, None)


def test_train_takes_the_validation_cases_of_the_model_it_goes_on_from(tmp_path):
    from uncertaintyseg.commands.train_cli import chain_settings, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    base = ["train", "--phantoms", "1", "--out", str(tmp_path / "m"), "--preset", "tiny",
            "--device", "cpu", "--init-from", str(PHANTOM)]
    settings = chain_settings(parser.parse_args(base))
    assert settings.val_cases == ["Phantom_0002", "Phantom_0009"]
    assert settings.init_from == str(PHANTOM)
    chosen = chain_settings(parser.parse_args(base + ["--val-cases", "Phantom_0001"]))
    assert chosen.val_cases == ["Phantom_0001"]  # refused later, by check_split
