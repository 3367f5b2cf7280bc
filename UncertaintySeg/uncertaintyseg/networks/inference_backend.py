"""What runs the networks on the CPU: torch, or OpenVINO (`--backend`).

On an AVX2 CPU without native bf16, torch's eager fp32 runs the 2D network at under half
of the core's FMA peak; OpenVINO's CPU runtime runs the same network 1.8-2x faster with
the same Dice and AUROC (benchmarks/README.md, "CPU backend"). A network is exported once
per model: torch -> ONNX (`torch.onnx.export`, batch and spatial axes dynamic: the 2D
views are padded per case, the 3D cubes differ per region) -> OpenVINO IR, saved in the
user's cache folder under the sha256 of its weights, plans and the export settings
(`cache_dir`), so that new weights get a new export. Each input shape is compiled once
(static shapes run faster than OpenVINO's dynamic ones) with the run's thread count and
an explicit precision: OpenVINO's default on CPUs with AMX is bf16, which `--precision
fp32` must not silently get.

`OpenVINONetwork` is a drop-in for the torch module: `network(tensor) -> tensor`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from ..runtime import signal_stack
from ..errors import InputError

AUTO = "auto"
# Part of the cache key: bump it when the export below changes.
EXPORT_VERSION = 1
ONNX_OPSET = 17
INSTALL_HINT = "pip install -c constraints.txt -e '.[cpu]' (or: pip install openvino onnx)"
# OpenVINO's INFERENCE_PRECISION_HINT per autocast dtype (None: fp32).
PRECISION_HINTS = {None: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}
COMPILED_SHAPES_KEPT = 8  # compiled per input shape; a case uses 2-4 of them


def import_openvino():
    """The openvino module, or an InputError that names the pip command. onnx is checked
    too: torch's ONNX exporter needs it to write the file OpenVINO converts."""
    try:
        import onnx  # noqa: F401
        import openvino
    except ImportError as error:
        raise InputError(f"--backend openvino: the {error.name or 'openvino'} package is "
                         f"not installed in this Python; install it with "
                         f"`{INSTALL_HINT}`, or use --backend torch") from None
    return openvino


def openvino_installed() -> bool:
    try:
        import_openvino()
    except InputError:
        return False
    return True


def choose_backend(name: str, device: torch.device, model) -> tuple[str, str]:
    """(backend, why) for `--backend name` on `device` with `model`.

    `auto` is openvino on the CPU when the package is installed and the model has weight
    files to export (the analytic demo model has none), else torch."""
    if device.type != "cpu":
        if name == "openvino":
            raise InputError(f"--backend openvino runs on the CPU only, and the device is "
                             f"{device.type}; use --device cpu, or --backend torch or auto")
        return "torch", f"the networks run on {device.type}"
    if name == "torch":
        return "torch", "asked for (--backend torch)"
    if getattr(model, "folder", None) is None:
        return "torch", f"model '{model.name}' has no weight files to export"
    if name == "openvino":
        import_openvino()
        return "openvino", "asked for (--backend openvino)"
    if not openvino_installed():
        return "torch", f"auto: openvino is not installed ({INSTALL_HINT})"
    return "openvino", "auto: openvino is installed and the networks run on the CPU"


CACHE_ENV = "UNCERTAINTYSEG_OPENVINO_CACHE"


