"""Dataset layouts: EchoNet-Dynamic as published, ImageFolder (with and without split folders), a table."""

import numpy as np
import pandas as pd
import pytest

from cineflow.config import DataConfig, SplitConfig
from cineflow.data.labels import LabelsError, n_folds, validate
from cineflow.data.layouts import load_layout
from cineflow.data.splits import make_splits
from helpers import settings
from helpers.media import gradient_clip, write_dicom, write_image

CLASSES = ["NORMAL", "REDUCED"]


def echonet_folder(root, n=12):
    """FileList.csv with the published columns (FileName without extension) beside Videos/*.avi."""
    rows = []
    for i in range(n):
        rows.append({"FileName": f"0X{i:04X}", "EF": 25.0 + 5 * i, "ESV": 40.0 + i, "EDV": 90.0 + i,
                     "FrameHeight": 112, "FrameWidth": 112, "FPS": 50, "NumberOfFrames": 30,
                     "Split": ["TRAIN", "TRAIN", "VAL", "TEST"][i % 4]})
    (root / "Videos").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "FileList.csv", index=False)
    return pd.DataFrame(rows)


def test_echonet_filelist_becomes_the_internal_table(tmp_path):
    filelist = echonet_folder(tmp_path)
    cfg = settings(DataConfig, "data", layout="echonet", root=str(tmp_path), classes=CLASSES, ef_threshold=50,
                   targets=["ef", "esv", "edv"])
    table = validate(load_layout(cfg), CLASSES, tmp_path, targets=cfg.targets)
    assert table["path"][0] == "Videos/0X0000.avi" and table["video_id"][0] == "0X0000"
    assert table["ef"].tolist() == filelist["EF"].tolist() and table["edv"][3] == 93.0
    reduced = table.loc[table["label"] == "REDUCED", "ef"]
    assert (reduced < 50).all() and (table.loc[table["label"] == "NORMAL", "ef"] >= 50).all()
    assert table["split"].tolist()[:4] == ["train", "train", "val", "test"]
    # the published split is honoured as one fixed fold (auto), or ignored for k-fold
    assert n_folds(settings(SplitConfig, "splits"), table) == 1
    assert n_folds(settings(SplitConfig, "splits", mode="kfold", folds=3), table) == 3
    [fold] = make_splits(table.assign(augment=""), settings(SplitConfig, "splits"), seed=0)
    assert dict(zip(fold["video_id"], fold["partition"]))["0X0003"] == "test"


def test_echonet_without_its_filelist_says_where_to_point(tmp_path):
    with pytest.raises(LabelsError, match="FileList.csv does not exist"):
        load_layout(settings(DataConfig, "data", layout="echonet", root=str(tmp_path)))


def test_imagefolder_with_and_without_split_folders(tmp_path):
    image = gradient_clip(1, 16)[0]
    for cls in CLASSES:
        for k in range(3):
            write_image(tmp_path / "flat" / cls / f"person{k}_view{k % 2}.png", image)
    write_dicom(tmp_path / "flat" / "NORMAL" / "person9_view0.dcm", gradient_clip(1, 16, rgb=False))
    (tmp_path / "flat" / "NORMAL" / "notes.txt").write_text("not an image")
    cfg = settings(DataConfig, "data", layout="imagefolder", root=str(tmp_path / "flat"), classes=CLASSES,
                   group_pattern=r"(person\d+)_")
    table = validate(load_layout(cfg), CLASSES, tmp_path / "flat")
    assert len(table) == 7 and set(table["label"]) == set(CLASSES)
    assert table.loc[table["path"] == "NORMAL/person1_view1.png", "group"].item() == "person1"
    assert (table["split"] == "").all()

    for split in ("train", "val", "test"):
        for cls in CLASSES:
            write_image(tmp_path / "split" / split / cls / f"{split}_{cls}.png", image)
    cfg = settings(DataConfig, "data", layout="imagefolder", root=str(tmp_path / "split"), classes=CLASSES)
    table = validate(load_layout(cfg), CLASSES, tmp_path / "split")
    assert sorted(table["split"].unique()) == ["test", "train", "val"]
    assert table.loc[table["path"] == "val/REDUCED/val_REDUCED.png", "label"].item() == "REDUCED"
    assert n_folds(settings(SplitConfig, "splits"), table) == 1


def test_imagefolder_class_folder_not_in_the_config(tmp_path):
    write_image(tmp_path / "PNEUMONIA" / "a.png", gradient_clip(1, 8)[0])
    with pytest.raises(LabelsError, match=r"\['PNEUMONIA'\], are not among data.classes"):
        load_layout(settings(DataConfig, "data", layout="imagefolder", root=str(tmp_path), classes=CLASSES))
    write_image(tmp_path / "NORMAL" / "b.png", gradient_clip(1, 8)[0])
    with pytest.raises(LabelsError, match="folder 'PNEUMONIA' is not among data.classes"):
        load_layout(settings(DataConfig, "data", layout="imagefolder", root=str(tmp_path), classes=CLASSES))


def test_imagefolder_finds_split_folders_one_level_deeper_in_any_case(tmp_path):
    """A Kaggle archive unpacks into a folder of its own, its split folders named Train, validation, TEST."""
    image = gradient_clip(1, 8)[0]
    for split in ("Train", "validation", "TEST"):
        for cls in CLASSES:
            write_image(tmp_path / "archive" / "Lung X-Ray Image" / split / cls / f"{cls}_{split}.png", image)
    table = validate(load_layout(settings(DataConfig, "data", layout="imagefolder", root=str(tmp_path),
                                          classes=CLASSES)), CLASSES, tmp_path)
    assert sorted(table["split"].unique()) == ["test", "train", "val"] and len(table) == 6
    assert "archive/Lung X-Ray Image/validation/REDUCED/REDUCED_validation.png" in set(table["path"])
    assert table["video_id"].str.startswith(("Train__", "validation__", "TEST__")).all()
    for other in ("a", "b"):  # two candidate folders at one depth: which one is meant must be said
        for cls in CLASSES:
            write_image(tmp_path / "two" / other / cls / "x.png", image)
    with pytest.raises(LabelsError, match="2 folders hold the class or split folders .* set data.folder"):
        load_layout(settings(DataConfig, "data", layout="imagefolder", root=str(tmp_path / "two"), classes=CLASSES))


def test_generic_table_with_targets_and_a_fixed_split(tmp_path):
    table = pd.DataFrame({"path": [f"v{i}.avi" for i in range(6)], "label": ["NORMAL", "REDUCED"] * 3,
                          "group": ["a", "b", "c", "d", "e", "f"], "ef": np.arange(6.0), "edv": np.arange(6.0),
                          "split": ["TRAIN", "train", "val", "val", "test", "test"]})
    table.to_parquet(tmp_path / "labels.parquet")
    cfg = settings(DataConfig, "data", layout="table", root=str(tmp_path), labels=str(tmp_path / "labels.parquet"),
                   targets=["ef", "edv"])
    checked = validate(load_layout(cfg), CLASSES, tmp_path, targets=cfg.targets)
    assert checked["split"].tolist()[:2] == ["train", "train"] and checked["edv"].dtype == float
    with pytest.raises(LabelsError, match="splits.mode is 'fixed' but the table has no split column"):
        n_folds(settings(SplitConfig, "splits", mode="fixed"), checked.assign(split=""))
