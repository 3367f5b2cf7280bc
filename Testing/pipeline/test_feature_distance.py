"""The case's distance from the training data in the 2D network's features: the hook
reads the bottleneck, the Mahalanobis distance and its stored fit, a broken real case
lies further than its clean self, and a model without a fit says so."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis

from uncertaintyseg.networks import feature_distance as fd
from uncertaintyseg.inputs.broken import make_variant
from uncertaintyseg.errors import InputError
from uncertaintyseg.files.io import load_case
from uncertaintyseg.networks.models import analytic_model, load_model

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "brats2018"
CLEAN = "Brats18_TCIA02_135_1"  # a brats-mini validation case (not trained on)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_model("brats-mini")


def test_the_hook_reads_the_deepest_encoder_stage_and_is_removed(model):
    image = np.random.default_rng(0).normal(size=(4, 3, 64, 96)).astype(np.float32)
    features = fd.slice_features(model.network_2d, image, [0, 2], model.divisor_2d)
    encoder = model.network_2d.network.encoder
    with torch.inference_mode():
        deepest = encoder(torch.from_numpy(image[:, [0, 2]].transpose(1, 0, 2, 3).copy()))[-1]
    assert features.shape == (2, 128)
    np.testing.assert_allclose(features, deepest.mean(dim=(-2, -1)).numpy(), rtol=1e-5)
    assert not fd.bottleneck_stage(model.network_2d)._forward_hooks
    with pytest.raises(ValueError, match="PlainConvUNet"):
        fd.bottleneck_stage(torch.nn.Conv2d(4, 3, 1))


def test_the_sample_spans_the_middle_of_the_brain():
    mask = np.zeros((40, 8, 8), dtype=bool)
    mask[10:30] = True  # 20 brain slices, equal areas
    slices = fd.sample_slices(mask)
    assert len(slices) == fd.SLICES and list(slices) == sorted(slices)
    assert slices[0] == 13 and slices[-1] == 25  # the 20 % and 80 % points of 10..29
    with pytest.raises(ValueError, match="no brain"):
        fd.sample_slices(np.zeros((5, 4, 4), dtype=bool))


def test_the_distance_is_mahalanobis_and_the_fit_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    by_case = {f"c{i}": rng.normal(size=(fd.SLICES, 6)) * [1, 2, 3, 1, 1, 5]
               for i in range(10)}
    fit, held_out = fd.fit_cases(by_case)
    assert fit.reference == pytest.approx(np.median(list(held_out.values())))
    point = rng.normal(size=6)
    assert fit.distances(point[None])[0] == pytest.approx(
        mahalanobis(point, fit.location, fit.precision))
    assert 0.0 < fit.shrinkage < 1.0
    size = fd.save_fit(fit, tmp_path / fd.FIT_FILE)
    assert size == (tmp_path / fd.FIT_FILE).stat().st_size
    loaded = fd.load_fit(tmp_path, {"file": fd.FIT_FILE})
    far = by_case["c0"] + 10.0
    assert loaded.score(far) == pytest.approx(fit.score(far), rel=1e-4)
    assert loaded.score(far) > 3 * loaded.score(by_case["c0"])


def test_a_model_without_a_fit_records_not_available_and_a_missing_file_names_the_fix(
        tmp_path):
    assert fd.load_fit(tmp_path, {}) is None  # an older model: no entry
    assert fd.for_run(analytic_model(), grid=None) is None
    with pytest.raises(InputError, match=r"feature_distance\.npz.*fit_feature_distance\.py"):
        fd.load_fit(tmp_path, {"file": fd.FIT_FILE})


def test_the_bundled_model_carries_its_fit(model):
    entry = model.feature_distance
    assert entry["file"] == fd.FIT_FILE and entry["cases"] == 23
    fit = fd.load_fit(model.folder, entry)
    assert fit.location.shape == (128,) and fit.precision.shape == (128, 128)
    assert entry["size_bytes"] == (model.folder / fd.FIT_FILE).stat().st_size < 100_000


def test_a_swapped_real_case_lies_further_than_its_clean_self(model):
    if not (DATA / CLEAN).is_dir():
        pytest.skip(f"shared BraTS 2018 data not found at {DATA.resolve()}")
    case = load_case(case_dir=DATA / CLEAN)
    fit = fd.load_fit(model.folder, model.feature_distance)
    clean = fit.score(fd.case_features(model, case))
    swapped = replace(case, image=make_variant(case.image, "swap_flair_t1", seed=1,
                                               spacing=case.spacing))
    broken = fit.score(fd.case_features(model, swapped))
    assert clean < 1.2 and broken > 1.3  # measured 0.86 and 1.43 (fit_case_quality runs)
