"""The output contract: atomic writing, exact read-back, box coordinates in RAS."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from uncertaintyseg.files import contract
from uncertaintyseg.files.contract import CaseResult, boxes_to_json, read_outputs, write_outputs
from uncertaintyseg.contract_names import MAP_SLOPE
from uncertaintyseg.files.io import InputError
from uncertaintyseg.stages.kernels import Box


def _reference(shape_zyx=(12, 16, 14)):
    image = sitk.Image(list(reversed(shape_zyx)), sitk.sitkFloat32)
    image.SetSpacing((0.9, 1.1, 2.5))
    image.SetOrigin((-10.0, 20.0, 5.0))
    angle = np.deg2rad(20)
    direction = np.array([[np.cos(angle), -np.sin(angle), 0],
                          [np.sin(angle), np.cos(angle), 0],
                          [0, 0, 1.0]])
    image.SetDirection(direction.ravel().tolist())
    return image


def _result(seed=0, shape=(12, 16, 14)):
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.array([0, 1, 2, 4], dtype=np.uint8), size=shape)
    maps = {k: rng.random((3, *shape), dtype=np.float32) for k in
            ("probabilities", "probabilities_2d", "uncertainty")}
    p3d = np.full((3, *shape), -1.0, dtype=np.float32)
    p3d[:, 2:6, 3:9, 4:8] = 0.7
    boxes = [Box("ET", 1, 10.0, (2, 3, 4), (4, 6, 4)), Box("ET", 2, 4.0, (5, 1, 2), (4, 6, 4)),
             Box("WT", 1, 30.0, (0, 0, 0), (8, 8, 8))]
    return CaseResult(reference=_reference(shape), labels=labels, probabilities_3d=p3d,
                      boxes=boxes, flair=None, **maps,
                      report={"software": {"name": "uncertaintyseg"}, "input": {"case_id": "x"},
                              "timings_s": {"uncertainty": 2.0, "total": 2.0}})


def test_read_back_equals_what_was_written(tmp_path):
    result = _result()
    out = write_outputs(result, tmp_path / "out", snapshot=False)
    data = read_outputs(out)
    np.testing.assert_array_equal(data["labels"], result.labels)
    for name in ("probabilities", "probabilities_2d", "probabilities_3d", "uncertainty"):
        # Stored quantised (docs/OUTPUT-CONTRACT.md): within one step of the written map.
        np.testing.assert_allclose(data[name], getattr(result, name), rtol=0, atol=MAP_SLOPE)
        assert data[name].dtype == np.float32
    ref = result.reference
    assert data["reference"].GetSpacing() == pytest.approx(ref.GetSpacing())
    assert data["reference"].GetOrigin() == pytest.approx(ref.GetOrigin())
    assert data["reference"].GetDirection() == pytest.approx(ref.GetDirection())
    # One channel of a 4D map carries the input geometry too.
    four_d = sitk.ReadImage(str(out / "uncertainty.nii.gz"))
    size = list(four_d.GetSize())
    channel = sitk.Extract(four_d, size[:3] + [0], [0, 0, 0, 1])
    assert channel.GetDirection() == pytest.approx(ref.GetDirection(), abs=1e-6)
    assert channel.GetOrigin() == pytest.approx(ref.GetOrigin(), abs=1e-5)
    assert data["report"] == result.report
    assert "uncertainty_raw" not in data


def test_box_centre_and_axes_in_ras():
    ref = _reference()
    box = Box("TC", 1, 5.0, (2, 3, 4), (4, 6, 5))
    record = boxes_to_json([box], ref)["boxes"][0]
    assert record["start_ijk"] == [4, 3, 2] and record["size_ijk"] == [5, 6, 4]
    # Independent computation: LPS = origin + D @ (spacing * index), RAS flips x and y.
    centre_index = np.array([4 + 2.0, 3 + 2.5, 2 + 1.5])
    direction = np.array(ref.GetDirection()).reshape(3, 3)
    lps = np.array(ref.GetOrigin()) + direction @ (np.array(ref.GetSpacing()) * centre_index)
    assert record["center_ras"] == pytest.approx([-lps[0], -lps[1], lps[2]])
    assert record["size_mm"] == pytest.approx([5 * 0.9, 6 * 1.1, 4 * 2.5])
    axes = np.array(record["axes_ras"])
    assert axes[:, 0] == pytest.approx([-direction[0, 0], -direction[1, 0], direction[2, 0]])
    assert record["score_fraction"] == 1.0


def test_score_fraction_is_per_region(tmp_path):
    records = boxes_to_json(_result().boxes, _reference())["boxes"]
    assert [r["score_fraction"] for r in records] == pytest.approx([1.0, 0.4, 1.0])


def test_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(contract, "_write_json", broken)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(_result(), tmp_path / "out", snapshot=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_needs_overwrite(tmp_path):
    out = write_outputs(_result(seed=1), tmp_path / "out", snapshot=False)
    with pytest.raises(InputError, match="--overwrite"):
        write_outputs(_result(seed=2), out, snapshot=False)
    write_outputs(_result(seed=2), out, overwrite=True, snapshot=False)
    np.testing.assert_array_equal(read_outputs(out)["labels"], _result(seed=2).labels)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_incomplete_folder_is_refused(tmp_path):
    out = write_outputs(_result(), tmp_path / "out", snapshot=False)
    (out / "uncertainty.nii.gz").unlink()
    with pytest.raises(InputError, match="uncertainty.nii.gz"):
        read_outputs(out)


def test_boxes_json_is_plain_json(tmp_path):
    out = write_outputs(_result(), tmp_path / "out", snapshot=False)
    data = json.loads((out / "refinement_boxes.json").read_text(encoding="utf-8"))
    assert data["coordinate_system"] == "RAS" and len(data["boxes"]) == 3


def test_overwrite_never_replaces_a_folder_that_is_not_a_result(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(InputError, match="no earlier UncertaintySeg result"):
        write_outputs(_result(), precious, overwrite=True, snapshot=False)
    assert (precious / "thesis.txt").read_text(encoding="utf-8") == "years of work"
    with pytest.raises(InputError, match="is a file"):
        write_outputs(_result(), precious / "thesis.txt", snapshot=False)


def test_write_time_and_total_are_recorded(tmp_path):
    result = _result()
    out = write_outputs(result, tmp_path / "out", snapshot=False)
    timings = read_outputs(out)["report"]["timings_s"]
    assert timings["write"] > 0
    assert timings["total"] == pytest.approx(timings["uncertainty"] + timings["write"], abs=2e-3)


def test_raw_entropy_is_written_by_outputs_all_when_present(tmp_path):
    result = _result()
    result.uncertainty_raw = result.uncertainty * np.log(16)
    out = write_outputs(result, tmp_path / "out", snapshot=False, outputs="all")
    # float32 as it is (not quantised: nats, not a [-1, 1] map).
    np.testing.assert_allclose(read_outputs(out)["uncertainty_raw"], result.uncertainty_raw)
    standard = read_outputs(write_outputs(result, tmp_path / "standard", snapshot=False))
    assert "uncertainty_raw" not in standard


def test_results_are_readable_by_others_and_stale_partials_go(tmp_path):
    import os
    import stat

    from uncertaintyseg.files.output_safety import this_host

    stale = tmp_path / f".out.partial-999999999-{this_host()}-abc"   # no such process
    stale.mkdir()
    live = tmp_path / f".out.partial-{os.getpid()}-{this_host()}-abc"   # a running writer
    live.mkdir()
    out = write_outputs(_result(), tmp_path / "out", snapshot=False)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    assert not stale.exists() and live.exists()


def test_every_image_header_names_the_model_and_says_untrained(tmp_path):
    import nibabel as nib

    result = _result()
    result.report["model"] = {"name": "analytic", "trained": False}
    out = write_outputs(result, tmp_path / "out", snapshot=False)
    for path in out.glob("*.nii.gz"):
        note = bytes(nib.load(path).header["descrip"]).decode()
        assert "analytic UNTRAINED" in note and "not for clinical use" in note, path.name
    result.report["model"] = {"name": "brats-mini", "trained": True}
    again = write_outputs(result, tmp_path / "again", snapshot=False)
    assert "UNTRAINED" not in bytes(
        nib.load(again / "segmentation.nii.gz").header["descrip"]).decode()
