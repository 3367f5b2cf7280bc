"""Building and loading the 2D and 3D networks (nnU-Net v2), and the analytic demo model.

A model folder (written by `uncertaintyseg train`, layout in docs/TRAINING.md):

    model.json                 name, version, radius, kernel_mm, fusion weights, settings
    2d/plans.json, 2d/dataset.json, 2d/checkpoint.pth
    3d/plans.json, 3d/dataset.json, 3d/checkpoint.pth
    2d_dropout/, 2d_head/, 3d_full/   the estimators' networks, where `train` made them
    curves.png, MODEL_CARD.md

Networks are built from the folder's nnU-Net plans with nnU-Net's own
`get_network_from_plans` (never through nnU-Net's trainer lookup by name, which imports
torchvision and crashes beside the CPU torch wheel), and checkpoints are read with
`torch.load(..., weights_only=True)` so that a model file can never run code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import DEFAULT_TRIAGE_THRESHOLD, REGIONS
# The analytic networks live in their own module; importable from here as before.
from .analytic import AnalyticNetwork2D, AnalyticNetwork3D  # noqa: F401
from .feature_distance import FIT_KEY
from ..stages.error_map import ERROR_MAP_KEY, check_fit
from ..stages.projection_curve import fitted_at
from ..files.io import InputError
from ..options import TRAINED_NETWORKS
from ..stages.postprocess import DEFAULT_COMPONENT_FRACTION


def _models_dir() -> Path:
    """The copy an installed wheel carries (uncertaintyseg/bundled_models, data only: found
    by path, never imported); else Resources/Models of the source tree (a checkout, an
    editable install, the Slicer extension)."""
    installed = Path(__file__).resolve().parents[1] / "bundled_models"
    source = Path(__file__).resolve().parents[2] / "Resources" / "Models"
    return installed if installed.is_dir() else source


MODELS_DIR = _models_dir()
MODEL_FILE = "model.json"
CHECKPOINT_FILE = "checkpoint.pth"
FORMAT_VERSION = 1
DEFAULT_KERNEL_MM = (32.0, 32.0, 64.0)
# The estimators' networks a model folder may hold (model.json "networks" keys, each its
# own subfolder): `estimators.ESTIMATORS` says which method needs which.
EXTRA_NETWORKS = tuple(TRAINED_NETWORKS.values())


@dataclass
class Model:
    """A 2D + 3D network pair with its fusion weights; networks in eval mode.

    network_2d maps a normalised (B, 4, H, W) batch to region logits (B, 3, H, W) in
    REGIONS order (ET, TC, WT); network_3d maps (B, 4, D, H, W) to (B, 3, D, H, W).
    fusion_weights is (3, 3), rows ET, TC, WT: [w2d, w3d, b]. radius is the projection
    radius in px (None: projection.default_radius). H, W (and D) must be padded to a
    multiple of divisor_2d (divisor_3d). kernel_mm is the cube side per region in mm.
    """

    name: str
    version: str
    network_2d: nn.Module
    network_3d: nn.Module
    fusion_weights: np.ndarray
    radius: float | None
    divisor_2d: int
    divisor_3d: int
    kernel_mm: tuple[float, float, float]
    trained: bool
    description: str
    # nnU-Net plans/dataset of the 2D network (None for the analytic model): what
    # nnunet_preprocess / nnunet_export need to run nnU-Net's own preprocessing and export.
    plans: dict | None = None
    dataset: dict | None = None
    configuration_2d: str | None = None
    # Post-processing chosen by the training chain (training.component_fraction).
    min_component_fraction: float = DEFAULT_COMPONENT_FRACTION
    # Case-level triage threshold chosen on validation cases (model.json "triage").
    triage_threshold: float = DEFAULT_TRIAGE_THRESHOLD
    quality: dict = field(default_factory=dict)  # model.json "quality" (quality_model)
    feature_distance: dict = field(default_factory=dict)  # model.json's, if any
    error_map: dict = field(default_factory=dict)  # model.json "error_map"; {}: no fit
    # The projection count each fit was made at (projection_curve.fitted_at).
    fitted_at: dict = field(default_factory=dict)
    # The model folder and its model.json "networks" entries beyond 2d/3d: the estimators'
    # networks (EXTRA_NETWORKS), loaded on first use by `extra_network`.
    folder: Path | None = None
    network_entries: dict = field(default_factory=dict)
    loaded_networks: dict = field(default_factory=dict)  # kind -> ExtraNetwork
    # The run's backend for the estimators' networks (inference_backend.use_backend):
    # called as wrap_network(kind, ExtraNetwork) -> ExtraNetwork; None: torch.
    wrap_network: object = None

    def has_network(self, kind: str) -> bool:
        """Whether the model has the estimator network `kind` (nothing is loaded)."""
        return kind in self.loaded_networks or (
            kind in self.network_entries and self.folder is not None)

    def extra_network(self, kind: str, device: str | torch.device = "cpu"
                      ) -> "ExtraNetwork | None":
        """An estimator's network (REGIONS order, eval mode; the head's extra channel
        last), or None when the model has none."""
        if not self.has_network(kind):
            return None
        if kind not in self.loaded_networks:
            self.loaded_networks[kind] = load_extra_network(self.folder, kind,
                                                            self.network_entries[kind])
        found = self.loaded_networks[kind]
        found.network.to(device)
        return found if self.wrap_network is None else self.wrap_network(kind, found)


@dataclass
class ExtraNetwork:
    """An estimator's network with the stride divisor and patch size of its plans."""

    network: nn.Module
    divisor: int
    patch_size: tuple[int, ...]


