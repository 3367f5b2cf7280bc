"""`uncertaintyseg train`: the whole training chain as one resumable command.

convert -> nnU-Net plan -> nnU-Net preprocess -> train 2D -> projected uncertainty on
the training cases -> kernel search -> cubes -> train 3D -> PSO fusion fit and the
post-processing choice on the validation cases (cases the networks did not learn from)
-> the estimators' own networks (`--estimators`: the dropout variant of
the 2D network, the uncertainty head, the whole-crop 3D network) -> model folder. Every
step leaves its result in the work folder and is skipped when that result is there, so
a killed run picks up where it stopped (the trainers resume from their last checkpoint).
"""

from __future__ import annotations

import json
import shutil
import time
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from .. import REGIONS
from ..cohorts.cohort import DEFAULT_RETRIES
from ..files.convert import SPLITS_FILE, convert_dataset, dataset_folder_name
from ..options import TRAINED_NETWORKS
from ..files.output_safety import write_json_atomic
from ..stages.fusion import fit_fusion, fuse
from ..stages.kernels import Box
from ..networks.models import RegionNetwork, load_network, stride_divisor
from . import devices, distributed, folds, init_from, passes, prepare
from .chain_settings import ChainSettings
from .component_fraction import choose_component_fraction
from .stamps import Stamps, checkpoint_digest
from .trainer2d import train_2d
from .trainer_full3d import train_full_3d
from .trainer_head import HeadLoop
from .trainer3d import (cubes_of_case, load_cubes, load_preprocessed,
                        merge_cubes, region_targets, save_cubes, train_3d)

# The chain step that trains each estimator network (models.EXTRA_NETWORKS); the
# configuration in the plans has the same name (prepare.CONFIG_DROPOUT, ...).
ESTIMATOR_STEPS = {prepare.CONFIG_DROPOUT: "train_dropout", prepare.CONFIG_HEAD: "train_head",
                   prepare.CONFIG_FULL_3D: "train_full3d"}

# The chain's steps in order (each a Chain method); the estimators' networks follow.
STEPS = ("convert", "plan", "preprocess", "train2d", "uncertainty", "cubes", "train3d",
         "fusion", "postprocess")


