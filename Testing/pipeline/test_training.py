"""training: nnU-Net planning/preprocessing, the 2D and 3D trainers, the chain, on tiny phantoms.

One module fixture runs nnU-Net's fingerprint, planner and preprocessor once (about half
a minute of the file's time: nnU-Net spawns worker processes).
"""

import json
import shutil

import numpy as np
import pytest
import torch

from uncertaintyseg.errors import InputError
from uncertaintyseg.stages.kernels import search_kernels
from uncertaintyseg.networks.models import build_network, load_model, stride_divisor
from uncertaintyseg.files.phantom import write_phantom_case
from uncertaintyseg.training.chain import Chain
from uncertaintyseg.training.chain_settings import ChainSettings
from uncertaintyseg.commands.train_cli import PRESETS
from uncertaintyseg.training.loop import Loop, LoopSettings
from uncertaintyseg.training.prepare import CONFIG_2D
from uncertaintyseg.training.trainer2d import Settings2D, project_batch, train_2d
from uncertaintyseg.training.trainer3d import (Settings3D, cubes_of_case, load_preprocessed,
                                               region_targets, train_3d)

torch.set_num_threads(1)
SHAPE = (40, 48, 48)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    for seed in range(3):
        write_phantom_case(root / "cases", seed=seed, shape=SHAPE)
    settings = ChainSettings.from_dict({**json.loads(json.dumps(PRESETS["tiny"])),
                                        "name": "tiny", "dataset_id": 990, "n_val": 1,
                                        "kernel_mm": [16, 16, 24],
                                        # test_convert runs nnU-Net's integrity check
                                        "check_integrity": False})
    chain = Chain(root / "cases", root / "work", settings)
    chain.convert()
    chain.plan()
    chain.preprocess()
    return chain


def _weights(path):
    return torch.load(path, weights_only=True)["network_weights"]