def load_extra_network(folder: Path, kind: str, entry: dict) -> ExtraNetwork:
    """The network in folder/kind (a model.json "networks" entry: configuration, and
    extra_outputs for the head)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = _read_json(folder / kind / "plans.json", folder)
    configuration = entry["configuration"]
    network, divisor = load_network(folder / kind, configuration, plans=plans,
                                    extra_outputs=int(entry.get("extra_outputs", 0)))
    patch = PlansManager(plans).get_configuration(configuration).patch_size
    return ExtraNetwork(network, divisor, tuple(int(p) for p in patch))


# --------------------------------------------------------------------------- analytic


def analytic_model() -> Model:
    """The untrained analytic model used by the demo and tests (no weights to load)."""
    return Model(
        name="analytic", version="1", network_2d=AnalyticNetwork2D().eval(),
        network_3d=AnalyticNetwork3D().eval(),
        fusion_weights=np.array([[4.0, 4.0, -4.0]] * 3, dtype=np.float32),
        radius=None, divisor_2d=1, divisor_3d=1, kernel_mm=DEFAULT_KERNEL_MM, trained=False,
        description="UNTRAINED analytic model: logits are fixed smooth functions of the "
                    "normalised intensities (FLAIR/T2 brightness for WT, T1ce brightness for "
                    "ET). For demos and tests only; not a segmentation model.")


# --------------------------------------------------------------------------- nnU-Net


class RegionNetwork(nn.Module):
    """Wraps an nnU-Net network: first (full-resolution) output only, channels reordered.

    nnU-Net orders region outputs as the labels of dataset.json (largest region first,
    which its export needs); the pipeline wants REGIONS order (ET, TC, WT).
    """

    def __init__(self, network: nn.Module, order: list[int]):
        super().__init__()
        self.network = network
        self.register_buffer("order", torch.tensor(order, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.network(x)
        if isinstance(y, (list, tuple)):  # deep supervision: full resolution comes first
            y = y[0]
        return y.index_select(1, self.order)


def region_order(dataset: dict) -> list[int]:
    """Index of each of REGIONS among the network's outputs (dataset.json label order)."""
    names = [k for k, v in dataset["labels"].items() if k != "background" and v != 0]
    missing = [r for r in REGIONS if r not in names]
    if missing:
        raise ValueError(f"dataset.json labels {names} lack regions {missing}")
    return [names.index(r) for r in REGIONS]


