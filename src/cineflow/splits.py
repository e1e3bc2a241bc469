"""Leakage-safe cross-validation: no group crosses partitions; augmented copies only train."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from .config import SplitConfig

SPLIT_COLUMNS = ["video_id", "group", "label", "partition"]


def make_splits(manifest: pd.DataFrame, cfg: SplitConfig, seed: int) -> list[pd.DataFrame]:
    """One table per fold: test = fold k of StratifiedGroupKFold, val carved from the rest by group."""
    originals = manifest[manifest["augment"] == ""].reset_index(drop=True)
    n_groups = originals["group"].nunique()
    if n_groups < cfg.folds + 1:
        raise ValueError(f"{n_groups} groups cannot make {cfg.folds} folds plus a val partition; "
                         "lower splits.folds or add patients")
    outer = StratifiedGroupKFold(n_splits=cfg.folds, shuffle=True, random_state=seed)
    folds = []
    for k, (rest_idx, test_idx) in enumerate(outer.split(originals, originals["label"], originals["group"])):
        rest = originals.iloc[rest_idx]
        n_inner = max(2, round(1 / cfg.val_fraction))
        inner = StratifiedGroupKFold(n_splits=min(n_inner, rest["group"].nunique()), shuffle=True,
                                     random_state=seed + 1 + k)
        _, val_idx = next(inner.split(rest, rest["label"], rest["group"]))
        test_groups = set(originals["group"].iloc[test_idx])
        val_groups = set(rest["group"].iloc[val_idx])
        partition = np.where(manifest["group"].isin(test_groups), "test",
                             np.where(manifest["group"].isin(val_groups), "val", "train"))
        table = manifest.assign(partition=partition)
        table = table[(table["partition"] == "train") | (table["augment"] == "")]
        folds.append(table[SPLIT_COLUMNS].sort_values("video_id").reset_index(drop=True))
    return folds
