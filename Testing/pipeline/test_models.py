"""models: the analytic model, networks built from nnU-Net plans, checkpoints, errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from uncertaintyseg.files.convert import CHANNEL_NAMES, REGION_LABELS
from uncertaintyseg.files.io import InputError
from uncertaintyseg.networks.models import (MODEL_FILE, MODELS_DIR, AnalyticNetwork2D,
                                            available_models, build_network, load_model, region_order,
                                            save_checkpoint)
from uncertaintyseg.training.prepare import (CONFIG_2D, CONFIG_3D, cube_3d_configuration,
                                             small_2d_configuration)

torch.set_num_threads(1)

ARCH_2D = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {
        "n_stages": 3, "features_per_stage": [32, 64, 128],
        "conv_op": "torch.nn.modules.conv.Conv2d", "kernel_sizes": [[3, 3]] * 3,
        "strides": [[1, 1], [2, 2], [2, 2]], "n_conv_per_stage": [2, 2, 2],
        "n_conv_per_stage_decoder": [2, 2], "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
        "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None,
        "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True}},
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}


def tiny_plans() -> dict:
    """Plans with nnU-Net's 2d entry (hand-made, tiny) plus our two configurations."""
    plans = {"dataset_name": "Dataset999_Test", "plans_name": "nnUNetPlans",
             "configurations": {"2d": {"data_identifier": "nnUNetPlans_2d",
                                       "patch_size": [32, 32], "batch_size": 2,
                                       "spacing": [1.0, 1.0], "architecture": ARCH_2D}}}
    plans["configurations"][CONFIG_2D] = small_2d_configuration(plans, 4, 8, 2)
    plans["configurations"][CONFIG_3D] = cube_3d_configuration(plans, 16, 4, 8, 2)
    return plans


def tiny_dataset() -> dict:
    return {"channel_names": dict(CHANNEL_NAMES), "labels": dict(REGION_LABELS),
            "regions_class_order": [1, 2, 3], "file_ending": ".nii.gz", "numTraining": 1}


