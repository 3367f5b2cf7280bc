"""--uncertainty-map error-probability (uncertaintyseg.stages.error_map, tools/fit_error_map.py)."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from uncertaintyseg import REGIONS
from uncertaintyseg.stages import error_map as em
from uncertaintyseg.errors import InputError
from uncertaintyseg.evaluation.model_card import store_block
from uncertaintyseg.evaluation.uncertainty_quality import auroc
from uncertaintyseg.files.label_maps import labels_to_regions
from uncertaintyseg.networks.models import MODELS_DIR, load_model

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data" / "brats2018"
CASE = "Brats18_CBICA_AOP_1"
FIT = {r: {"lambda": 0.3, "a": 9.0, "b": -6.0} for r in REGIONS}


def _tool():
    spec = importlib.util.spec_from_file_location("fit_error_map",
                                                  ROOT / "tools" / "fit_error_map.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (SHARED / CASE).is_dir(), reason=f"no BraTS data at {SHARED}")
def test_error_probability_is_higher_where_the_reference_disagrees():
    """A real case's reference, cropped to its tumour: a prediction that misses a band
    at the border and a P2D unsure there. The map is a probability, higher on the
    voxels the prediction gets wrong."""
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(SHARED / CASE / f"{CASE}_seg.nii.gz")))
    reference = labels_to_regions(labels, "brats2018")
    box = tuple(slice(max(a - 6, 0), b + 6) for a, b in
                zip(np.argwhere(reference[2]).min(0), np.argwhere(reference[2]).max(0)))
    reference = reference[(slice(None),) + box]
    predicted = np.stack([ndimage.binary_erosion(r, iterations=2) for r in reference])
    p2d = np.stack([ndimage.gaussian_filter(r.astype(np.float32), 2.0) for r in reference])
    brain = np.ones(reference.shape[1:], bool)
    u = em.error_probability(FIT, p2d, predicted, (1.0, 1.0, 1.0), brain)
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() <= 1.0
    for i in range(3):
        error = reference[i] != predicted[i]
        assert error.any()
        assert u[i][error].mean() > 2 * u[i][~error].mean()
        assert auroc(u[i].ravel(), error.ravel()) > 0.9


def _arrays(seed: int) -> dict:
    """One synthetic case: errors near the border and where the entropy is high."""
    rng = np.random.default_rng(seed)
    n = 4000
    distance = rng.uniform(1.0, 20.0, n)
    h = rng.uniform(0.0, 1.0, n)
    error = rng.uniform(size=n) < 0.6 / distance + 0.2 * h
    return {r: {"near": 1 / (1 + distance), "h": h, "as written": h ** 2, "error": error,
                "distance": distance} for r in REGIONS}


def test_the_fit_round_trips_through_model_json(tmp_path):
    """tools/fit_error_map.py's block: a lambda, a, b per region and the scores; stored
    in model.json (card re-rendered with the table), loaded back by load_model."""
    block = {"measured": "2026-12-07", **_tool().fit({"c1": _arrays(1), "c2": _arrays(2)}),
             "command": "tools/fit_error_map.py"}
    regions = em.check_fit(block)
    assert all(row["a"] > 0 and row["lambda"] in em.LAMBDAS for row in regions.values())
    assert set(block["maps"]) == {"mean-entropy", "as written", "border"}
    assert block["leave_one_case_out"]["WT"]["auroc"] > 0.6
    # brats-mini: the phantom's older model.json lacks what the card renders
    model_dir = tmp_path / "brats-mini"
    shutil.copytree(MODELS_DIR / "brats-mini", model_dir,
                    ignore=shutil.ignore_patterns("2d_*", "3d_full"))
    store_block(model_dir, em.ERROR_MAP_KEY, block)
    assert json.loads((model_dir / "model.json").read_text())[em.ERROR_MAP_KEY]["cases"] == \
        ["c1", "c2"]
    assert load_model(str(model_dir)).error_map == regions
    card = (model_dir / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "error-probability, leave-one-case-out" in card and "border baseline" in card


def test_models_without_the_block_have_no_fit_and_a_broken_block_is_refused(tmp_path):
    assert set(load_model("phantom").error_map) == set(REGIONS)
    model_dir = tmp_path / "phantom"
    shutil.copytree(MODELS_DIR / "phantom", model_dir)
    meta = json.loads((model_dir / "model.json").read_text())
    old = dict(meta)
    del old[em.ERROR_MAP_KEY]  # a model folder from before the fit
    (model_dir / "model.json").write_text(json.dumps(old))
    assert load_model(str(model_dir)).error_map == {}
    meta[em.ERROR_MAP_KEY] = {"regions": {"ET": {"lambda": 0.1, "a": 1.0, "b": 0.0}}}
    (model_dir / "model.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="fit_error_map.py"):
        load_model(str(model_dir))


def test_a_region_without_border_is_scored_by_its_entropy_alone():
    regions = np.zeros((3, 4, 5, 6), bool)
    p2d = np.full((3, 4, 5, 6), 0.5, np.float32)
    p2d[:, 0] = 0.0
    u = em.error_probability(FIT, p2d, regions, (1.0, 1.0, 1.0), np.ones((4, 5, 6), bool))
    assert u[0, 1, 0, 0] == pytest.approx(1 / (1 + np.exp(-(9.0 * 0.3 - 6.0))), rel=1e-5)
    assert u[0, 0, 0, 0] == pytest.approx(1 / (1 + np.exp(6.0)), rel=1e-5)


def test_evaluate_names_the_map_each_run_wrote():
    """uncertainty.md says which map was scored: the fitted one, the fallback, or the
    binned entropy of runs from before --uncertainty-map."""
    from types import SimpleNamespace

    from uncertaintyseg.evaluation.summary import maps_scored

    runs = {"c1": {"report": {"settings": {"uncertainty_map": "error-probability"},
                              "uncertainty_map": {"map": "error-probability"}}},
            "c2": {"report": {"settings": {"uncertainty_map": "error-probability"},
                              "uncertainty_map": {"map": "mean-entropy", "note": "no fit"}}},
            "c3": {"report": {"settings": {}}}, "c4": {"report": {}}}
    for record in runs.values():
        record["uncertainty"] = {"WT": {"auroc": 0.9}}
    line = maps_scored(SimpleNamespace(records={"fused": runs, "2D-only": {"c1": {}}}))
    assert "fused: binned (2 cases), error-probability (1 cases), mean-entropy (1 cases)" in line
    assert "2D-only" not in line


def test_brats_minis_fit_ranks_errors_at_or_above_the_border_baseline():
    """The bundled fit's own record: leave-one-case-out, the map is at or above the
    border baseline overall on every region and at least 0.8 beyond the border."""
    meta = json.loads((MODELS_DIR / "brats-mini" / "model.json").read_text())
    block = meta[em.ERROR_MAP_KEY]
    em.check_fit(block)
    assert block["cases"] == meta["split"]["val"]
    for region in REGIONS:
        loo = block["leave_one_case_out"][region]
        assert loo["auroc"] >= block["maps"]["border"][region]["auroc"]
        assert loo["auroc_far"] >= 0.8
