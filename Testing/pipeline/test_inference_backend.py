"""`--backend`: the OpenVINO CPU backend against torch, its export cache, the choice.

Tolerances (fp32 both; OpenVINO's kernels sum in another order than oneDNN's, and the
difference grows through the 2D network's 23 convolutions): logits within 1e-2,
probabilities within 2e-3 at most and 1e-5 on average, the 0.5 masks identical except
where a probability is within 2e-3 of 0.5. Measured on 8 real projected views of a
brats-mini validation case: logits 3.6e-3, probabilities 8.2e-4 at most, 6.9e-7 on average
(the review's 96 batches of one case: 3.1e-3 at most, 1.4e-6 on average, Dice and AUROC
identical to 4 decimals).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from uncertaintyseg.networks import inference_backend as ib
from uncertaintyseg.runtime import signal_stack
from uncertaintyseg.errors import InputError
from uncertaintyseg.networks.models import CHECKPOINT_FILE, MODELS_DIR, load_model, save_state

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "brats2018"
LOGIT_TOLERANCE, PROBABILITY_TOLERANCE, MEAN_PROBABILITY_TOLERANCE = 1e-2, 2e-3, 1e-5
CPU = torch.device("cpu")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "ov-cache"
    monkeypatch.setenv(ib.CACHE_ENV, str(folder))
    return folder


class Recorder(torch.nn.Module):
    """The torch network, keeping every batch it is given (the real projected views)."""

    def __init__(self, network):
        super().__init__()
        self.network, self.batches = network, []

    def forward(self, x):
        self.batches.append(x.clone())
        return self.network(x)


def _assert_agree(reference: torch.Tensor, other: torch.Tensor) -> None:
    assert other.shape == reference.shape and other.dtype == torch.float32
    assert float((other - reference).abs().max()) < LOGIT_TOLERANCE
    p_ref, p_other = torch.sigmoid(reference), torch.sigmoid(other)
    assert float((p_other - p_ref).abs().max()) < PROBABILITY_TOLERANCE
    assert float((p_other - p_ref).abs().mean()) < MEAN_PROBABILITY_TOLERANCE
    flipped = (p_ref > 0.5) != (p_other > 0.5)
    assert bool(((p_ref - 0.5).abs()[flipped] < PROBABILITY_TOLERANCE).all())


# slow: brats-mini's nnU-Net preprocessing of a whole BraTS case and the export of its
# two networks (about 10 s of CPU); the fast lane checks the agreement on the phantom
# model's exports (test_export_is_cached_reused_and_rebuilt_when_the_weights_change).
@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no BraTS data at {SHARED}")
def test_openvino_matches_torch_on_real_projected_views_and_cubes(cache):
    pytest.importorskip("openvino")
    from uncertaintyseg.files.io import load_case
    from uncertaintyseg.stages.uncertainty import predict_volume
    from uncertaintyseg.networks.working_grid import from_nnunet

    model = load_model("brats-mini")
    case_id = json.loads((model.folder / "model.json").read_text())["split"]["val"][0]
    case = load_case(case_dir=SHARED / case_id)
    grid = from_nnunet(model, case.image, case.spacing)
    tumour_z = int(np.argmax(grid.mask.sum(axis=(1, 2))))  # a slice full of brain
    chosen = slice(tumour_z - 1, tumour_z + 1)
    recorder = Recorder(model.network_2d)
    predict_volume(recorder, grid.image[:, chosen], grid.mask[chosen], 4,
                   divisor=model.divisor_2d, batch_size=8)
    assert len(recorder.batches) == 1 and recorder.batches[0].shape[0] == 8
    ib.use_backend(model, "openvino", threads=1)
    views = recorder.batches[0]
    with torch.inference_mode():
        _assert_agree(ib.torch_module(model.network_2d)(views), model.network_2d(views))
    # A 3D cube of the same case, as refine cuts them (32 voxels: brats-mini's divisor).
    z, y, x = (int(c) for c in np.argwhere(grid.mask).mean(axis=0))
    cube = torch.from_numpy(np.ascontiguousarray(
        grid.image[None, :, z - 16:z + 16, y - 16:y + 16, x - 16:x + 16]))
    with torch.inference_mode():
        _assert_agree(ib.torch_module(model.network_3d)(cube), model.network_3d(cube))


def _phantom_copy(tmp_path) -> Path:
    folder = tmp_path / "phantom"
    shutil.copytree(MODELS_DIR / "phantom", folder)
    return folder


def test_export_is_cached_reused_and_rebuilt_when_the_weights_change(tmp_path, cache,
                                                                     monkeypatch):
    pytest.importorskip("openvino")
    folder = _phantom_copy(tmp_path)
    batch = torch.randn(2, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    first = ib.use_backend(load_model(str(folder)), "openvino", threads=1).network_2d
    out_first = first(batch)
    exports = sorted(cache.iterdir())
    assert len(exports) == 1 and (exports[0] / "network.xml").is_file()
    stamp = (exports[0] / "network.bin").stat().st_mtime_ns
    assert not list(cache.glob("*.*"))  # no temporary folder left behind

    def no_export(*args):
        raise AssertionError("exported again although the cache holds this network")

    with monkeypatch.context() as patch:  # a new process would load the model anew
        patch.setattr(ib, "export_ir", no_export)
        again = ib.use_backend(load_model(str(folder)), "openvino", threads=1).network_2d
        assert torch.equal(again(batch), out_first)
    assert sorted(cache.iterdir()) == exports
    assert (exports[0] / "network.bin").stat().st_mtime_ns == stamp

    checkpoint = folder / "2d" / CHECKPOINT_FILE
    weights = torch.load(checkpoint, weights_only=True)["network_weights"]
    chosen = next(v for k, v in weights.items() if k.endswith("weight") and v.ndim == 4)
    # dynamic_network_architectures names each conv twice (`conv`, `all_modules.0`): the
    # perturbation goes to both names, or the unchanged one would be loaded last.
    weights = {k: v + 0.05 if v is chosen else v for k, v in weights.items()}
    save_state(weights, checkpoint)
    changed = ib.use_backend(load_model(str(folder)), "openvino", threads=1).network_2d
    out_changed = changed(batch)
    assert len(list(cache.iterdir())) == 2  # a new export under the new weights' hash
    with torch.inference_mode():
        _assert_agree(ib.torch_module(changed)(batch), out_changed)
    assert float((out_changed - out_first).abs().max()) > 10 * LOGIT_TOLERANCE


def test_compiled_in_fp32_with_the_runs_threads(cache):
    pytest.importorskip("openvino")
    network = ib.use_backend(load_model("phantom"), "openvino", threads=1).network_3d
    cube = torch.zeros(1, 4, 16, 16, 16)
    network(cube)
    compiled = network._compiled_for(cube)
    # OpenVINO's default on AMX CPUs is bf16: fp32 must be asked for, not assumed.
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 1


_SIGTERM_AFTER_OPENVINO = """
import gc, os, signal, sys, time
import torch
from uncertaintyseg import inference_backend as ib, signals
from uncertaintyseg.networks.models import load_model
network = ib.use_backend(load_model("phantom"), "openvino", threads=1).network_3d
network(torch.zeros(1, 4, 16, 16, 16))
del network
gc.collect()
signals.install()
try:
    with signals.deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
