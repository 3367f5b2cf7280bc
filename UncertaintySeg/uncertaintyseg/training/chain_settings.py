"""`train`'s settings (ChainSettings): everything the chain needs, stored in the model
folder's model.json and read back from it (`from_dict`), with the per-network training
settings (NETWORK_SETTINGS)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..errors import InputError
from ..options import TRAINED_NETWORKS
from .trainer2d import Settings2D
from .trainer_full3d import SettingsFull3D
from .trainer_head import SettingsHead
from .trainer3d import Settings3D


@dataclass
class ChainSettings:
    """Everything `train` needs; stored in the model folder's model.json."""

    name: str = "model"
    version: str = "1"
    dataset_id: int = 500
    dataset_name: str = ""  # nnU-Net's DatasetXXX_<name>; empty: from `name`
    n_val: int = 3
    val_cases: list[str] = field(default_factory=list)
    seed: int = 0
    kernel_mm: tuple[float, float, float] = (32.0, 32.0, 64.0)
    features_2d: int = 16
    max_features_2d: int = 128
    features_3d: int = 16
    max_features_3d: int = 128
    net2d: Settings2D = field(default_factory=Settings2D)
    net3d: Settings3D = field(default_factory=Settings3D)
    # The estimators whose networks `train` makes (estimators.TRAINED_NETWORKS keys).
    estimators: list[str] = field(default_factory=lambda: list(TRAINED_NETWORKS))
    net_dropout: Settings2D = field(default_factory=lambda: Settings2D(iterations=400))
    net_head: SettingsHead = field(default_factory=lambda: SettingsHead(iterations=400))
    net_full3d: SettingsFull3D = field(default_factory=SettingsFull3D)
    dropout_probability: float = 0.1
    patch_full_3d: int = 96  # voxels per axis of the full-3d network's patch
    pso_particles: int = 20
    pso_iterations: int = 50
    threads: int = 1
    # Where every step computes (train --device, resolved once: devices.
    # resolve_training_device) and the processes that train each network (train --gpus:
    # one per GPU, DDP).
    device: str = "cpu"
    gpus: int = 1
    fold: int | str | None = None  # train --fold: 0..4, "all", None (one split; folds.py)
    check_integrity: bool = True  # nnU-Net's verify_dataset_integrity before planning
    # train --init-from: the model folder whose 2D, 3D and whole-crop 3D networks this run
    # goes on from (init_from.py); empty: from nnU-Net's initialisation.
    init_from: str = ""

    def __post_init__(self):
        for key in NETWORK_SETTINGS:
            batch = getattr(self, key).batch_size
            if batch % self.gpus:
                raise InputError(f"{key} batch {batch} does not split across --gpus "
                                 f"{self.gpus}; choose a multiple of {self.gpus}")

    def nnunet_name(self) -> str:
        return self.dataset_name or "".join(c for c in self.name if c.isalnum())

    def plan_settings(self) -> dict:
        return {"features_2d": self.features_2d, "max_features_2d": self.max_features_2d,
                "batch_size_2d": self.net2d.batch_size, "features_3d": self.features_3d,
                "max_features_3d": self.max_features_3d,
                "batch_size_3d": self.net3d.batch_size, "kernel_mm": list(self.kernel_mm),
                "dropout_probability": self.dropout_probability,
                "patch_full_3d": self.patch_full_3d,
                "batch_size_full_3d": self.net_full3d.batch_size}

    @classmethod
    def from_dict(cls, data: dict) -> "ChainSettings":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key, kind in NETWORK_SETTINGS.items():
            if key in data:
                values[key] = kind(**data[key])
        unknown = set(values.get("estimators", ())) - set(TRAINED_NETWORKS)
        if unknown:
            raise ValueError(f"estimators {sorted(unknown)}: `train` trains networks for "
                             f"{', '.join(TRAINED_NETWORKS)} only")
        values["kernel_mm"] = tuple(values.get("kernel_mm", cls.kernel_mm))
        return cls(**values)


# The ChainSettings fields holding one network's training settings, and their types.
NETWORK_SETTINGS = {"net2d": Settings2D, "net3d": Settings3D, "net_dropout": Settings2D,
                    "net_head": SettingsHead, "net_full3d": SettingsFull3D}
