"""The estimators with networks of their own (mc-dropout, uncertainty-head, full-3d):
their statistics against a direct computation, on tiny networks and arrays."""

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from uncertaintyseg import options
from uncertaintyseg.errors import InputError
from uncertaintyseg.networks.devices import resolve_run
from uncertaintyseg.networks.estimators import ESTIMATORS, MC_DROPOUT_SEED, dropout_active, estimate
from uncertaintyseg.networks.full3d import mirror_combinations, predict_full_3d
from uncertaintyseg.files.io import load_case
from uncertaintyseg.networks.models import ExtraNetwork, analytic_model
from uncertaintyseg.files.phantom import write_phantom_case
from uncertaintyseg.run.pipeline import Settings, run_case
from uncertaintyseg.training.trainer_head import head_loss

from test_uncertainty import _reference_stats, _smooth_slice

torch.set_num_threads(1)


class _DropoutNet(torch.nn.Module):
    """conv -> BatchNorm (with running statistics) -> Dropout2d -> conv, 4 -> 3 channels.

    BatchNorm in training mode would use the batch's statistics instead of the running
    ones, so a result equal to the eval-mode computation shows the norms stayed in eval."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.norm = torch.nn.BatchNorm2d(8)
        self.norm.running_mean.uniform_(-1, 1)
        self.norm.running_var.uniform_(0.5, 2)
        self.layers = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), self.norm,
                                          torch.nn.Dropout2d(0.3), torch.nn.Conv2d(8, 3, 1))

    def forward(self, x):
        return 3 * self.layers(x)


def _volume(z=3, shape=(32, 48)):
    image = np.stack([_smooth_slice(shape, seed) for seed in range(z)], axis=1)
    return image, np.ones((z, *shape), bool)


def _model_with(kind, network, divisor=1, patch=(16, 16, 16)):
    model = analytic_model()
    model.loaded_networks[kind] = ExtraNetwork(network.eval(), divisor, patch)
    return model


def test_mc_dropout_is_the_binned_entropy_of_seeded_passes_with_norms_in_eval():
    network, (image, mask) = _DropoutNet(), _volume(z=2, shape=(16, 24))
    model = _model_with("2d_dropout", network)
    settings = Settings(method="mc-dropout", projections=6, batch_size_2d=4,
                        device="cpu", precision="fp32")
    resolved = resolve_run(settings)
    grid = SimpleNamespace(image=image, mask=mask)
    result = estimate(ESTIMATORS["mc-dropout"], model, grid, settings, resolved, radius=20.0)
    assert not network.training and not network.layers[2].training  # restored
    network.eval()
    network.layers[2].train()  # the direct computation: dropout on, BatchNorm in eval
    torch.manual_seed(MC_DROPOUT_SEED)
    with torch.no_grad():
        for z in range(image.shape[1]):
            x = torch.from_numpy(image[:, z])
            maps = [torch.sigmoid(network(x.expand(n, -1, -1, -1))) for n in (4, 2)]
            ref = _reference_stats(torch.cat(maps).numpy())
            for got, want in zip((result.p2d, result.entropy_raw, result.entropy_norm), ref):
                np.testing.assert_allclose(got[:, z], want, atol=1e-5)
    assert (result.projections_per_slice == 6).all()
    assert result.entropy_raw.max() > 0.5  # dropout makes the passes disagree
    again = estimate(ESTIMATORS["mc-dropout"], model, grid, settings, resolved, radius=20.0)
    np.testing.assert_array_equal(again.entropy_norm, result.entropy_norm)  # seeded


def test_dropout_active_refuses_a_network_without_dropout():
    with pytest.raises(InputError, match="no dropout layers"):
        with dropout_active(torch.nn.Conv2d(4, 3, 1)):
            pass


def test_uncertainty_head_is_one_pass_and_its_sigmoid():
    torch.manual_seed(2)
    network = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.Tanh(),
                                  torch.nn.Conv2d(6, 4, 3, padding=1))
    image, mask = _volume(z=4, shape=(20, 28))
    mask[2] = False  # a slice without brain: no pass, zeros
    model = _model_with("2d_head", network)
    settings = Settings(method="uncertainty-head", batch_size_2d=2, device="cpu",
                        precision="fp32")
    result = estimate(ESTIMATORS["uncertainty-head"], model,
                      SimpleNamespace(image=image, mask=mask), settings,
                      resolve_run(settings), radius=10.0)
    with torch.no_grad():
        direct = torch.sigmoid(network(torch.from_numpy(image.transpose(1, 0, 2, 3)))).numpy()
    for z in (0, 1, 3):
        np.testing.assert_allclose(result.p2d[:, z], direct[z, :3], atol=1e-6)
        for region in range(3):  # one error map for every region
            np.testing.assert_allclose(result.entropy_norm[region, z], direct[z, 3], atol=1e-6)
    assert not result.p2d[:, 2].any() and not result.entropy_norm[:, 2].any()
    assert result.projections_per_slice.tolist() == [1, 1, 0, 1]
    np.testing.assert_array_equal(result.entropy_raw, result.entropy_norm)


def test_head_loss_is_the_papers_composite():
    rng = np.random.default_rng(0)
    u, e = rng.uniform(size=(3, 9, 11)), rng.uniform(size=(3, 9, 11))
    mask = rng.uniform(size=(3, 9, 11)) < 0.4
    mask[2] = False  # no cancer voxel in sample 2: it adds to the MSE only
    got = float(head_loss(*(torch.tensor(a, dtype=torch.float64) for a in (u, e, mask))))
    rmsd = [np.sqrt(np.mean((u[b] - e[b])[mask[b]] ** 2)) for b in (0, 1)]
    corr = [np.corrcoef(u[b][mask[b]], e[b][mask[b]])[0, 1] for b in (0, 1)]
    want = 0.4 * np.mean((u - e) ** 2) + 0.5 * np.mean(rmsd) + 0.4 * (1 - np.mean(corr))
    assert got == pytest.approx(want, abs=1e-4)


def _mirrored_direct(network, tile):
    """(mean logits, variance of the sigmoids) over the 8 mirrorings of (1, C, D, H, W)."""
    logits = []
    with torch.no_grad():
        for axes in itertools.chain.from_iterable(
                itertools.combinations((2, 3, 4), k) for k in range(4)):
            flipped = torch.flip(tile, axes) if axes else tile
            out = network(flipped)
            logits.append(torch.flip(out, axes) if axes else out)
    logits = torch.cat(logits)
    return logits.mean(0), torch.sigmoid(logits).var(0, unbiased=False)


def _asymmetric_net():
    torch.manual_seed(3)
    return torch.nn.Conv3d(4, 3, 3, padding=1).eval()


def test_full_3d_one_tile_is_nnunets_mirror_average_and_the_mirror_variance():
    assert sorted(mirror_combinations()) == sorted(
        c for k in range(4) for c in itertools.combinations((0, 1, 2), k))
    network = _asymmetric_net()
    image = torch.randn(4, 16, 16, 16)
    result = predict_full_3d(network, image.numpy(), (16, 16, 16), batch_size=3)
    mean_logits, variance = _mirrored_direct(network, image[None])
    np.testing.assert_allclose(result.p2d, torch.sigmoid(mean_logits).numpy(), atol=1e-5)
    np.testing.assert_allclose(result.entropy_raw, variance.numpy(), atol=1e-6)
    np.testing.assert_allclose(result.entropy_norm, np.clip(4 * variance.numpy(), 0, 1),
                               atol=1e-5)
    assert result.entropy_norm.max() > 0.01 and (result.projections_per_slice == 8).all()


def test_full_3d_stitches_overlapping_tiles_with_nnunets_gaussian():
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    network, image = _asymmetric_net(), torch.randn(4, 16, 16, 24)
    result = predict_full_3d(network, image.numpy(), (16, 16, 16), batch_size=8)
    g = compute_gaussian((16, 16, 16), 1 / 8, 10, dtype=torch.float32,
                         device=torch.device("cpu"))
    logits, variance, weight = (torch.zeros(3, 16, 16, 24), torch.zeros(3, 16, 16, 24),
                                torch.zeros(16, 16, 24))
    for start in (0, 8):  # compute_steps_for_sliding_window: 24 wide, 16 patch, step 0.5
        tile = image[None, :, :, :, start:start + 16]
        mean_logits, var = _mirrored_direct(network, tile)
        logits[..., start:start + 16] += g * mean_logits
        variance[..., start:start + 16] += g * var
        weight[..., start:start + 16] += g
    np.testing.assert_allclose(result.p2d, torch.sigmoid(logits / weight).numpy(), atol=1e-5)
    np.testing.assert_allclose(result.entropy_raw, (variance / weight).numpy(), atol=1e-6)


def test_full_3d_tile_step_one_predicts_tiles_that_only_touch():
    network, image = _asymmetric_net(), torch.randn(4, 16, 16, 32)
    result = predict_full_3d(network, image.numpy(), (16, 16, 16), tile_step=1.0)
    # compute_steps_for_sliding_window: 32 wide, 16 patch, step 1 -> tiles at 0 and 16;
    # each voxel lies in one tile, whose Gaussian weight cancels.
    for start in (0, 16):
        mean_logits, variance = _mirrored_direct(network, image[None, :, :, :, start:start + 16])
        np.testing.assert_allclose(result.p2d[..., start:start + 16],
                                   torch.sigmoid(mean_logits).numpy(), atol=1e-5)
        np.testing.assert_allclose(result.entropy_raw[..., start:start + 16],
                                   variance.numpy(), atol=1e-6)
    overlapping = predict_full_3d(network, image.numpy(), (16, 16, 16))  # step 0.5: 3 tiles
    assert np.abs(overlapping.p2d - result.p2d).max() > 1e-4


def test_full_3d_pads_a_volume_smaller_than_the_patch_and_crops_back():
    torch.manual_seed(4)
    pointwise = torch.nn.Conv3d(4, 3, 1).eval()  # flips cannot change it: no variance
    image = torch.randn(4, 10, 12, 16)
    result = predict_full_3d(pointwise, image.numpy(), (16, 16, 16))
    with torch.no_grad():
        direct = torch.sigmoid(pointwise(image[None]))[0].numpy()
    np.testing.assert_allclose(result.p2d, direct, atol=1e-5)
    assert result.entropy_raw.shape == (3, 10, 12, 16) and result.entropy_raw.max() < 1e-10


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return load_case(case_dir=write_phantom_case(tmp_path_factory.mktemp("case"), seed=5,
                                                 shape=(20, 40, 36)))


@pytest.mark.parametrize("method", list(options.TRAINED_NETWORKS))
def test_a_model_without_the_network_gets_an_error_naming_the_train_option(case, method):
    with pytest.raises(InputError, match=f"model 'analytic'.*--estimators {method}"):
        run_case(case, analytic_model(), Settings(method=method, projections=2))


def test_every_trained_estimator_writes_the_contracts_maps(case):
    torch.manual_seed(5)
    nets = {"2d_dropout": _DropoutNet(), "3d_full": _asymmetric_net(),
            "2d_head": torch.nn.Conv2d(4, 4, 3, padding=1)}
    model = analytic_model()
    for kind, net in nets.items():
        model.loaded_networks[kind] = ExtraNetwork(net.eval(), 1, (16, 16, 16))
    for method in options.TRAINED_NETWORKS:
        result = run_case(case, model, Settings(method=method, projections=3,
                                                kernel_mm=(8.0, 8.0, 12.0), max_boxes=2))
        assert result.report["method"] == method
        assert 0 <= result.uncertainty.min() and result.uncertainty.max() <= 1
        assert result.uncertainty.max() > 0 and result.boxes  # boxes on its own uncertainty
        if method == "full-3d":  # no 2D part; the 3D network's probabilities are the result
            assert (result.probabilities_2d == -1).all()
            np.testing.assert_array_equal(result.probabilities_3d, result.probabilities)
            assert result.report["projections_per_slice"]["max"] == 8
        else:
            assert (result.probabilities_3d == -1).all()
            np.testing.assert_array_equal(result.probabilities_2d, result.probabilities)
