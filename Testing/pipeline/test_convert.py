"""convert: BraTS case folders (either naming) -> a valid nnU-Net v2 raw region dataset."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from uncertaintyseg import MODALITIES
from uncertaintyseg.files.convert import convert_dataset, make_split
from uncertaintyseg.files.io import InputError, find_case_files
from uncertaintyseg.files.label_maps import labels_to_regions, load_labels
from uncertaintyseg.files.phantom import write_phantom_case

SHAPE = (40, 48, 48)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    write_phantom_case(root, seed=1, shape=SHAPE)
    write_phantom_case(root, seed=2, shape=SHAPE)
    write_phantom_case(root, seed=3, shape=SHAPE, naming="brats2023")
    return root


@pytest.fixture(scope="module")
def dataset(source, tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    return convert_dataset(source, raw, dataset_id=987, name="Test", n_val=1, seed=0)


def _array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_dataset_json_declares_regions_largest_first(dataset):
    meta = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))
    assert dataset.name == "Dataset987_Test"
    labels = {k: (v if isinstance(v, list) else [v]) for k, v in meta["labels"].items()}
    assert list(labels) == ["background", "WT", "TC", "ET"]
    assert labels["WT"] == [1, 2, 3] and labels["TC"] == [2, 3] and labels["ET"] == [3]
    assert meta["regions_class_order"] == [1, 2, 3]
    assert [meta["channel_names"][str(i)] for i in range(4)] == ["FLAIR", "T1", "T1ce", "T2"]
    assert meta["numTraining"] == 3 and meta["file_ending"] == ".nii.gz"


def test_images_in_pipeline_channel_order_and_regions_preserved(source, dataset):
    meta = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))
    for case_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        files = find_case_files(case_dir)
        for index, modality in enumerate(MODALITIES):
            converted = dataset / "imagesTr" / f"{case_dir.name}_{index:04d}.nii.gz"
            np.testing.assert_array_equal(_array(converted), _array(files[modality]))
        seg = next(case_dir.glob("*seg.nii.gz"))
        expected = labels_to_regions(load_labels(seg)[0])  # ET, TC, WT
        nnunet = _array(dataset / "labelsTr" / f"{case_dir.name}.nii.gz")
        assert set(np.unique(nnunet)) <= {0, 1, 2, 3}
        for index, region in enumerate(("ET", "TC", "WT")):
            got = np.isin(nnunet, meta["labels"][region])
            np.testing.assert_array_equal(got, expected[index], err_msg=f"{case_dir.name} {region}")
        assert expected[0].any() and expected[2].sum() > expected[1].sum()


def test_split_is_recorded_fixed_and_disjoint(source, dataset, tmp_path):
    splits = json.loads((dataset / "splits_final.json").read_text(encoding="utf-8"))
    assert len(splits) == 1
    train, val = splits[0]["train"], splits[0]["val"]
    assert len(val) == 1 and len(train) == 2 and not set(train) & set(val)
    assert sorted(train + val) == sorted(p.name for p in source.iterdir() if p.is_dir())
    again = convert_dataset(source, tmp_path, dataset_id=988, name="Again", n_val=1, seed=0)
    assert json.loads((again / "splits_final.json").read_text(encoding="utf-8")) == splits
    meta = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))
    assert meta["uncertaintyseg"]["split"] == splits[0]


@pytest.mark.slow
def test_nnunet_accepts_the_dataset(dataset):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(dataset), num_processes=1)  # raises on any problem


def test_make_split_validation():
    ids = ["a", "b", "c", "d"]
    assert make_split(ids, 0)["val"] == []
    assert make_split(ids, 1, val_cases=["c"]) == {"train": ["a", "b", "d"], "val": ["c"]}
    with pytest.raises(InputError, match="not among"):
        make_split(ids, 1, val_cases=["z"])
    with pytest.raises(InputError, match="at least one for training"):
        make_split(ids, 4)


def test_bad_sources_name_the_problem(tmp_path, source):
    with pytest.raises(InputError, match="not a folder"):
        convert_dataset(tmp_path / "missing", tmp_path / "raw")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no case folders"):
        convert_dataset(tmp_path / "empty", tmp_path / "raw")
    case = write_phantom_case(tmp_path / "noseg", seed=4, shape=SHAPE)
    next(case.glob("*seg.nii.gz")).unlink()
    with pytest.raises(InputError, match="no label map"):
        convert_dataset(tmp_path / "noseg", tmp_path / "raw")


def test_convert_command_line(source, tmp_path):
    from uncertaintyseg.commands.cli import main

    code = main(["convert", str(source), "--out", str(tmp_path), "--dataset-id", "989",
                 "--name", "Cli", "--val-cases", "Phantom_0001"])
    assert code == 0
    split = json.loads((tmp_path / "Dataset989_Cli" / "splits_final.json").read_text(encoding="utf-8"))[0]
    assert split["val"] == ["Phantom_0001"] and len(split["train"]) == 2
    assert main(["convert", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2


def test_make_split_puts_low_et_cases_on_both_sides():
    ids = [f"c{i:02d}" for i in range(29)]
    low = {"c03", "c07", "c11", "c19", "c23", "c28"}
    for seed in range(20):
        split = make_split(ids, 6, seed, low_et=low)
        assert len(split["val"]) == 6 and set(split["val"]).isdisjoint(split["train"])
        # 6 x 6/29 rounds to 1: one low-ET case held out, five trained on
        assert len(low & set(split["val"])) == 1
        assert len(low & set(split["train"])) == 5
    # two low-ET cases in a small set: still one on each side
    split = make_split(["a", "b", "c", "d", "e"], 2, 0, low_et={"a", "b"})
    assert len({"a", "b"} & set(split["val"])) == 1
    # all validation cases low-ET when the others cannot fill it
    split = make_split(["a", "b", "c"], 2, 0, low_et={"a", "b", "c"})
    assert len(split["val"]) == 2
    assert make_split(ids, 6, 3, low_et=low) == make_split(ids, 6, 3, low_et=low)