def build_network(plans: dict, dataset: dict, configuration: str,
                  deep_supervision: bool = False, extra_outputs: int = 0) -> nn.Module:
    """The bare nnU-Net network of `configuration` (outputs in dataset.json label order,
    then `extra_outputs` more channels: the uncertainty head's)."""
    # Imported here: nnU-Net is a heavy import and the analytic model needs none of it.
    # These two modules import without torchvision (checked with nnunetv2 2.8.1).
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    config = PlansManager(plans).get_configuration(configuration)
    n_outputs = len(region_order(dataset)) + int(extra_outputs)
    n_inputs = len(dataset["channel_names"])
    return get_network_from_plans(
        config.network_arch_class_name, config.network_arch_init_kwargs,
        config.network_arch_init_kwargs_req_import, n_inputs, n_outputs,
        allow_init=True, deep_supervision=deep_supervision)


def stride_divisor(plans: dict, configuration: str) -> int:
    """Total downsampling factor of the network (pad inputs to a multiple of it)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    strides = PlansManager(plans).get_configuration(configuration).pool_op_kernel_sizes
    return int(max(np.prod(np.array(strides), axis=0)))


def compact_state(state: dict, half: bool = False) -> dict:
    """Copy of a state dict on the CPU (floats fp16 when `half`), equal tensors stored once.

    dynamic_network_architectures registers each conv twice (`conv` and
    `all_modules.0`); the two names hold one tensor, which torch.save would otherwise
    write twice once the names no longer share storage. Sharing any two equal tensors
    in the file is safe: load_state_dict copies values into each parameter.
    """
    stored: dict[tuple, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    out = {}
    for key, value in state.items():
        value = value.detach().cpu()
        group = stored.setdefault((value.dtype, tuple(value.shape)), [])
        match = next((copy for original, copy in group if torch.equal(original, value)), None)
        if match is None:
            match = (value.half() if half and value.is_floating_point() else value).clone()
            group.append((value, match))
        out[key] = match
    return out


def save_state(state: dict, path: Path, half: bool = False) -> None:
    """Write a state dict as {'network_weights': ...} (fp16 when `half`), atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"network_weights": compact_state(state, half)}, tmp)
    tmp.replace(path)


def save_checkpoint(network: nn.Module, path: Path, half: bool = False) -> None:
    """Write the network's state dict only (fp16 when `half`), see save_state."""
    if isinstance(network, RegionNetwork):
        network = network.network
    save_state(network.state_dict(), path, half)


def _read_json(path: Path, folder: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"Model folder {folder} lacks {path.name}: it is not a model folder "
                         f"written by `uncertaintyseg train`; point to such a folder or use "
                         f"one of {available_models()}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is corrupt ({err}); re-run `uncertaintyseg train` or "
                         f"restore the model folder.") from None


def load_network(subdir: Path, configuration: str, device: str = "cpu",
                 *, plans: dict | None = None, dataset: dict | None = None,
                 checkpoint: str = CHECKPOINT_FILE, extra_outputs: int = 0
                 ) -> tuple[nn.Module, int]:
    """Build the network of one model subfolder and load its checkpoint; -> (net, divisor).

    `plans` / `dataset`: the subfolder's plans.json / dataset.json when the caller has
    read them already (otherwise they are read here); `checkpoint`: the file name in
    `subdir` (the training chain's work folder keeps `best.pth`); `extra_outputs`:
    channels after the regions (1 for the uncertainty head), kept last."""
    folder = subdir.parent
    plans = plans if plans is not None else _read_json(subdir / "plans.json", folder)
    dataset = dataset if dataset is not None else _read_json(subdir / "dataset.json", folder)
    ckpt = subdir / checkpoint
    try:
        network = build_network(plans, dataset, configuration, extra_outputs=extra_outputs)
        order = region_order(dataset)
        order += list(range(len(order), len(order) + int(extra_outputs)))
        divisor = stride_divisor(plans, configuration)
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise InputError(f"Cannot build the network of {subdir} from plans.json/dataset.json "
                         f"({err}); re-run `uncertaintyseg train`.") from None
    if not ckpt.is_file():
        raise InputError(f"Model folder {folder} lacks {ckpt.relative_to(folder)}; re-run "
                         f"`uncertaintyseg train` (it resumes) or restore the folder.")
    try:
        checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
        weights = checkpoint["network_weights"] if "network_weights" in checkpoint else checkpoint
        network.load_state_dict({k: v.float() if v.is_floating_point() else v
                                 for k, v in weights.items()})
    except Exception as err:  # any unreadable/mismatched file: say which and what to do
        raise InputError(f"Checkpoint {ckpt} is corrupt or does not match its plans.json "
                         f"({type(err).__name__}: {str(err)[:200]}); re-run `uncertaintyseg "
                         f"train` or restore the model folder.") from None
    return RegionNetwork(network, order).to(device).eval(), divisor


