import pandas as pd

from cineflow.config import SplitConfig
from cineflow.data.splits import make_splits


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
    folds = make_splits(m, SplitConfig(mode="auto", folds=3, val_fraction=0.2), seed=0)
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
    a = [f.to_csv(index=False) for f in make_splits(m, SplitConfig(mode="auto", folds=3, val_fraction=0.2), seed=5)]
    b = [f.to_csv(index=False) for f in make_splits(m.sample(frac=1, random_state=1).reset_index(drop=True),
                                                     SplitConfig(mode="auto", folds=3, val_fraction=0.2), seed=5)]
    assert a == b
    c = [f.to_csv(index=False) for f in make_splits(m, SplitConfig(mode="auto", folds=3, val_fraction=0.2), seed=6)]
    assert a != c