def write_model_folder(folder, plans, dataset, seed=0):
    """A model folder as `train` lays it out, with randomly initialised networks."""
    torch.manual_seed(seed)
    for sub, config in (("2d", CONFIG_2D), ("3d", CONFIG_3D)):
        (folder / sub).mkdir(parents=True)
        (folder / sub / "plans.json").write_text(json.dumps(plans))
        (folder / sub / "dataset.json").write_text(json.dumps(dataset))
        save_checkpoint(build_network(plans, dataset, config), folder / sub / "checkpoint.pth")
    meta = {"name": "tiny", "version": "7", "trained": True, "radius": 20.0,
            "kernel_mm": [16, 16, 32], "fusion_weights": [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
            "networks": {"2d": {"configuration": CONFIG_2D}, "3d": {"configuration": CONFIG_3D}}}
    (folder / MODEL_FILE).write_text(json.dumps(meta))
    return folder


def test_analytic_model_shapes_and_description():
    model = load_model("analytic")
    assert not model.trained and "untrained" in model.description.lower()
    assert model.fusion_weights.shape == (3, 3)
    assert model.network_2d(torch.zeros(2, 4, 24, 30)).shape == (2, 3, 24, 30)
    assert model.network_3d(torch.zeros(1, 4, 10, 12, 14)).shape == (1, 3, 10, 12, 14)
    assert "analytic" in available_models()


def test_analytic_logits_follow_the_intensities():
    # Bright FLAIR + T2 square -> WT inside, not outside; bright T1ce -> ET there.
    x = torch.zeros(1, 4, 40, 40)
    x[:, [0, 3], 10:30, 10:30] = 3.0
    x[:, 2, 15:25, 15:25] = 4.0
    logits = AnalyticNetwork2D()(x)[0]
    et, wt = logits[0], logits[2]
    assert wt[20, 20] > 0 > wt[2, 2]
    assert et[20, 20] > 0 > et[12, 12]


def test_region_order_maps_nnunet_labels_to_et_tc_wt():
    assert region_order(tiny_dataset()) == [2, 1, 0]  # dataset order is WT, TC, ET


def test_checkpoint_round_trip_through_model_folder(tmp_path):
    plans, dataset = tiny_plans(), tiny_dataset()
    folder = write_model_folder(tmp_path / "m", plans, dataset)
    model = load_model(str(folder))
    assert model.trained and model.name == "tiny" and model.radius == 20.0
    assert model.divisor_2d == 4 and model.divisor_3d == 4  # 16-voxel cube: 16, 8, 4
    np.testing.assert_array_equal(model.fusion_weights[2], [7, 8, 9])
    # The same weights, built independently, give the same outputs (channels reordered).
    reference = build_network(plans, dataset, CONFIG_2D)
    state = torch.load(folder / "2d" / "checkpoint.pth", weights_only=True)["network_weights"]
    reference.load_state_dict(state)
    reference.eval()
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        expected = reference(x)[:, [2, 1, 0]]
        np.testing.assert_allclose(model.network_2d(x).numpy(), expected.numpy(), atol=1e-5)
        assert model.network_3d(torch.randn(1, 4, 16, 16, 16)).shape == (1, 3, 16, 16, 16)


def test_fp16_checkpoint_loads_as_float32(tmp_path):
    plans, dataset = tiny_plans(), tiny_dataset()
    folder = write_model_folder(tmp_path / "m", plans, dataset)
    net = build_network(plans, dataset, CONFIG_2D)
    save_checkpoint(net, folder / "2d" / "checkpoint.pth", half=True)
    state = torch.load(folder / "2d" / "checkpoint.pth", weights_only=True)["network_weights"]
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    model = load_model(str(folder))
    loaded = model.network_2d.network.state_dict()
    for key, value in net.state_dict().items():
        if value.is_floating_point():
            assert loaded[key].dtype == torch.float32
            torch.testing.assert_close(loaded[key], value.half().float())


def test_component_fraction_comes_from_model_json(tmp_path):
    folder = write_model_folder(tmp_path / "m", tiny_plans(), tiny_dataset())
    meta = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    assert load_model(str(folder)).min_component_fraction == 0.1  # no "postprocess": default
    for postprocess, expected in (({"min_component_fraction": 1.0}, 1.0), (None, 0.1)):
        (folder / MODEL_FILE).write_text(json.dumps({**meta, "postprocess": postprocess}))
        assert load_model(str(folder)).min_component_fraction == expected
    (folder / MODEL_FILE).write_text(json.dumps({**meta,
                                                 "postprocess": {"min_component_fraction": 1.5}}))
    with pytest.raises(InputError, match=r"model\.json is incomplete.*not in \[0, 1\]"):
        load_model(str(folder))


def test_triage_threshold_comes_from_model_json(tmp_path):
    # evaluate --calibrate-triage stores {"triage": {"threshold": ...}}; predict uses it.
    folder = write_model_folder(tmp_path / "m", tiny_plans(), tiny_dataset())
    meta = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    assert load_model(str(folder)).triage_threshold == 0.25  # none stored: the default
    (folder / MODEL_FILE).write_text(json.dumps({**meta, "triage": {"threshold": 0.77}}))
    assert load_model(str(folder)).triage_threshold == 0.77
    (folder / MODEL_FILE).write_text(json.dumps({**meta, "triage": {"threshold": 7}}))
    with pytest.raises(InputError, match=r"triage\.threshold 7.0 is not in \[0, 1\]"):
        load_model(str(folder))


def test_quality_section_comes_from_model_json(tmp_path):
    # tools/fit_case_quality.py --write stores {"quality": {...}}; predict's block uses it.
    folder = write_model_folder(tmp_path / "m", tiny_plans(), tiny_dataset())
    meta = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    assert load_model(str(folder)).quality == {}  # none stored: limits only, no estimate
    quality = {"intercept": 0.9, "coefficients": {"disagreement_2d3d": -0.5}, "interval": 0.1}
    (folder / MODEL_FILE).write_text(json.dumps({**meta, "quality": quality}))
    assert load_model(str(folder)).quality == quality


def test_corrupt_checkpoint_gives_clear_error(tmp_path):
    folder = write_model_folder(tmp_path / "m", tiny_plans(), tiny_dataset())
    (folder / "3d" / "checkpoint.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"3d.checkpoint\.pth.*corrupt"):
        load_model(str(folder))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    folder = write_model_folder(tmp_path / "m", tiny_plans(), tiny_dataset())

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"network_weights": Payload()}, folder / "2d" / "checkpoint.pth")
    with pytest.raises(InputError, match="corrupt"):
        load_model(str(folder))