except signals.Terminated:
    print("terminated cleanly")
"""


def test_compiling_keeps_the_threads_signal_stack(cache):
    # OpenVINO's CPU plugin set an alternate signal stack that died with it; a SIGTERM
    # after the network was released then killed the process with SIGSEGV, not 130.
    pytest.importorskip("openvino")
    before = signal_stack.current()
    network = ib.use_backend(load_model("phantom"), "openvino", threads=1).network_3d
    network(torch.zeros(1, 4, 16, 16, 16))
    assert signal_stack.current() == before
    done = subprocess.run([sys.executable, "-c", _SIGTERM_AFTER_OPENVINO],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, ib.CACHE_ENV: str(cache)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminated cleanly" in done.stdout


def test_backend_recorded_in_the_report(tmp_path, cache):
    pytest.importorskip("openvino")
    from uncertaintyseg.files.io import load_case
    from uncertaintyseg.files.phantom import write_phantom_case
    from uncertaintyseg.run.pipeline import Settings, run_case

    # A small phantom: the report is the subject (the default one ran 2.5x longer).
    case = load_case(case_dir=write_phantom_case(tmp_path, seed=7, shape=(20, 48, 40)))
    model = load_model("phantom")
    reports = {name: run_case(case, model, Settings(projections=2, max_boxes=1, device="cpu",
                                                    backend=name)).report
               for name in ("openvino", "torch")}
    assert reports["openvino"]["device"]["backend"] == "openvino"
    assert reports["openvino"]["settings"]["backend"] == "openvino"
    assert reports["torch"]["device"]["backend"] == "torch"
    assert "--backend torch" in reports["torch"]["device"]["backend_reason"]
    assert model.network_2d is ib.torch_module(model.network_2d)  # torch put back
    assert len(list(cache.iterdir())) == 2  # the 2D and the 3D network


def test_auto_backend_and_the_missing_package(monkeypatch):
    model = load_model("phantom")
    analytic = load_model("analytic")
    assert ib.choose_backend("auto", torch.device("cuda"), model)[0] == "torch"
    with pytest.raises(InputError, match="--device cpu"):
        ib.choose_backend("openvino", torch.device("cuda"), model)
    backend, why = ib.choose_backend("auto", CPU, analytic)
    assert backend == "torch" and "no weight files" in why
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` fails
    backend, why = ib.choose_backend("auto", CPU, model)
    assert backend == "torch" and "not installed" in why and "pip install" in why
    with pytest.raises(InputError, match=r"pip install .*\[cpu\].*--backend torch"):
        ib.choose_backend("openvino", CPU, model)


def test_auto_is_openvino_on_the_cpu_when_installed():
    pytest.importorskip("openvino")
    assert ib.choose_backend("auto", CPU, load_model("phantom"))[0] == "openvino"


def test_mc_dropout_network_stays_in_torch():
    extra = ib.ExtraNetworks(Path("unused"), threads=1, precision=None)
    found = object()
    assert extra("2d_dropout", found) is found