def available_models() -> list[str]:
    """Names accepted by load_model: 'analytic' and the bundled model folders."""
    bundled = sorted(p.name for p in MODELS_DIR.glob("*") if (p / MODEL_FILE).is_file())
    return ["analytic", *bundled]


def resolve_model_folder(name_or_path: str) -> Path:
    """Bundled name -> Resources/Models/<name>; anything else is a folder path."""
    bundled = MODELS_DIR / str(name_or_path)
    if "/" not in str(name_or_path) and (bundled / MODEL_FILE).is_file():
        return bundled
    folder = Path(name_or_path).expanduser()
    if not folder.is_dir():
        raise InputError(f"Model '{name_or_path}' not found: it is neither a bundled model "
                         f"({', '.join(available_models())}) nor a folder. Give one of those "
                         f"names or the folder written by `uncertaintyseg train`.")
    return folder


def load_model(name_or_path: str, device: str = "cpu") -> Model:
    """Load 'analytic', a bundled model by name, or a model folder made by `train`."""
    if name_or_path == "analytic":
        model = analytic_model()
        model.network_2d.to(device)
        model.network_3d.to(device)
        return model
    folder = resolve_model_folder(name_or_path)
    meta = _read_json(folder / MODEL_FILE, folder)
    try:
        nets = meta["networks"]
        weights = np.asarray(meta["fusion_weights"], dtype=np.float32).reshape(3, 3)
        kernel_mm = tuple(float(k) for k in meta.get("kernel_mm", DEFAULT_KERNEL_MM))
        radius = meta.get("radius")
        cfg_2d, cfg_3d = nets["2d"]["configuration"], nets["3d"]["configuration"]
        fraction = float((meta.get("postprocess") or {}).get("min_component_fraction",
                                                               DEFAULT_COMPONENT_FRACTION))
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"postprocess.min_component_fraction {fraction} is not in [0, 1]")
        triage_threshold = float((meta.get("triage") or {}).get("threshold",
                                                                  DEFAULT_TRIAGE_THRESHOLD))
        if not 0.0 <= triage_threshold <= 1.0:
            raise ValueError(f"triage.threshold {triage_threshold} is not in [0, 1]")
        error_fit = check_fit(meta[ERROR_MAP_KEY]) if meta.get(ERROR_MAP_KEY) else {}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise InputError(f"{folder / MODEL_FILE} is incomplete ({err}); re-run "
                         f"`uncertaintyseg train` or restore the model folder.") from None
    plans = _read_json(folder / "2d" / "plans.json", folder)
    dataset = _read_json(folder / "2d" / "dataset.json", folder)
    net_2d, div_2d = load_network(folder / "2d", cfg_2d, device, plans=plans, dataset=dataset)
    net_3d, div_3d = load_network(folder / "3d", cfg_3d, device)
    return Model(
        name=str(meta.get("name", folder.name)), version=str(meta.get("version", "0")),
        network_2d=net_2d, network_3d=net_3d, fusion_weights=weights,
        radius=None if radius is None else float(radius), divisor_2d=div_2d,
        divisor_3d=div_3d, kernel_mm=kernel_mm, trained=bool(meta.get("trained", True)),
        description=str(meta.get("description", "")), plans=plans, dataset=dataset,
        configuration_2d=cfg_2d, min_component_fraction=fraction, folder=folder,
        triage_threshold=triage_threshold, quality=dict(meta.get("quality") or {}),
        feature_distance=dict(meta.get(FIT_KEY) or {}),
        error_map=error_fit, fitted_at=fitted_at(meta),
        network_entries={k: v for k, v in nets.items() if k in EXTRA_NETWORKS})