def user_cache() -> Path:
    """$XDG_CACHE_HOME/uncertaintyseg (~/.cache when XDG_CACHE_HOME is unset): what the
    runs keep per user and computer (the OpenVINO exports, expected-time's timings)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "uncertaintyseg"


def cache_root() -> Path:
    """$UNCERTAINTYSEG_OPENVINO_CACHE when set (the tests' own folder), else
    user_cache()/openvino."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return user_cache() / "openvino"


def cache_key(files, spec: str) -> str:
    """sha256 of the files' bytes (weights, plans, dataset) and the export settings."""
    import openvino

    digest = hashlib.sha256()
    for path in files:
        digest.update(Path(path).name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    digest.update(f"{spec}|export {EXPORT_VERSION}|opset {ONNX_OPSET}|torch "
                  f"{torch.__version__}|openvino {openvino.__version__}".encode())
    return digest.hexdigest()


def export_ir(module: torch.nn.Module, example: torch.Tensor, folder: Path) -> Path:
    """Export `module` to folder/network.xml (+ .bin), written in a temporary folder
    beside it and renamed into place: a reader never sees half an export, and two
    processes exporting at once both end with one complete folder."""
    openvino = import_openvino()
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        axes = {0: "batch", **{i: f"axis{i}" for i in range(2, example.ndim)}}
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # nnU-Net's InstanceNorm keeps no running statistics: it normalises with the
            # input's own in eval mode too, which is what the exporter warns about.
            warnings.filterwarnings("ignore", message=".*instance_norm.*train=True")
            # dynamo=False: the TorchScript exporter takes dynamic_axes and needs no
            # onnxscript; the graph is plain Conv/InstanceNorm/LeakyRelu/Concat/Gather.
            torch.onnx.export(module.eval(), (example,), str(temp / "network.onnx"),
                              input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": axes, "logits": axes},
                              opset_version=ONNX_OPSET, dynamo=False)
        converted = openvino.convert_model(str(temp / "network.onnx"))
        # compress_to_fp16=False: save_model halves the weights by default, which
        # would not be the network that was trained.
        openvino.save_model(converted, str(temp / "network.xml"), compress_to_fp16=False)
        (temp / "network.onnx").unlink()
        try:
            temp.rename(folder)
        except OSError:  # another process finished the same export first: keep its
            if not (folder / "network.xml").is_file():
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return folder / "network.xml"


class OpenVINONetwork:
    """A torch network run through OpenVINO on the CPU: `network(tensor) -> tensor`.

    `files`: what the network is made from (checkpoint, plans.json, dataset.json), hashed
    into the cache key with `spec`; the export happens at the first call (a run may not
    use every network), from that call's input.
    """

    def __init__(self, module: torch.nn.Module, files, spec: str, threads: int,
                 precision: torch.dtype | None = None):
        self.module = module
        self.files = [Path(f) for f in files]
        self.spec = spec
        self.threads = int(threads)
        self.precision = PRECISION_HINTS[precision]
        self.folder = cache_root() / cache_key(self.files, spec)
        self._model = None
        self._compiled: dict[tuple, object] = {}

    def configure(self, threads: int, precision: torch.dtype | None) -> "OpenVINONetwork":
        """The run's thread count and precision (compiled shapes are dropped if they change)."""
        hint = PRECISION_HINTS[precision]
        if (int(threads), hint) != (self.threads, self.precision):
            self.threads, self.precision, self._compiled = int(threads), hint, {}
        return self

    def _ir(self, example: torch.Tensor):
        if self._model is None:
            xml = self.folder / "network.xml"
            if not xml.is_file():
                xml = export_ir(self.module, example[:1].detach().cpu().float(), self.folder)
            self._model = import_openvino().Core().read_model(str(xml))
        return self._model

    def _compiled_for(self, example: torch.Tensor):
        shape = tuple(example.shape)
        if shape not in self._compiled:
            model = self._ir(example).clone()
            model.reshape({0: list(shape)})
            if len(self._compiled) >= COMPILED_SHAPES_KEPT:
                self._compiled.pop(next(iter(self._compiled)))
            # The CPU plugin leaves a signal stack that dies with it (signal_stack.py).
            with signal_stack.kept():
                self._compiled[shape] = import_openvino().Core().compile_model(
                    model, "CPU", {"INFERENCE_NUM_THREADS": self.threads, "NUM_STREAMS": 1,
                                   "PERFORMANCE_HINT": "LATENCY",
                                   "INFERENCE_PRECISION_HINT": self.precision})
        return self._compiled[shape]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.device.type != "cpu":
            raise ValueError(f"OpenVINONetwork runs on the CPU; the batch is on {batch.device}")
        array = np.ascontiguousarray(batch.detach().float().numpy())
        compiled = self._compiled_for(batch)
        return torch.from_numpy(np.asarray(compiled(array)[0], dtype=np.float32))

    # The torch.nn.Module calls the stages make on a network.
    def eval(self) -> "OpenVINONetwork":
        return self

    def to(self, device) -> "OpenVINONetwork":
        if torch.device(device).type != "cpu":
            raise ValueError(f"OpenVINONetwork runs on the CPU, not {device}")
        return self


# Estimator networks that stay in torch: MC dropout runs its dropout modules in training
# mode, which an exported (inference) graph does not have.
TORCH_ONLY_NETWORKS = {"2d_dropout"}


def network_files(folder: Path, kind: str) -> list[Path]:
    """What the network of folder/kind is built from: weights, plans, dataset, and
    model.json (which names its configuration)."""
    from .models import CHECKPOINT_FILE, MODEL_FILE

    return [folder / kind / CHECKPOINT_FILE, folder / kind / "plans.json",
            folder / kind / "dataset.json", folder / MODEL_FILE]


def torch_module(network):
    """The torch module behind a network, wrapped or not."""
    return network.module if isinstance(network, OpenVINONetwork) else network


class ExtraNetworks:
    """Wraps the estimators' networks as `Model.extra_network` loads them, once each."""

    def __init__(self, folder: Path, threads: int, precision):
        self.folder, self.threads, self.precision = folder, threads, precision
        self.wrapped: dict[str, OpenVINONetwork] = {}

    def __call__(self, kind: str, found):
        from dataclasses import replace

        if kind in TORCH_ONLY_NETWORKS:
            return found
        if kind not in self.wrapped:
            self.wrapped[kind] = OpenVINONetwork(found.network, network_files(self.folder, kind),
                                                 kind, self.threads, self.precision)
        network = self.wrapped[kind].configure(self.threads, self.precision)
        return replace(found, network=network)


def use_backend(model, backend: str, threads: int, precision=None):
    """Put `backend`'s networks on `model`, in place: a model reused across runs (a
    cohort worker's) keeps its compiled networks, and `torch` puts the modules back."""
    if backend == "torch":
        model.network_2d = torch_module(model.network_2d)
        model.network_3d = torch_module(model.network_3d)
        model.wrap_network = None
        return model
    for attribute, kind in (("network_2d", "2d"), ("network_3d", "3d")):
        network = getattr(model, attribute)
        if not isinstance(network, OpenVINONetwork):
            network = OpenVINONetwork(network, network_files(model.folder, kind), kind,
                                      threads, precision)
        setattr(model, attribute, network.configure(threads, precision))
    if not isinstance(model.wrap_network, ExtraNetworks):
        model.wrap_network = ExtraNetworks(model.folder, threads, precision)
    model.wrap_network.threads, model.wrap_network.precision = threads, precision
    return model
