"""`uncertaintyseg explain`: the teaching figures show what the pipeline computed."""

import json

import numpy as np
import pytest

from uncertaintyseg.commands.cli import build_parser, main
from uncertaintyseg.evaluation.explain import CAPTIONS, _input_slice_to_grid, run_stages
from uncertaintyseg.files.phantom import write_phantom_case
from uncertaintyseg.networks.working_grid import from_crop


def test_input_slices_map_to_the_cropped_working_grid():
    image = np.zeros((4, 20, 16, 16), np.float32)
    image[:, 6:15, 4:12, 4:12] = 1.0  # brain in slices 6-14
    grid = from_crop(image, (1.0, 1.0, 1.0), margin=2)  # crop keeps slices 4-16
    assert _input_slice_to_grid(grid, 10) == 6
    assert _input_slice_to_grid(grid, 4) == 0
    with pytest.raises(ValueError, match="outside the brain"):
        _input_slice_to_grid(grid, 1)


def test_explain_and_evaluate_default_to_predicts_model():
    # None is predict's default (predict.load_run_model): brats-mini, not the phantom model
    # whose figures mislead on a real case.
    parser = build_parser()
    explain = parser.parse_args(["explain", "--case", "C", "--out", "F"])
    assert explain.model is None and explain.progress == "bar"
    evaluate = parser.parse_args(["evaluate", "--cases", "C", "--results", "R", "--out", "O"])
    assert evaluate.explain_model is None


@pytest.fixture(scope="module")
def phantom_case(tmp_path_factory):
    return write_phantom_case(tmp_path_factory.mktemp("case"), seed=2, shape=(32, 64, 56))


@pytest.mark.slow
def test_explain_stages_are_the_pipelines_and_figures_are_written(phantom_case, tmp_path,
                                                                  capsys):
    data = run_stages(phantom_case, "phantom", slice_index=None)
    stages = data["stages"]
    assert len(stages["origins"]) == 16
    # P2D is the mean of the 16 back-projected predictions drawn in figure 02
    np.testing.assert_allclose(stages["back"].mean(axis=0), stages["mean"], atol=1e-5)
    # the projections differ from each other (each magnifies its own origin)
    assert np.abs(stages["projected"][0] - stages["projected"][-1]).mean() > 0.01
    # a larger overlap never keeps fewer cubes
    counts = [len(data["boxes"][o]) for o in (0.1, 0.4, 0.7)]
    assert counts == sorted(counts) and counts[0] >= 1
    # the default slice is the one with the largest reference WT
    assert data["reference"][2][data["z"]].sum() == data["reference"][2].sum(axis=(1, 2)).max()
    out = tmp_path / "explain"
    assert main(["explain", "--case", str(phantom_case), "--out", str(out), "--slice",
                 str(data["z"]), "--threads", "1", "--model", "phantom",
                 "--progress", "json"]) == 0
    for name in CAPTIONS:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    captions = (out / "captions.md").read_text(encoding="utf-8")
    assert "02_backprojected.png" in captions and "model phantom" in captions
    # progress: the pipeline's stages, explain's own, then the folder written
    stages = [json.loads(line)["stage"] for line in capsys.readouterr().out.splitlines()]
    assert "uncertainty" in stages and "explain" in stages and stages[-1] == "finished"