def _changed(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


@pytest.mark.slow
def test_nnunet_plans_hold_our_configurations(chain):
    plans = chain.plans
    cube = plans["configurations"]["3d_cube"]
    assert cube["patch_size"] == [16, 16, 16]
    assert cube["architecture"]["arch_kwargs"]["n_stages"] == 3  # 16 -> 8 -> 4 voxels
    assert plans["configurations"]["2d_small"]["inherits_from"] == "2d"
    assert chain.spacing_zyx() == (1.0, 1.0, 1.0)
    image, seg = load_preprocessed(chain.data_folder, chain.split["train"][0])
    assert image.shape[0] == 4 and image.shape[1:] == seg.shape
    brain = seg >= 0
    assert abs(float(image[0][brain].mean())) < 0.05  # nnU-Net's z-score inside the brain
    assert np.all(image[:, ~brain] == 0)


def test_projection_augmentation_keeps_regions_binary_and_moves_them():
    rng = np.random.default_rng(0)
    data = torch.zeros(3, 4, 40, 40)
    data[:, :, 5:35, 5:35] = 1.0
    target = torch.zeros(3, 3, 40, 40)
    target[:, :, 12:22, 18:30] = 1.0
    same_data, same_target = project_batch(data, target, None, 0.0, rng)
    assert torch.equal(same_data, data) and torch.equal(same_target, target)
    warped_data, warped_target = project_batch(data, target, 10.0, 1.0, rng)
    assert set(torch.unique(warped_target).tolist()) <= {0.0, 1.0}
    assert not torch.equal(warped_target, target)
    # the border is fixed by the projection: the background frame stays background
    assert torch.all(warped_data[:, :, 0, :] == 0) and torch.all(warped_data[:, :, :, -1] == 0)


@pytest.mark.slow
def test_2d_trainer_trains_and_resumes(chain, tmp_path):
    settings = Settings2D(iterations=1, batch_size=2, validate_every=1, checkpoint_every=1,
                          val_batches=1, projection_probability=0.5)
    train_2d(chain.data_folder, chain.plans, chain.dataset, chain.split, tmp_path, settings)
    first = _weights(tmp_path / "latest.pth")
    settings.iterations = 4
    history = train_2d(chain.data_folder, chain.plans, chain.dataset, chain.split, tmp_path,
                       settings)
    state = torch.load(tmp_path / "latest.pth", weights_only=True)
    assert state["iteration"] == 4 and [h["iteration"] for h in history] == [1, 2, 3, 4]
    assert _changed(first, state["network_weights"])
    assert all(np.isfinite(h["train_loss"]) and 0 <= h["dice_WT"] <= 1 for h in history)
    assert (tmp_path / "best.pth").is_file()


@pytest.mark.slow
def test_bf16_runs_the_forward_pass_in_bf16_and_keeps_fp32_weights(chain, tmp_path):
    network = build_network(chain.plans, chain.dataset, CONFIG_2D)
    seen = []
    network.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    side = 2 * stride_divisor(chain.plans, CONFIG_2D)
    data, target = torch.randn(2, 4, side, side), (torch.rand(2, 3, side, side) > 0.5).float()
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        loop = Loop(network, tmp_path / precision, LoopSettings(precision=precision), [0, 1, 2])
        loss = loop._loss(data, target)
        assert seen[-1] == dtype and loss.dtype == torch.float32
    settings = Settings2D(iterations=3, batch_size=2, validate_every=3, checkpoint_every=3,
                          val_batches=1, precision="bf16")
    train_2d(chain.data_folder, chain.plans, chain.dataset, chain.split, tmp_path, settings)
    state = _weights(tmp_path / "latest.pth")
    # autocast runs the forward pass in bf16; the weights Adam updates stay fp32
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    with pytest.raises(ValueError, match="precision 'fp8'"):
        Settings2D(precision="fp8")
    with pytest.raises(InputError, match="fp16 needs a CUDA device"):  # fp16: CUDA only
        Loop(network, tmp_path / "fp16", LoopSettings(precision="fp16"), [0, 1, 2])


@pytest.mark.slow
def test_3d_trainer_learns_on_selected_cubes(chain, tmp_path):
    image, seg = load_preprocessed(chain.data_folder, chain.split["train"][0])
    regions = [chain.dataset["labels"][r] for r in ("WT", "TC", "ET")]
    targets = region_targets(seg, regions)
    uncertainty = targets[0].astype(np.float32)  # stands in for the 2D entropy
    boxes = search_kernels(uncertainty, (16, 16, 16), region="WT", max_count=3)
    cubes = cubes_of_case(image, targets, boxes, divisor=4)
    assert list(cubes) == [(16, 16, 16)] and len(cubes[(16, 16, 16)][0]) == len(boxes)
    assert cubes[(16, 16, 16)][1][:, 0].any()  # WT voxels inside the selected cubes
    settings = Settings3D(iterations=2, batch_size=2, validate_every=1, checkpoint_every=1)
    train_3d(chain.plans, chain.dataset, cubes, cubes, tmp_path, settings)
    first = _weights(tmp_path / "latest.pth")
    settings.iterations = 5
    history = train_3d(chain.plans, chain.dataset, cubes, cubes, tmp_path, settings)
    assert _changed(first, _weights(tmp_path / "latest.pth"))
    assert history[-1]["iteration"] == 5


@pytest.fixture(scope="module")
def trained(chain, tmp_path_factory):
    """The rest of the chain (tiny preset) and the model folder it makes."""
    from uncertaintyseg.training.bundle import write_card, write_model_folder

    record = chain.run()
    out = write_model_folder(tmp_path_factory.mktemp("model") / "tiny", chain, record)
    write_card(out, command="uncertaintyseg train ... (test)")
    return record, out


@pytest.mark.slow
def test_chain_writes_a_model_folder_that_load_model_accepts(chain, trained):
    record, out = trained
    assert set(record["timings"]) >= {"train2d", "uncertainty", "cubes", "train3d", "fusion",
                                      "postprocess"}
    weights = np.asarray(record["fusion"])
    assert weights.shape == (3, 3) and np.all(weights[:, :2] >= 0)
    model = load_model(str(out))
    assert model.trained and model.name == "tiny"
    np.testing.assert_allclose(model.fusion_weights, weights, rtol=1e-6)
    assert model.kernel_mm == (16.0, 16.0, 24.0)
    fraction = record["postprocess"]["min_component_fraction"]
    assert fraction in (0.1, 0.25, 0.5, 1.0) and model.min_component_fraction == fraction
    x = torch.zeros(1, 4, 2 * model.divisor_2d, 3 * model.divisor_2d)
    assert model.network_2d(x).shape == (1, 3, *x.shape[2:])
    assert (out / "curves.png").stat().st_size > 1000
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## Reproduce" in card and chain.split["val"][0] in card
    assert "- cross-validation fold: none (one seeded split)" in card
    assert json.loads((out / "model.json").read_text())["settings"]["fold"] is None


@pytest.mark.slow
def test_chain_trains_and_bundles_the_estimators_networks(chain, trained):
    from uncertaintyseg.training.stamps import checkpoint_digest

    record, out = trained
    assert {"train_dropout", "train_head", "train_full3d"} <= set(record["timings"])
    meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert meta["networks"]["2d_head"] == {"configuration": "2d_head", "extra_outputs": 1}
    assert meta["networks"]["2d_dropout"]["configuration"] == "2d_dropout"
    model = load_model(str(out))
    dropout = model.extra_network("2d_dropout").network
    rates = {m.p for m in dropout.modules() if isinstance(m, torch.nn.Dropout2d)}
    assert rates == {0.1}
    head = model.extra_network("2d_head")
    x = torch.zeros(1, 4, 2 * head.divisor, 2 * head.divisor)
    assert head.network(x).shape[1] == 4  # ET, TC, WT and the head
    biases = [layer.bias[3].item() for layer in head.network.network.decoder.seg_layers]
    assert biases == pytest.approx([-3.0] * len(biases), abs=0.05)  # init_head's start
    full = model.extra_network("3d_full")
    assert full.patch_size == (32, 32, 32)  # the tiny preset's patch
    assert full.network(torch.zeros(1, 4, 32, 32, 32)).shape == (1, 3, 32, 32, 32)
    # the dropout and head networks started from the 2D network they were bundled with
    for sub in ("2d_dropout", "2d_head"):
        assert record["histories"][sub] and (out / sub / "checkpoint.pth").is_file()
        started = json.loads((chain.train_dir / sub / "warm_start.json").read_text(encoding="utf-8"))
        assert started == {"2d": checkpoint_digest(chain.train_dir, "2d")}
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert all(f"`--method {m}`" in card for m in ("mc-dropout", "uncertainty-head", "full-3d"))


@pytest.mark.slow
def test_predict_runs_each_estimator_from_the_model_folder(chain, trained, tmp_path):
    from uncertaintyseg.files.contract import read_outputs
    from uncertaintyseg.run.predict import predict

    case_dir = chain.source / chain.split["val"][0]
    for method in ("mc-dropout", "uncertainty-head", "full-3d"):
        folder, result = predict(case_dir, tmp_path / method,
                                 {"model": str(trained[1]), "method": method,
                                  "projections": "2", "device": "cpu"}, snapshot=False)
        written = read_outputs(folder)
        assert written["report"]["method"] == method
        assert 0 <= result.uncertainty.min() and result.uncertainty.max() <= 1
        assert ((result.probabilities_2d == -1).all()) == (method == "full-3d")


def test_train_estimators_option_chooses_the_networks(tmp_path):
    import argparse

    from uncertaintyseg.commands.train_cli import chain_settings, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    base = ["train", "--phantoms", "1", "--out", str(tmp_path / "m"), "--preset", "tiny"]
    assert chain_settings(parser.parse_args(base)).estimators == [
        "mc-dropout", "uncertainty-head", "full-3d"]
    assert chain_settings(parser.parse_args(base + ["--estimators"])).estimators == []
    chosen = chain_settings(parser.parse_args(base + ["--estimators", "full-3d"]))
    assert chosen.estimators == ["full-3d"] and chosen.net_full3d.iterations == 2
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--estimators", "ensembles"])
    with pytest.raises(ValueError, match="ensembles"):
        ChainSettings.from_dict({"estimators": ["ensembles"]})


def test_train_precision_option_sets_every_network(tmp_path):
    import argparse

    from uncertaintyseg.training.chain_settings import NETWORK_SETTINGS
    from uncertaintyseg.commands.train_cli import chain_settings, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    # On the CPU: the default precision on a CUDA GPU is mixed (docs/TRAINING.md).
    base = ["train", "--phantoms", "1", "--out", str(tmp_path / "m"), "--preset", "tiny",
            "--device", "cpu"]
    default = chain_settings(parser.parse_args(base))
    assert {getattr(default, net).precision for net in NETWORK_SETTINGS} == {"fp32"}
    chosen = chain_settings(parser.parse_args(base + ["--precision", "bf16"]))
    assert {getattr(chosen, net).precision for net in NETWORK_SETTINGS} == {"bf16"}


@pytest.mark.slow
def test_nnunet_preprocessing_and_export_round_trip(chain, trained):
    from uncertaintyseg.files.io import load_case
    from uncertaintyseg.networks.working_grid import nnunet_export, nnunet_preprocess

    model = load_model(str(trained[1]))
    case_id = chain.split["val"][0]
    case = load_case(case_dir=chain.source / case_id)
    data, properties = nnunet_preprocess(model, case.image, case.spacing)
    stored, _ = load_preprocessed(chain.data_folder, case_id)
    np.testing.assert_allclose(data, stored, atol=1e-4)  # the same as at training time
    brain = (data != 0).any(axis=0)[None].astype(np.float32)
    back = nnunet_export(model, brain, properties)
    assert back.shape == (1, *case.image.shape[1:])
    np.testing.assert_array_equal(back[0] > 0.5, (case.image != 0).any(axis=0))


def test_stamps_discard_results_of_other_checkpoints(tmp_path):
    from uncertaintyseg.training.stamps import Stamps

    for sub in ("2d", "3d"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "best.pth").write_bytes(sub.encode())
    (tmp_path / "uncertainty").mkdir()
    (tmp_path / "uncertainty" / "case.npz").write_bytes(b"x")
    (tmp_path / "fusion.json").write_text("{}")
    stamps = Stamps(tmp_path)
    # No record (a work folder from before stamps.json): the results cannot be trusted.
    assert stamps.discard_if_stale("fusion") and not (tmp_path / "fusion.json").exists()
    assert not stamps.discard_if_stale("fusion")  # nothing left to remove
    (tmp_path / "fusion.json").write_text("{}")  # as the step writes it again
    stamps.record("uncertainty")
    stamps.record("fusion")
    (tmp_path / "3d" / "best.pth").write_bytes(b"3d, trained on")
    reread = Stamps(tmp_path)  # what a resumed run sees
    assert not reread.discard_if_stale("uncertainty")  # the 2D network did not change
    assert (tmp_path / "uncertainty" / "case.npz").is_file()
    assert reread.discard_if_stale("fusion") and not (tmp_path / "fusion.json").exists()
    (tmp_path / "2d" / "best.pth").write_bytes(b"2d, trained on")
    assert reread.discard_if_stale("uncertainty") and not (tmp_path / "uncertainty").exists()


@pytest.mark.slow
def test_passes_on_a_local_cluster_equal_the_passes_in_this_process(chain, trained, tmp_path):
    """train --workers 2: the training cases' uncertainty and the fit cases' 3D
    refinement, one task per case on a real LocalCluster of 2 worker processes, give the
    same files and arrays as in this process; the workers (not this process) ran them."""
    from distributed import Client

    from uncertaintyseg.commands.cohort_cli import local_cluster
    from uncertaintyseg.training import passes

    folder = chain.train_dir / "uncertainty"
    here = {p.name: dict(np.load(p)) for p in folder.glob("*.npz")}
    refined_here = [p3d for _, p3d, _ in chain._predict_fit_cases()]
    shutil.copytree(folder, tmp_path / "kept")
    for path in folder.glob("*.npz"):
        path.unlink()
    passes.forget_networks()
    try:
        with local_cluster(2, gpus=0) as cluster, Client(cluster) as client:
            chain.client, chain.pass_threads = client, 1
            chain.uncertainty()
            refined_there = [p3d for _, p3d, _ in chain._predict_fit_cases()]
            on_workers = client.run(passes.loaded_networks)
    finally:
        chain.client = chain.pass_threads = None
        for path in (tmp_path / "kept").iterdir():  # the later tests need the files
            if not (folder / path.name).is_file():
                shutil.copy2(path, folder / path.name)
    assert len(here) == 3 and sorted(p.name for p in folder.iterdir()) == sorted(here)
    for name, arrays in here.items():
        with np.load(folder / name) as npz:
            for key, value in arrays.items():
                np.testing.assert_array_equal(npz[key], value, err_msg=f"{name} {key}")
    assert len(refined_there) == len(refined_here) == len(chain.fit_cases())
    for there, mine in zip(refined_there, refined_here):
        np.testing.assert_array_equal(there, mine)
    assert passes.loaded_networks() == []
    assert {key[1] for keys in on_workers.values() for key in keys} == {"2d", "3d"}


@pytest.mark.slow
def test_resumed_chain_redoes_what_depends_on_a_changed_network(chain, trained):
    # Runs last in this module: it changes the chain's 2D checkpoint.
    from uncertaintyseg.networks.models import save_checkpoint

    npz = chain.train_dir / "uncertainty" / f"{chain.split['train'][0]}.npz"
    before = npz.read_bytes()
    net = chain.network_2d()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05)  # stands in for more 2D iterations
    save_checkpoint(net, chain.train_dir / "2d" / "best.pth")
    record = chain.run()
    assert npz.read_bytes() != before  # recomputed with the new 2D network
    stamps = json.loads((chain.train_dir / "stamps.json").read_text(encoding="utf-8"))
    assert set(stamps) == {"uncertainty", "cubes", "fusion", "postprocess"}
    assert len({s["2d"] for s in stamps.values()}) == 1  # all from the same checkpoint
    for sub in ("2d_dropout", "2d_head"):  # trained again from the changed 2D network
        started = json.loads((chain.train_dir / sub / "warm_start.json").read_text(encoding="utf-8"))
        assert started["2d"] == stamps["uncertainty"]["2d"]
    assert record["postprocess"]["min_component_fraction"] in (0.1, 0.25, 0.5, 1.0)


@pytest.mark.slow
def test_validation_keeps_each_cases_outputs_for_evaluate(chain, trained, tmp_path):
    from uncertaintyseg.files.contract import read_outputs
    from uncertaintyseg.files.convert import label_file
    from uncertaintyseg.files.label_maps import load_labels
    from uncertaintyseg.evaluation.metrics import case_metrics
    from uncertaintyseg.training.validate import validate_model

    record, out = trained
    case_id = chain.split["val"][0]
    result = validate_model(out, chain.source, [case_id], projections=2,
                            outputs_dir=tmp_path / "validation")
    written = read_outputs(tmp_path / "validation" / case_id)
    from uncertaintyseg.files.io import load_case

    reference, _ = load_labels(label_file(chain.source / case_id))
    spacing = load_case(case_dir=chain.source / case_id).spacing
    again = case_metrics(reference, written["labels"], spacing)
    for region in ("ET", "TC", "WT"):
        assert result["cases"][case_id][region]["dice"] == pytest.approx(
            again[region]["dice"])
    # the fit cases are the held-out ones, recorded beside the choice
    assert json.loads((chain.train_dir / "fusion.json").read_text())["cases"] == [case_id]
