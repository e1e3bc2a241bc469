"""Leakage-safe cross-validation: no group crosses partitions; augmented copies only train."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cineflow.config import SplitConfig
from cineflow.data.labels import n_folds, uses_fixed_split

SPLIT_COLUMNS = ["video_id", "group", "label", "partition"]
REPEAT_MARK = "_r"  # fold k of repeat r > 0 is named "<k>_r<r>" in every path; repeat 0 is plain "<k>"
INNER_MARK = "i"  # inner fold j of outer fold k (nested selection) is "<k>i<j>"


def fold_names(folds: int, repeats: int = 1) -> list[str]:
    """The fold names of `repeats` repeats of a `folds`-fold cross-validation, repeat by repeat."""
    return [f"{k}" if r == 0 else f"{k}{REPEAT_MARK}{r}" for r in range(repeats) for k in range(folds)]


def parse_fold(name: str | int) -> tuple[int, int]:
    """(repeat, fold) of a fold name; an inner fold ("<k>i<j>", nested selection) is of its outer fold k."""
    fold, _, repeat = str(name).split(INNER_MARK)[0].partition(REPEAT_MARK)
    return int(repeat or 0), int(fold)


def inner_fold_names(outer: list[str], inner_folds: int) -> list[str]:
    """The inner folds of each outer fold, for nested selection: "<outer>i<j>"."""
    return [f"{k}{INNER_MARK}{j}" for k in outer for j in range(inner_folds)]


def inner_splits(split: pd.DataFrame, manifest: pd.DataFrame, cfg: SplitConfig, inner_folds: int, seed: int
                 ) -> list[pd.DataFrame]:
    """The inner folds of one outer fold: its train and val videos, never its test ones, split again into
    train/val/test as `make_splits` splits all videos (by group, stratified); each inner test partition is
    where the settings of a sweep are compared.

    Args:
        split: the outer fold's split table.
        manifest: the cached videos.
        cfg: the splits section (its val_fraction).
        inner_folds: sweep.inner_folds.
        seed: the inner folds' seed (inner_seed).
    """
    outside = split.loc[split["partition"] != "test", "video_id"]
    rows = manifest[manifest["video_id"].isin(outside)]
    return make_splits(rows, SplitConfig(mode="kfold", folds=inner_folds, repeats=1, val_fraction=cfg.val_fraction),
                       seed)


def inner_seed(seed: int, outer: int) -> int:
    """The seed of one outer fold's inner folds, drawn from (seed, outer fold)."""
    return int(np.random.SeedSequence([seed, 104729, outer]).generate_state(1)[0]) % 2**31


def repeat_seed(seed: int, repeat: int) -> int:
    """The split seed of a repeat: `seed` itself for repeat 0 (so one repeat splits as before), a seed drawn
    from (seed, repeat) for the others."""
    return seed if repeat == 0 else int(np.random.SeedSequence([seed, repeat]).generate_state(1)[0]) % 2**31


def split_names(cfg: SplitConfig, table: pd.DataFrame) -> list[str]:
    """Every fold name of the workflow: one fold for a table's own split, else splits.folds per repeat."""
    if cfg.repeats > 1 and uses_fixed_split(cfg, table):
        raise ValueError("splits.repeats > 1 repeats a k-fold cross-validation, but the table's own split column "
                         "is the one fold; set splits.mode: kfold or splits.repeats: 1")
    return fold_names(n_folds(cfg, table), cfg.repeats)


def make_splits(manifest: pd.DataFrame, cfg: SplitConfig, seed: int) -> list[pd.DataFrame]:
    """One table per fold: test = fold k of StratifiedGroupKFold, val carved from the rest by group.

    With a fixed split (splits.mode), the table's split column is the one fold.
    """
    from sklearn.model_selection import StratifiedGroupKFold  # here: the workflow's parse imports this module

    manifest = manifest.sort_values("video_id").reset_index(drop=True)  # row order must not matter
    if uses_fixed_split(cfg, manifest):
        table = manifest.assign(partition=manifest["split"])
        table = table[(table["partition"] == "train") | (table["augment"] == "")]
        missing = {"train", "val", "test"} - set(table["partition"])
        if missing:
            raise ValueError(f"the fixed split has no {sorted(missing)} videos left after quarantine; "
                             "add them or set splits.mode: kfold")
        return [table[SPLIT_COLUMNS].reset_index(drop=True)]
    originals = manifest[manifest["augment"] == ""].reset_index(drop=True)
    n_groups = originals["group"].nunique()
    if n_groups < cfg.folds + 1:
        raise ValueError(f"{n_groups} groups cannot make {cfg.folds} folds plus a val partition; "
                         "lower splits.folds or add patients")

    outer = StratifiedGroupKFold(n_splits=cfg.folds, shuffle=True, random_state=seed)
    folds = []
    for k, (rest_idx, test_idx) in enumerate(outer.split(originals, originals["label"], originals["group"])):
        rest = originals.iloc[rest_idx]
        smallest_class = int(rest.groupby("label")["group"].nunique().min())
        if smallest_class < 2:
            raise ValueError(f"fold {k}: a class has fewer than 2 groups outside the test partition, so no "
                             "val partition can hold it; add patients or lower splits.folds")
        n_inner = min(max(2, round(1 / cfg.val_fraction)), smallest_class)
        inner = StratifiedGroupKFold(n_splits=n_inner, shuffle=True, random_state=seed + 1 + k)
        _, val_idx = next(inner.split(rest, rest["label"], rest["group"]))
        test_groups = set(originals["group"].iloc[test_idx])
        val_groups = set(rest["group"].iloc[val_idx])
        partition = np.where(manifest["group"].isin(test_groups), "test",
                             np.where(manifest["group"].isin(val_groups), "val", "train"))
        table = manifest.assign(partition=partition)
        table = table[(table["partition"] == "train") | (table["augment"] == "")]
        folds.append(table[SPLIT_COLUMNS].sort_values("video_id").reset_index(drop=True))
    return folds


def fold_rows(split: pd.DataFrame, manifest: pd.DataFrame, partition: str) -> pd.DataFrame:
    """Manifest rows of one partition of a fold's split, in the split's order (training and evaluation
    both read their videos through this)."""
    ids = split.loc[split["partition"] == partition, ["video_id"]]
    return ids.merge(manifest, on="video_id", how="left", validate="one_to_one").reset_index(drop=True)
