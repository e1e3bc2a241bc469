import pandas as pd
import pytest

from cineflow.config import SplitConfig
from cineflow.data.splits import make_splits
from helpers import settings


def manifest(n_groups=30, clips=2):
    rows = []
    for g in range(n_groups):
        label = "REDUCED" if g % 3 == 0 else "NORMAL"
        for c in range(clips):
            rows.append(dict(video_id=f"g{g}_c{c}", group=f"g{g}", label=label, augment=""))
            if c == 0 and g % 2 == 0:
                rows.append(dict(video_id=f"g{g}_c{c}_hflip", group=f"g{g}", label=label, augment="hflip"))
    return pd.DataFrame(rows)


def test_no_group_crosses_partitions_and_every_video_is_tested_once():
    m = manifest()
    folds = make_splits(m, SplitConfig(mode="auto", folds=3, repeats=1, val_fraction=0.2), seed=0)
    tested = []
    for fold in folds:
        assert set(fold["partition"]) == {"train", "val", "test"}
        assert (fold.groupby("group")["partition"].nunique() == 1).all()
        augmented = fold["video_id"].str.endswith("_hflip")
        assert (fold.loc[augmented, "partition"] == "train").all()
        tested += fold.loc[fold["partition"] == "test", "video_id"].tolist()
        # stratified: both classes in every test partition
        assert fold.loc[fold["partition"] == "test", "label"].nunique() == 2
    originals = m.loc[m["augment"] == "", "video_id"]
    assert sorted(tested) == sorted(originals)


def test_same_config_gives_byte_identical_csvs(tmp_path):
    m = manifest()
    a = [f.to_csv(index=False) for f in make_splits(m, SplitConfig(mode="auto", folds=3, repeats=1, val_fraction=0.2), seed=5)]
    b = [f.to_csv(index=False) for f in make_splits(m.sample(frac=1, random_state=1).reset_index(drop=True),
                                                     SplitConfig(mode="auto", folds=3, repeats=1, val_fraction=0.2), seed=5)]
    assert a == b
    c = [f.to_csv(index=False) for f in make_splits(m, SplitConfig(mode="auto", folds=3, repeats=1, val_fraction=0.2), seed=6)]
    assert a != c


def test_repeats_are_named_seeded_and_leave_repeat_zero_as_it_was(tiny_dataset):
    from cineflow.data.splits import fold_names, parse_fold, repeat_seed, split_names

    manifest, _, folds = tiny_dataset
    assert fold_names(2, 3) == ["0", "1", "0_r1", "1_r1", "0_r2", "1_r2"]
    assert [parse_fold(n) for n in fold_names(2, 2)] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    cfg = settings(SplitConfig, "splits", folds=2, val_fraction=0.25, repeats=2)
    assert split_names(cfg, manifest) == ["0", "1", "0_r1", "1_r1"]
    assert repeat_seed(3, 0) == 3 and repeat_seed(3, 1) != repeat_seed(3, 2)
    again = make_splits(manifest, cfg, repeat_seed(3, 0))
    assert all(a.equals(b) for a, b in zip(again, folds))  # repeat 0 is the plain k-fold of `seed`
    other = make_splits(manifest, cfg, repeat_seed(3, 1))
    assert not all(a.equals(b) for a, b in zip(other, folds))
    fixed = manifest.assign(split=["train", "val", "test"] * (len(manifest) // 3) + ["train"] * (len(manifest) % 3))
    with pytest.raises(ValueError, match="splits.repeats > 1 repeats a k-fold"):
        split_names(settings(SplitConfig, "splits", mode="fixed", repeats=2), fixed)


def test_inner_folds_split_only_the_outer_folds_training_patients_by_group():
    from cineflow.data.splits import inner_fold_names, inner_seed, inner_splits, parse_fold

    m = manifest(n_groups=45)
    cfg = SplitConfig(mode="auto", folds=3, repeats=1, val_fraction=0.2)
    outer = make_splits(m, cfg, seed=0)[0]
    outer_test = set(outer.loc[outer["partition"] == "test", "group"])
    inner = inner_splits(outer, m, cfg, 2, inner_seed(0, 0))
    assert len(inner) == 2 and inner_seed(0, 0) != inner_seed(0, 1)
    tested = []
    for fold in inner:
        assert not set(fold["group"]) & outer_test  # the outer test patients never enter an inner fold
        assert (fold.groupby("group")["partition"].nunique() == 1).all()
        tested += fold.loc[fold["partition"] == "test", "video_id"].tolist()
    outside = outer.loc[(outer["partition"] != "test") & ~outer["video_id"].str.endswith("_hflip"), "video_id"]
    assert sorted(tested) == sorted(outside)  # every training original is held out once
    assert inner_fold_names(["0", "1"], 2) == ["0i0", "0i1", "1i0", "1i1"] and parse_fold("1i1") == (0, 1)
    assert parse_fold("2_r1") == (1, 2)
