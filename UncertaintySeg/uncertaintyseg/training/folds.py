"""`train --fold K`: nnU-Net's 5-fold cross-validation of the training cases.

The folds are nnU-Net's own (`generate_crossval_split`: scikit-learn's shuffled KFold
over the sorted case ids, seeded with `--seed`), stored in nnU-Net's format, a list of
five {"train", "val"} dicts, as the preprocessed dataset's `splits_final.json`; fold K
trains on four fifths and holds out the fifth for validation, `--fold all` trains on
every case (no validation split). Without `--fold` the chain keeps its single seeded
split (`--n-val`, `--val-cases`), stored as a list of one. Each fold trains in its own
folder of the work folder (`train_fold_K`), so that the five folds share the converted
and preprocessed data but never a checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..files.output_safety import write_json_atomic

FOLDS = 5
ALL = "all"


def parse_fold(text: str | None) -> int | str | None:
    """`--fold`: 0..4, `all`, or None (absent)."""
    if text is None or text == ALL:
        return text
    try:
        fold = int(text)
    except ValueError:
        fold = -1
    if not 0 <= fold < FOLDS:
        raise InputError(f"--fold {text}: give a fold 0..{FOLDS - 1} or '{ALL}'")
    return fold


def cross_validation_folds(case_ids: list[str], seed: int) -> list[dict[str, list[str]]]:
    """nnU-Net's five folds of `case_ids` (disjoint validation parts covering every case)."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    ids = sorted(case_ids)
    if len(ids) < FOLDS:
        raise InputError(f"--fold needs at least {FOLDS} cases for {FOLDS}-fold "
                         f"cross-validation; the source has {len(ids)}")
    return [{"train": sorted(map(str, f["train"])), "val": sorted(map(str, f["val"]))}
            for f in generate_crossval_split(ids, seed=seed, n_splits=FOLDS)]


def splits_for(single: dict, fold: int | str | None, seed: int,
               existing: list[dict] | None = None) -> list[dict]:
    """The splits file's content: [single] without --fold, else the five folds of all
    the cases of `single` (the convert step's split of every case). `existing`: the
    file's content now; a run with --fold and one without cannot share a work folder
    (the file holds either kind), so the other kind is refused, not overwritten."""
    wanted = 1 if fold is None else FOLDS
    if existing is not None and len(existing) != wanted:
        raise InputError(_other_kind(len(existing)))
    if fold is None:
        return [single]
    return cross_validation_folds(single["train"] + single["val"], seed)


def write_splits(path: Path, converted: Path, fold: int | str | None, seed: int) -> None:
    """The preprocessed dataset's splits file from the convert step's (`converted`)."""
    existing = json.loads(path.read_text()) if path.is_file() else None
    single = json.loads(Path(converted).read_text())[0]
    write_json_atomic(path, splits_for(single, fold, seed, existing))


def _other_kind(count: int) -> str:
    made = "with --fold" if count == FOLDS else "without --fold"
    return (f"this work folder's splits_final.json holds {count} split(s), written by a "
            f"run {made}; runs with and without --fold need separate --work folders")


def split_of(splits: list[dict], fold: int | str | None) -> dict[str, list[str]]:
    """The split a run trains on: the single split, fold K's, or every case for `all`."""
    if len(splits) != (1 if fold is None else FOLDS):
        raise InputError(_other_kind(len(splits)))
    if fold is None:
        return splits[0]
    if fold == ALL:
        return {"train": sorted(splits[0]["train"] + splits[0]["val"]), "val": []}
    return splits[fold]


def folder_name(base: str, fold: int | str | None) -> str:
    """`base` without --fold (the work folder as before), else `base_fold_K`."""
    return base if fold is None else f"{base}_fold_{fold}"


def text(fold: int | str | None) -> str:
    """The fold for the card and the plan."""
    if fold is None:
        return "none (one seeded split)"
    if fold == ALL:
        return f"all (every case trained on; {FOLDS}-fold splits in splits_final.json)"
    return f"{fold} of {FOLDS} (nnU-Net's cross-validation folds, splits_final.json)"
