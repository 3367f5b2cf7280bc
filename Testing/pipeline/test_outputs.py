"""`predict --outputs`: each set writes exactly its files; the quantised maps read back
within their step; folders written before quantisation (float32 maps) still read;
the writer holds one map at a time."""

import json
import weakref

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from uncertaintyseg.commands import cli
from uncertaintyseg.files import contract
from uncertaintyseg.cohorts.cohort_table import is_complete
from uncertaintyseg.files.contract import read_outputs, write_outputs
from uncertaintyseg.contract_names import (MAP_FILES, MAP_INTER, MAP_SLOPE, OUTPUT_SETS,
                                           REPORT_FILE, SNAPSHOT_FILE, output_files)
from uncertaintyseg.evaluation.pairing import KIND_2D, parse_results, read_maps
from uncertaintyseg.files.image_writer import write_maps_verified
from uncertaintyseg.files.io import InputError, to_image
from uncertaintyseg.options import OPTIONS, to_argv
from uncertaintyseg.files.phantom import write_phantom_case

from test_contract import _reference, _result

SMALL = ["--model", "analytic", "--projections", "3", "--kernel-mm", "12", "12", "24",
         "--max-boxes", "2", "--batch-size", "3", "--no-snapshot", "--progress", "none"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One `predict` per output set on one small phantom: runs/<set>/<case>/."""
    case_dir = write_phantom_case(tmp_path_factory.mktemp("case"), seed=5, shape=(20, 48, 40))
    root = tmp_path_factory.mktemp("runs")
    for name in OUTPUT_SETS:
        out = root / name / case_dir.name
        assert cli.main(["predict", "--case", str(case_dir), "--out", str(out),
                         "--outputs", name, *SMALL]) == 0
    return root, case_dir.name


def test_each_set_writes_exactly_its_files(runs):
    root, case = runs
    for name in OUTPUT_SETS:
        folder = root / name / case
        expected = sorted(f for f in output_files(name) if f != SNAPSHOT_FILE)  # --no-snapshot
        assert sorted(p.name for p in folder.iterdir()) == expected, name
        report = json.loads((folder / REPORT_FILE).read_text(encoding="utf-8"))
        assert report["outputs"]["set"] == name and report["settings"]["outputs"] == name
        assert sorted(report["outputs"]["files"]) == expected
    assert not (root / "minimal" / case / MAP_FILES["probabilities_2d"]).exists()
    assert (root / "all" / case / MAP_FILES["uncertainty_raw"]).is_file()
    assert not (root / "standard" / case / MAP_FILES["uncertainty_raw"]).exists()


def test_the_set_changes_what_is_written_not_the_result(runs):
    root, case = runs
    small, full = read_outputs(root / "minimal" / case), read_outputs(root / "all" / case)
    np.testing.assert_array_equal(small["labels"], full["labels"])
    for name in ("probabilities", "uncertainty"):
        np.testing.assert_array_equal(small[name], full[name])
    assert "probabilities_2d" not in small and "uncertainty_raw" in full


def test_a_minimal_folder_is_complete_for_every_reader(runs):
    root, case = runs
    folder = root / "minimal" / case
    assert is_complete(folder)
    assert read_outputs(folder)["uncertainty"].shape[0] == 3
    # evaluate: no 2D-only twin from a run without P2D; asking for P2D says what to do.
    assert [m.kind for m in parse_results([str(root / "minimal")])] == ["fused"]
    assert KIND_2D in [m.kind for m in parse_results([str(root / "standard")])]
    reference = sitk.ReadImage(str(folder / "segmentation.nii.gz"))
    with pytest.raises(InputError, match="--outputs standard"):
        read_maps(folder / MAP_FILES["probabilities_2d"], reference)


def _test_maps(shape=(5, 6, 7)):
    rng = np.random.default_rng(3)
    maps = rng.uniform(-1.0, 1.0, (3, *shape)).astype(np.float32)
    maps[0, 0], maps[1, 0], maps[2, 0] = -1.0, 0.0, 1.0   # the values readers test for
    maps[0, 1] = 0.5
    return maps


def test_quantised_maps_read_back_within_one_step(tmp_path):
    maps, reference = _test_maps(), _reference((5, 6, 7))
    path = tmp_path / "maps.nii.gz"
    write_maps_verified(maps, reference, path, note="a note", scale=(MAP_SLOPE, MAP_INTER))
    stored = nib.load(path)
    assert stored.get_data_dtype() == np.uint16
    assert (stored.dataobj.slope, stored.dataobj.inter) == (MAP_SLOPE, MAP_INTER)
    back = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert back.dtype == np.float32
    error = np.abs(back - maps)
    below_top = maps < 1.0 - MAP_SLOPE / 2   # 1 itself is one step down (65535 is the top)
    assert error[below_top].max() <= MAP_SLOPE / 2 + 1e-7
    assert error.max() <= MAP_SLOPE
    np.testing.assert_array_equal(back[0, 0], -1.0)
    np.testing.assert_array_equal(back[1, 0], 0.0)
    np.testing.assert_array_equal(back[0, 1], 0.5)
    # nibabel applies the same scaling; the geometry is the reference's.
    np.testing.assert_allclose(np.asarray(stored.dataobj).T, back, atol=1e-7)
    image = sitk.ReadImage(str(path))
    assert image.GetOrigin()[:3] == pytest.approx(reference.GetOrigin())
    assert image.GetSpacing()[:3] == pytest.approx(reference.GetSpacing())
    assert np.reshape(image.GetDirection(), (4, 4))[:3, :3].ravel() == pytest.approx(
        reference.GetDirection(), abs=1e-6)


def test_quantised_maps_are_smaller_than_float32(tmp_path):
    rng = np.random.default_rng(0)
    maps = np.clip(rng.normal(0.5, 0.2, (3, 24, 32, 32)), 0, 1).astype(np.float32)
    reference = _reference((24, 32, 32))
    write_maps_verified(maps, reference, tmp_path / "q.nii.gz", scale=(MAP_SLOPE, MAP_INTER))
    sitk.WriteImage(to_image(maps, reference), str(tmp_path / "f.nii.gz"))
    assert (tmp_path / "q.nii.gz").stat().st_size < 0.8 * (tmp_path / "f.nii.gz").stat().st_size


def test_folders_written_with_float32_maps_still_read(tmp_path):
    """A folder from before quantisation: float32 maps written by SimpleITK, no
    `outputs` in the report. Every reader takes it, values exact."""
    result = _result()
    out = write_outputs(result, tmp_path / "old", snapshot=False)
    for name in ("probabilities", "probabilities_2d", "probabilities_3d", "uncertainty"):
        sitk.WriteImage(to_image(getattr(result, name), result.reference),
                        str(out / MAP_FILES[name]), useCompression=True)
    report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    del report["outputs"]
    (out / REPORT_FILE).write_text(json.dumps(report), encoding="utf-8")
    data = read_outputs(out)
    for name in ("probabilities", "probabilities_2d", "probabilities_3d", "uncertainty"):
        np.testing.assert_array_equal(data[name], getattr(result, name))
    np.testing.assert_array_equal(read_maps(out / MAP_FILES["probabilities_2d"],
                                            data["reference"]), result.probabilities_2d)
    assert is_complete(out)


def test_the_writer_holds_one_map_at_a_time(tmp_path, monkeypatch):
    """With `release`, each map is dropped once written: when the last is written,
    none of the earlier ones is alive any more."""
    result = _result()
    result.uncertainty_raw = result.uncertainty * 2.0
    names = OUTPUT_SETS["all"]
    alive = {name: weakref.ref(getattr(result, name)) for name in names}
    seen = []
    real = contract.write_maps_verified

    def spy(maps, *args, **kwargs):
        seen.append(sorted(n for n, ref in alive.items() if ref() is not None))
        real(maps, *args, **kwargs)

    monkeypatch.setattr(contract, "write_maps_verified", spy)
    write_outputs(result, tmp_path / "out", snapshot=False, outputs="all", release=True)
    assert [len(s) for s in seen] == [5, 4, 3, 2, 1]
    assert all(getattr(result, name) is None for name in names)
    assert result.labels is not None and result.report["outputs"]["set"] == "all"


def test_overwrite_with_a_smaller_set_removes_the_maps_it_does_not_write(tmp_path):
    out = write_outputs(_result(seed=1), tmp_path / "out", snapshot=False, outputs="standard")
    assert (out / MAP_FILES["probabilities_3d"]).is_file()
    write_outputs(_result(seed=2), out, overwrite=True, snapshot=False, outputs="minimal")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f for f in output_files("minimal") if f != SNAPSHOT_FILE)


def test_outputs_is_one_option_everywhere():
    from uncertaintyseg.run.pipeline import Settings

    assert OPTIONS["outputs"].choices == tuple(OUTPUT_SETS)
    assert to_argv({"outputs": "minimal"}) == ["--outputs", "minimal"]
    assert to_argv({"outputs": OPTIONS["outputs"].default}) == []
    assert Settings(outputs="minimal").outputs == "minimal"
    with pytest.raises(InputError, match="--outputs tiny"):
        Settings(outputs="tiny")
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["predict", "--case", "c", "--out", "o",
                                       "--outputs", "tiny"])


def test_a_map_cut_short_by_a_full_disk_is_an_error_and_leaves_nothing(tmp_path, monkeypatch):
    from uncertaintyseg.files import image_writer
    from uncertaintyseg.errors import OutputError

    real = image_writer.nib.save

    def cut(image, path):   # what a full disk leaves behind: a part of the file
        real(image, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    monkeypatch.setattr(image_writer.nib, "save", cut)
    with pytest.raises(OutputError, match="maps.nii.gz: the image was not written whole"):
        write_maps_verified(_test_maps(), _reference((5, 6, 7)), tmp_path / "maps.nii.gz",
                            scale=(MAP_SLOPE, MAP_INTER))
    assert list(tmp_path.iterdir()) == []


def test_a_constant_map_held_as_a_view_is_written_whole(tmp_path):
    # full-3d's P2D is -1 everywhere, held as a read-only broadcast (no memory).
    result = _result()
    result.probabilities_2d = np.broadcast_to(np.float32(-1.0), result.probabilities.shape)
    out = write_outputs(result, tmp_path / "out", snapshot=False)
    np.testing.assert_array_equal(read_outputs(out)["probabilities_2d"], -1.0)
