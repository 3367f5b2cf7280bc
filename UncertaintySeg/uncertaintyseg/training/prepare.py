"""nnU-Net planning and preprocessing, and our two configurations added to its plans.

nnU-Net's own fingerprint extraction, ExperimentPlanner and DefaultPreprocessor run
unchanged (crop to the non-zero region, per-channel z-score inside it, resampling to the
planned spacing). We then add two configurations to the plans, both inheriting from
nnU-Net's planned "2d" so that they read the same preprocessed data (one preprocessing
run serves both networks):

- `2d_small`: nnU-Net's 2D topology (stages, strides, kernels, patch size) with fewer
  features per stage, so the checkpoint stays small and a CPU can train it;
- `3d_cube`: a 3D PlainConvUNet whose patch is the refinement cube (design 4.4), with
  only as many stride-2 stages as keep the bottleneck of the smallest cube >= 4 voxels.

and three for the estimators the papers compare (`train --estimators`):

- `2d_dropout`: `2d_small` with nnU-Net's `dropout_op` (Dropout2d, p = 0.1 by default)
  after every convolution, for MC dropout;
- `2d_head`: `2d_small` itself; the network gets one more output channel (the
  uncertainty head), which `models.build_network(extra_outputs=1)` adds;
- `3d_full`: the `3d_cube` topology with a larger patch (96^3 for BraTS), trained on
  nnU-Net's patches of the whole brain crop, for the 3D-only baseline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..options import TRAINED_NETWORKS
from ..files.output_safety import write_json_atomic

PLANS_NAME = "nnUNetPlans"
CONFIG_2D = "2d_small"
CONFIG_3D = "3d_cube"
# The estimators' own networks (docs/TRAINING.md): the 2D topology with dropout, the 2D
# topology with one more output channel (the uncertainty head), a whole-crop 3D network.
# Each is named as its network in a model folder (options.TRAINED_NETWORKS).
CONFIG_DROPOUT = TRAINED_NETWORKS["mc-dropout"]
CONFIG_HEAD = TRAINED_NETWORKS["uncertainty-head"]
CONFIG_FULL_3D = TRAINED_NETWORKS["full-3d"]
DROPOUT_OP = "torch.nn.modules.dropout.Dropout2d"
MIN_BOTTLENECK = 4  # voxels per axis at the deepest stage of the 3D network


def set_nnunet_paths(work: Path, augmentation_workers: int = 2) -> dict[str, str]:
    """Point nnU-Net's three folders into `work` (never into the project) and return them.

    nnunetv2 2.8 reads these variables when it uses them, so setting them here in the
    process is enough; nnUNet_n_proc_DA (nnU-Net's augmentation workers per GPU) is
    `augmentation_workers` unless the user set it: 2 on the CPU, where the machines we
    target have few cores (devices.augmentation_workers).
    """
    work = Path(work).resolve()
    paths = {"nnUNet_raw": str(work / "nnUNet_raw"),
             "nnUNet_preprocessed": str(work / "nnUNet_preprocessed"),
             "nnUNet_results": str(work / "nnUNet_results")}
    for key, value in paths.items():
        Path(value).mkdir(parents=True, exist_ok=True)
        os.environ[key] = value
    os.environ.setdefault("nnUNet_n_proc_DA", str(augmentation_workers))
    return paths


def plan_dataset(dataset_id: int, num_processes: int = 2, check_integrity: bool = True) -> Path:
    """nnU-Net fingerprint + ExperimentPlanner (after its dataset integrity check, unless
    `check_integrity` is False); returns the plans file."""
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import \
        DatasetFingerprintExtractor
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import \
        ExperimentPlanner
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset, plan_experiment_dataset)
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name

    # The class objects are passed directly: nnU-Net's lookup by class *name* walks its
    # modules and may import torchvision, which does not import beside the CPU torch.
    extract_fingerprint_dataset(dataset_id, DatasetFingerprintExtractor, num_processes,
                                check_dataset_integrity=check_integrity, clean=False, verbose=False)
    plan_experiment_dataset(dataset_id, ExperimentPlanner)
    name = convert_id_to_dataset_name(dataset_id)
    return Path(os.environ["nnUNet_preprocessed"]) / name / f"{PLANS_NAME}.json"


def _features(n_stages: int, base: int, cap: int) -> list[int]:
    return [int(min(base * 2 ** i, cap)) for i in range(n_stages)]


def small_2d_configuration(plans: dict, base_features: int, max_features: int,
                           batch_size: int) -> dict:
    """nnU-Net's planned 2d topology with `base_features` doubling up to `max_features`."""
    arch = json.loads(json.dumps(plans["configurations"]["2d"]["architecture"]))
    n_stages = arch["arch_kwargs"]["n_stages"]
    arch["arch_kwargs"]["features_per_stage"] = _features(n_stages, base_features, max_features)
    return {"inherits_from": "2d", "batch_size": int(batch_size), "architecture": arch}


def cube_3d_configuration(plans: dict, cube_voxels: int, base_features: int,
                          max_features: int, batch_size: int) -> dict:
    """A 3D PlainConvUNet with patch = the smallest cube (voxels per axis).

    Stride-2 stages are added while the bottleneck stays >= MIN_BOTTLENECK voxels,
    so a 32-voxel cube gets 4 stages (32, 16, 8, 4); larger cubes (WT's 64) run through
    the same fully convolutional network.
    """
    n_down = int(max(0, np.floor(np.log2(cube_voxels / MIN_BOTTLENECK))))
    n_stages = n_down + 1
    arch2d = plans["configurations"]["2d"]["architecture"]["arch_kwargs"]
    arch = {
        "network_class_name": plans["configurations"]["2d"]["architecture"]["network_class_name"],
        "arch_kwargs": {
            "n_stages": n_stages,
            "features_per_stage": _features(n_stages, base_features, max_features),
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * n_stages,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * n_down,
            "n_conv_per_stage": [2] * n_stages,
            "n_conv_per_stage_decoder": [2] * (n_stages - 1),
            "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": arch2d.get("norm_op_kwargs", {"eps": 1e-5, "affine": True}),
            "dropout_op": None, "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    return {"inherits_from": "2d", "batch_size": int(batch_size),
            "patch_size": [int(cube_voxels)] * 3, "architecture": arch}


def dropout_2d_configuration(plans: dict, probability: float) -> dict:
    """CONFIG_2D with nnU-Net's dropout_op after every convolution (same weights names)."""
    arch = json.loads(json.dumps(plans["configurations"][CONFIG_2D]["architecture"]))
    arch["arch_kwargs"]["dropout_op"] = DROPOUT_OP
    arch["arch_kwargs"]["dropout_op_kwargs"] = {"p": float(probability)}
    return {"inherits_from": CONFIG_2D, "architecture": arch}


def add_estimator_configurations(plans: dict, settings: dict) -> None:
    """CONFIG_DROPOUT, CONFIG_HEAD and CONFIG_FULL_3D, added to `plans` in place."""
    configurations = plans["configurations"]
    configurations[CONFIG_DROPOUT] = dropout_2d_configuration(
        plans, settings.get("dropout_probability", 0.1))
    configurations[CONFIG_HEAD] = {"inherits_from": CONFIG_2D}
    patch = int(settings.get("patch_full_3d", 96))
    configurations[CONFIG_FULL_3D] = cube_3d_configuration(
        plans, patch, settings["features_3d"], settings["max_features_3d"],
        settings.get("batch_size_full_3d", 2))


def add_configurations(plans_file: Path, settings: dict) -> dict:
    """Add our configurations to the plans file (in place); returns the plans."""
    plans = json.loads(Path(plans_file).read_text())
    plans["configurations"][CONFIG_2D] = small_2d_configuration(
        plans, settings["features_2d"], settings["max_features_2d"], settings["batch_size_2d"])
    # cube voxels along the finest axis of the full-resolution grid
    spacing = min(plans["configurations"].get("3d_fullres", {}).get(
        "spacing", plans["original_median_spacing_after_transp"]))
    cube = int(round(min(settings["kernel_mm"]) / spacing))
    plans["configurations"][CONFIG_3D] = cube_3d_configuration(
        plans, cube, settings["features_3d"], settings["max_features_3d"],
        settings["batch_size_3d"])
    add_estimator_configurations(plans, settings)
    # nnU-Net's planner wrote the file; a resumed train reads our version of it back.
    write_json_atomic(plans_file, plans)
    return plans


# The nnU-Net configuration whose planned batch size a network (its ChainSettings field)
# takes when its batch size is 0 (the `paper` preset's: nnU-Net sizes the batch to the
# GPU memory it plans for).
PLANNED_BATCH = {"net2d": "2d", "net_dropout": "2d", "net_head": "2d",
                 "net3d": "3d_fullres", "net_full3d": "3d_fullres"}


def planned_batch_sizes(plans_file: Path, settings) -> None:
    """Batch size 0 in `settings` (ChainSettings) -> nnU-Net's planned batch of
    PLANNED_BATCH's configuration (its 2d when the plans have no 3d_fullres), rounded up
    to a multiple of settings.gpus; set in place, so model.json records the numbers."""
    configurations = json.loads(Path(plans_file).read_text())["configurations"]
    for key, name in PLANNED_BATCH.items():
        net = getattr(settings, key)
        if net.batch_size == 0:
            batch = int(configurations.get(name, configurations["2d"])["batch_size"])
            net.batch_size = -(-batch // settings.gpus) * settings.gpus


def preprocess_dataset(dataset_id: int, num_processes: int = 2) -> None:
    """nnU-Net's DefaultPreprocessor for the planned 2d configuration (shared by ours)."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess_dataset as pp

    pp(dataset_id, PLANS_NAME, ["2d"], [num_processes], verbose=False,
       show_progress_bar=False)
