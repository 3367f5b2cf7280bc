"""`train --fold K`: nnU-Net's five seeded folds, stored in the splits file, fold K's
fifth held out, `all` trains on every case; runs with and without --fold never share
a splits file."""

import json

import pytest

from uncertaintyseg.commands.cli import main
from uncertaintyseg.errors import InputError
from uncertaintyseg.training import folds
from uncertaintyseg.training.chain import Chain
from uncertaintyseg.training.chain_settings import ChainSettings

CASES = [f"Case_{i:03d}" for i in range(23)]


def test_the_folds_are_disjoint_cover_every_case_and_hold_out_a_fifth():
    splits = folds.cross_validation_folds(CASES, seed=0)
    assert len(splits) == folds.FOLDS
    held_out = [case for split in splits for case in split["val"]]
    assert sorted(held_out) == CASES  # every case validated once, never twice
    for split in splits:
        assert set(split["train"]).isdisjoint(split["val"])
        assert sorted(split["train"] + split["val"]) == CASES
        assert len(split["val"]) in (4, 5)


def test_the_folds_are_stable_under_rerun_and_change_with_the_seed():
    first = folds.cross_validation_folds(CASES, seed=0)
    assert folds.cross_validation_folds(list(reversed(CASES)), seed=0) == first
    assert folds.cross_validation_folds(CASES, seed=1) != first


def _converted(tmp_path, single):
    path = tmp_path / "converted.json"
    path.write_text(json.dumps([single]))
    return path


def test_the_splits_file_holds_the_five_folds_and_a_fold_reads_its_own(tmp_path):
    converted = _converted(tmp_path, {"train": CASES, "val": []})
    target = tmp_path / "splits_final.json"
    folds.write_splits(target, converted, 3, seed=0)
    stored = json.loads(target.read_text())
    assert stored == folds.cross_validation_folds(CASES, seed=0)
    folds.write_splits(target, converted, 1, seed=0)  # another fold: the same file
    assert json.loads(target.read_text()) == stored
    assert folds.split_of(stored, 3) == stored[3]
    assert folds.split_of(stored, folds.ALL) == {"train": CASES, "val": []}


def test_runs_with_and_without_fold_refuse_each_others_splits_file(tmp_path):
    target = tmp_path / "splits_final.json"
    folds.write_splits(target, _converted(tmp_path, {"train": CASES[3:], "val": CASES[:3]}),
                       None, seed=0)
    with pytest.raises(InputError, match="separate --work folders"):
        folds.write_splits(target, _converted(tmp_path, {"train": CASES, "val": []}), 0, 0)
    with pytest.raises(InputError, match="separate --work folders"):
        folds.split_of(json.loads(target.read_text()), 2)


def test_each_fold_trains_in_its_own_folder(tmp_path):
    plain = Chain(tmp_path, tmp_path / "work", ChainSettings())
    fold = Chain(tmp_path, tmp_path / "work", ChainSettings(fold=2))
    assert plain.train_dir == tmp_path / "work" / "train"
    assert fold.train_dir == tmp_path / "work" / "train_fold_2"


@pytest.mark.parametrize("extra, message", [
    (["--fold", "5"], "--fold 5: give a fold 0..4"),
    (["--fold", "x"], "--fold x: give a fold 0..4"),
    (["--fold", "1", "--val-cases", "Phantom_0000"], "--fold and --val-cases"),
])
def test_a_wrong_fold_stops_before_any_work(tmp_path, capsys, extra, message):
    assert main(["train", "--phantoms", "2", "--preset", "tiny", "--out",
                 str(tmp_path / "model"), "--work", str(tmp_path / "work"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_the_fold_is_in_the_plan_and_the_batch_script(tmp_path, capsys):
    args = ["train", "--phantoms", "2", "--preset", "tiny", "--out", str(tmp_path / "m"),
            "--fold", "all"]
    assert main([*args, "--gpus", "2", "--print-sbatch"]) == 0
    command = [line for line in capsys.readouterr().out.splitlines() if "srun" in line][0]
    assert "--fold all" in command
    assert main([*args, "--device", "cpu", "--dry-run", "--calibration-steps", "0"]) == 0
    assert "fold: all (every case trained on" in capsys.readouterr().out


def test_the_chains_convert_step_stores_the_folds_and_each_fold_reads_its_own(tmp_path):
    from uncertaintyseg.files.phantom import write_phantom_case

    for seed in range(6):
        write_phantom_case(tmp_path / "cases", seed=seed, shape=(24, 32, 32))
    ids = sorted(p.name for p in (tmp_path / "cases").iterdir())
    chains = {k: Chain(tmp_path / "cases", tmp_path / "work", ChainSettings(fold=k, seed=4))
              for k in (1, 3, folds.ALL)}
    for chain in chains.values():
        chain.convert()
    stored = json.loads((chains[1].pre / "splits_final.json").read_text())
    assert stored == folds.cross_validation_folds(ids, seed=4)
    assert chains[1].split == stored[1] and chains[3].split == stored[3]
    assert chains[folds.ALL].split == {"train": ids, "val": []}
    with pytest.raises(InputError, match="separate --work folders"):
        Chain(tmp_path / "cases", tmp_path / "work", ChainSettings(n_val=1)).convert()