class Chain:
    """The training chain in `work` for cases in `source`; see run()."""

    def __init__(self, source: Path, work: Path, settings: ChainSettings, progress=None,
                 *, client=None, threads: int | None = None, retries: int = DEFAULT_RETRIES):
        """`client`: a Dask client (cohort engine) for the per-case passes, else they run
        here; `threads`: torch threads per task on it (None: the job's CPUs, else 1);
        `retries`: times a failed task is run again there."""
        self.source, self.work, self.settings = Path(source), Path(work), settings
        self.client, self.pass_threads, self.retries = client, threads, retries
        self.progress = progress or (lambda stage, done, total, message: None)
        self.paths = prepare.set_nnunet_paths(
            self.work, devices.augmentation_workers(settings.device, settings.gpus))
        self.name = dataset_folder_name(settings.dataset_id, settings.nnunet_name())
        self.pre = Path(self.paths["nnUNet_preprocessed"]) / self.name
        self.train_dir = self.work / folds.folder_name("train", settings.fold)
        self.train_dir.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = self._load_json("timings.json", {})
        self.stamps = Stamps(self.train_dir)
        self._predictions = None  # (checkpoint digests, training-case predictions)

    # ------------------------------------------------------------------ helpers
    def _load_json(self, name: str, default):
        path = self.train_dir / name
        return json.loads(path.read_text()) if path.is_file() else default

    def _save_json(self, name: str, data) -> None:
        write_json_atomic(self.train_dir / name, data)

    def _step(self, name: str, func) -> None:
        started = time.time()
        if self.stamps.discard_if_stale(name):
            self.progress("chain", 0, 1, f"{name}: the networks changed since it ran; redoing")
        self.progress("chain", 0, 1, f"{name} ...")
        func()
        self.stamps.record(name)
        self.timings[name] = round(self.timings.get(name, 0) + time.time() - started, 1)
        self._save_json("timings.json", self.timings)
        self.progress("chain", 1, 1, f"{name} done ({self.timings[name]:.0f} s in all)")

    # Read once: convert and plan, which write these files, drop the cached copies.
    @cached_property
    def plans(self) -> dict:
        return json.loads((self.pre / f"{prepare.PLANS_NAME}.json").read_text())

    @cached_property
    def dataset(self) -> dict:
        return json.loads((self.pre / "dataset.json").read_text())

    @cached_property
    def split(self) -> dict:
        return folds.split_of(json.loads((self.pre / SPLITS_FILE).read_text()),
                              self.settings.fold)

    def _forget_files(self) -> None:
        for name in ("plans", "dataset", "split"):
            self.__dict__.pop(name, None)

    @property
    def data_folder(self) -> Path:
        return self.pre / f"{prepare.PLANS_NAME}_2d"

    def spacing_zyx(self) -> tuple[float, float, float]:
        """Spacing of the preprocessed data: the 2D plan's in-plane, the median z."""
        plans = self.plans
        inplane = plans["configurations"]["2d"]["spacing"]
        z = plans["original_median_spacing_after_transp"][0]
        return (float(z), float(inplane[0]), float(inplane[1]))

    # ------------------------------------------------------------------ steps
    def convert(self) -> None:
        s, raw = self.settings, Path(self.paths["nnUNet_raw"])
        single = s.fold is None  # --fold: the five folds of every case (folds.py)
        folder = convert_dataset(self.source, raw, s.dataset_id, name=s.nnunet_name(),
                                 n_val=s.n_val if single else 0, seed=s.seed,
                                 val_cases=(s.val_cases or None) if single else None,
                                 progress=self.progress)
        self.pre.mkdir(parents=True, exist_ok=True)
        folds.write_splits(self.pre / SPLITS_FILE, folder / SPLITS_FILE, s.fold, s.seed)
        self._forget_files()

    def plan(self) -> None:
        if not (self.pre / f"{prepare.PLANS_NAME}.json").is_file():
            prepare.plan_dataset(self.settings.dataset_id, num_processes=2,
                                 check_integrity=self.settings.check_integrity)
        prepare.planned_batch_sizes(self.pre / f"{prepare.PLANS_NAME}.json", self.settings)
        plans = prepare.add_configurations(self.pre / f"{prepare.PLANS_NAME}.json",
                                           self.settings.plan_settings())
        self._forget_files()
        if plans.get("transpose_forward", [0, 1, 2]) != [0, 1, 2]:
            raise ValueError("nnU-Net transposed the axes of this dataset (anisotropic "
                             "spacing with a fine axis 0); the pipeline slices along axis 0, "
                             "so resample the cases to near-isotropic spacing first")

    def preprocess(self) -> None:
        ids = self.split["train"] + self.split["val"]
        if all(any(self.data_folder.glob(f"{i}.*")) for i in ids):
            return
        prepare.preprocess_dataset(self.settings.dataset_id, num_processes=2)

    def _train(self, func, *args, **kwargs) -> None:
        """func(*args, **kwargs) on the chain's device here, or with --gpus N in one
        process per GPU (distributed.run_ranks; only the chain reports progress then)."""
        if self.settings.gpus > 1:
            self.progress("chain", 0, 1, f"{kwargs.get('stage', func.__name__)} on "
                                         f"{self.settings.gpus} GPUs ...")
            distributed.run_ranks(func, self.settings.gpus, args, kwargs)
        else:
            func(*args, progress=self.progress, device=self.settings.device, **kwargs)

    def _init_checkpoint(self, network: str) -> Path | None:
        """--init-from's weights of `network`, checked against this run's split."""
        if not self.settings.init_from:
            return None
        model_dir = Path(self.settings.init_from)
        init_from.check_split(model_dir, self.split["val"])
        return init_from.checkpoint_of(model_dir, network)

    def train2d(self) -> None:
        self._train(train_2d, self.data_folder, self.plans, self.dataset, self.split,
                    self.train_dir / "2d", self.settings.net2d,
                    init_from=self._init_checkpoint("2d"))

    def _best_network(self, sub: str, configuration: str) -> RegionNetwork:
        """The best weights so far of `sub` ('2d' or '3d'), REGIONS-ordered, eval mode."""
        network, _ = load_network(self.train_dir / sub, configuration, plans=self.plans,
                                  dataset=self.dataset, checkpoint="best.pth")
        return network

    def network_2d(self) -> RegionNetwork:
        return self._best_network("2d", prepare.CONFIG_2D)

    def network_3d(self) -> RegionNetwork:
        return self._best_network("3d", prepare.CONFIG_3D)

    def _pass_job(self) -> passes.PassJob:
        threads = self.pass_threads if self.client is not None else self.settings.threads
        # The Dask workers (the cohort engine) compute on their CPUs.
        device = self.settings.device if self.client is None else "cpu"
        return passes.PassJob(self.train_dir, self.data_folder, self.plans, self.dataset,
                              self.settings, self.spacing_zyx(), threads, device)

    def _run_pass(self, task, case_ids: list[str], stage: str) -> dict:
        return passes.run_pass(task, self._pass_job(), case_ids, self.client, retries=self.retries,
                               progress=self.progress, stage=stage)

    def uncertainty(self) -> None:
        """P2D, normalised entropy and the selected boxes of every case (one .npz each,
        one task per case: passes.uncertainty_of_case)."""
        self._run_pass(passes.uncertainty_of_case, self.split["train"] + self.split["val"],
                       "uncertainty (training cases)")

    def _boxes(self, case_id: str) -> list[Box]:
        return passes.read_boxes(self.train_dir, case_id)

    def cubes(self) -> None:
        regions = [self.dataset["labels"][r] for r in self._output_names()]
        divisor = stride_divisor(self.plans, prepare.CONFIG_3D)
        for part in ("train", "val"):
            path = self.train_dir / f"cubes_{part}.npz"
            if path.is_file():
                continue
            per_case = []
            for case_id in self.split[part]:
                image, seg = load_preprocessed(self.data_folder, case_id)
                per_case.append(cubes_of_case(image, region_targets(seg, regions),
                                              self._boxes(case_id), divisor))
            save_cubes(merge_cubes(per_case), path)

    def _output_names(self) -> list[str]:
        return [k for k, v in self.dataset["labels"].items() if k != "background" and v != 0]

    def train3d(self) -> None:
        self._train(train_3d, self.plans, self.dataset,
                    load_cubes(self.train_dir / "cubes_train.npz"),
                    load_cubes(self.train_dir / "cubes_val.npz"), self.train_dir / "3d",
                    self.settings.net3d, init_from=self._init_checkpoint("3d"))

    def _warm_started_folder(self, sub: str) -> Path:
        """train/<sub> for a network that starts from the 2D network's best weights; a
        folder trained from another 2D checkpoint (the 2D network trained on since) is
        removed, so that it is trained again from the current one."""
        out, source = self.train_dir / sub, checkpoint_digest(self.train_dir, "2d")
        record = out / "warm_start.json"
        if out.is_dir() and (not record.is_file()
                             or json.loads(record.read_text()).get("2d") != source):
            shutil.rmtree(out)
            self.progress("chain", 0, 1, f"{sub}: the 2D network changed; training again")
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(record, {"2d": source}, indent=None)
        return out

    def train_dropout(self) -> None:
        """The 2D network with dropout (MC dropout), from the 2D network's weights."""
        self._train(train_2d, self.data_folder, self.plans, self.dataset, self.split,
                    self._warm_started_folder(prepare.CONFIG_DROPOUT),
                    self.settings.net_dropout, configuration=prepare.CONFIG_DROPOUT,
                 warm_from=self.train_dir / "2d" / "best.pth", stage="train 2D dropout")

    def train_head(self) -> None:
        """The 2D network with the uncertainty head, from the 2D network's weights."""
        self._train(train_2d, self.data_folder, self.plans, self.dataset, self.split,
                    self._warm_started_folder(prepare.CONFIG_HEAD), self.settings.net_head,
                    configuration=prepare.CONFIG_HEAD,
                 warm_from=self.train_dir / "2d" / "best.pth", loop_class=HeadLoop,
                 stage="train 2D uncertainty head")

    def train_full3d(self) -> None:
        """The whole-crop 3D network (the 3D-only baseline)."""
        self._train(train_full_3d, self.data_folder, self.plans, self.dataset, self.split,
                    self.train_dir / prepare.CONFIG_FULL_3D, self.settings.net_full3d,
                    init_from=self._init_checkpoint(prepare.CONFIG_FULL_3D))

    def estimator_networks(self) -> list[str]:
        """The networks (model subfolders) of the chosen estimators."""
        return [kind for method, kind in TRAINED_NETWORKS.items()
                if method in self.settings.estimators]

    def fit_cases(self) -> list[str]:
        """The cases the fusion and the post-processing are chosen on: the validation
        cases, which the networks were not trained on (the training cases only when
        there is no validation split: there the networks make no stray components and
        fit their own predictions, brats-mini v3)."""
        return self.split["val"] or self.split["train"]

    def _fit_predictions(self) -> list:
        """(p2d, p3d, reference) per fit case, (3, Z, Y, X) each, REGIONS order.

        fusion and postprocess both need them: the 3D refinement of every case runs once
        per pair of checkpoints, not once per step."""
        key = self.stamps.current("fusion")
        if self._predictions is None or self._predictions[0] != key:
            self._predictions = (key, list(self._predict_fit_cases()))
        return self._predictions[1]

    def _predict_fit_cases(self):
        """(p2d, p3d, reference) per fit case; the 3D refinement is one task per case
        (passes.refine_fit_case)."""
        p3d = self._run_pass(passes.refine_fit_case, self.fit_cases(),
                             "3D refinement (fit cases)")
        regions = [self.dataset["labels"][r] for r in REGIONS]
        for case_id in self.fit_cases():
            _, seg = load_preprocessed(self.data_folder, case_id)
            with np.load(passes.uncertainty_path(self.train_dir, case_id)) as npz:
                p2d = npz["p2d"].astype(np.float32)
            yield p2d, p3d[case_id], region_targets(seg, regions)

    def fusion(self) -> None:
        """PSO fit of (w2d, w3d, b) per region on the fit cases (design 4.5)."""
        if (self.train_dir / "fusion.json").is_file():
            return
        cases = self._fit_predictions()
        s = self.settings
        weights = fit_fusion(cases, seed=s.seed, particles=s.pso_particles,
                             iterations=s.pso_iterations, progress=self.progress)
        self._save_json("fusion.json", {"regions": list(REGIONS),
                                        "weights": np.asarray(weights).tolist(),
                                        "cases": self.fit_cases()})

    def postprocess(self) -> None:
        """The WT component fraction, chosen on the fused fit cases (design 4.6)."""
        if (self.train_dir / "postprocess.json").is_file():
            return
        weights = np.asarray(self._load_json("fusion.json", {})["weights"])
        cases = [(fuse(p2d, p3d, weights), ref)
                 for p2d, p3d, ref in self._fit_predictions()]
        fraction, table = choose_component_fraction(cases)
        self._save_json("postprocess.json", {
            "min_component_fraction": fraction, "cases": self.fit_cases(),
            "dice": {str(f): dict(zip(REGIONS, d)) for f, d in table.items()}})

    def run(self) -> dict:
        """Run every step (skipping finished ones); returns the training record."""
        torch.set_num_threads(self.settings.threads)
        for name in (*STEPS, *(ESTIMATOR_STEPS[kind] for kind in self.estimator_networks())):
            self._step(name, getattr(self, name))
        self._predictions = None  # the training-case predictions are large; free them
        passes.forget_networks()
        return {"timings": self.timings,
                "history_2d": self._load_json("2d/history.json", []),
                "history_3d": self._load_json("3d/history.json", []),
                "histories": {sub: self._load_json(f"{sub}/history.json", [])
                              for sub in self.estimator_networks()},
                "fusion": self._load_json("fusion.json", {})["weights"],
                "postprocess": self._load_json("postprocess.json", {})}