def test_mismatched_checkpoint_gives_clear_error(tmp_path):
    plans, dataset = tiny_plans(), tiny_dataset()
    folder = write_model_folder(tmp_path / "m", plans, dataset)
    other = small_2d_configuration(plans, 8, 16, 2)  # more features than the plans say
    plans_big = json.loads(json.dumps(plans))
    plans_big["configurations"][CONFIG_2D] = other
    save_checkpoint(build_network(plans_big, dataset, CONFIG_2D), folder / "2d" / "checkpoint.pth")
    with pytest.raises(InputError, match="does not match"):
        load_model(str(folder))


def test_missing_model_and_missing_files_name_the_fix(tmp_path):
    with pytest.raises(InputError, match="not found.*analytic"):
        load_model(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="lacks model.json"):
        load_model(str(tmp_path / "empty"))
    folder = write_model_folder(tmp_path / "m", tiny_plans(), tiny_dataset())
    (folder / "2d" / "checkpoint.pth").unlink()
    with pytest.raises(InputError, match="lacks 2d.checkpoint.pth.*train"):
        load_model(str(folder))


# ----------------------------------------------------------------- bundled models

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "brats2018"


def _bundled(name):
    if name not in available_models():
        pytest.fail(f"bundled model '{name}' missing from {MODELS_DIR}")
    return MODELS_DIR / name


@pytest.mark.parametrize("name", ["phantom", "brats-mini"])
def test_bundled_model_is_small_documented_and_loads(name):
    folder = _bundled(name)
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 25e6
    card = (folder / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## Validation" in card and "uncertaintyseg train" in card
    model = load_model(name)
    assert model.trained and model.name == name
    assert np.all(model.fusion_weights[:, :2] >= 0)


@pytest.mark.slow
def test_phantom_model_segments_a_new_phantom(tmp_path):
    from uncertaintyseg.files.io import load_case
    from uncertaintyseg.files.label_maps import load_labels
    from uncertaintyseg.evaluation.metrics import case_metrics
    from uncertaintyseg.files.phantom import write_phantom_case
    from uncertaintyseg.run.pipeline import Settings, run_case

    _bundled("phantom")
    folder = write_phantom_case(tmp_path, seed=101)  # not among the training seeds
    case = load_case(case_dir=folder)
    result = run_case(case, load_model("phantom"), Settings(projections=4, device="cpu"))
    reference, _ = load_labels(next(folder.glob("*seg.nii.gz")))
    scores = case_metrics(reference, result.labels, case.spacing)
    assert scores["WT"]["dice"] > 0.85 and scores["TC"]["dice"] > 0.7
    assert scores["WT"]["hd95"] < 10


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no BraTS data at {SHARED} (the shared "
                    f"folder beside the checkout is absent)")
def test_brats_mini_predicts_a_real_validation_case():
    from uncertaintyseg.files.io import load_case
    from uncertaintyseg.files.label_maps import load_labels
    from uncertaintyseg.evaluation.metrics import case_metrics
    from uncertaintyseg.run.pipeline import Settings, run_case

    folder = _bundled("brats-mini")
    meta = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    case_id = meta["split"]["val"][0]  # a case the model never trained on
    case = load_case(case_dir=SHARED / case_id)
    result = run_case(case, load_model("brats-mini"), Settings(projections="preview",
                                                                 device="cpu"))
    reference, _ = load_labels(SHARED / case_id / f"{case_id}_seg.nii.gz")
    scores = case_metrics(reference, result.labels, case.spacing)
    # Measured when the model was bundled (MODEL_CARD.md, version 4, Brats18_CBICA_AOP_1):
    # ET 0.82 / 1.4 mm, TC 0.93 / 2.0 mm, WT 0.87 / 3.0 mm.
    # A broken pipeline (channel order, orientation, normalisation, region order,
    # geometry, the model's post-processing not applied) lands far below these.
    assert scores["ET"]["dice"] > 0.75 and scores["ET"]["hd95"] < 5
    assert scores["TC"]["dice"] > 0.75 and scores["TC"]["hd95"] < 20
    assert scores["WT"]["dice"] > 0.75 and scores["WT"]["hd95"] < 20
    assert result.boxes and all(b.region in ("ET", "TC", "WT") for b in result.boxes)
    # The feature distance (quality signal) of a clean validation case: 1.19 measured.
    assert 0.5 < result.report["feature_distance"] < 1.5
