import pandas as pd
import pytest

from cineflow.data.labels import LabelsError, read_table, shard_of, validate

CLASSES = ["NORMAL", "REDUCED"]


def good() -> pd.DataFrame:
    return pd.DataFrame({"path": ["a.avi", "b.avi"], "label": ["NORMAL", "REDUCED"], "group": ["p1", "p2"],
                         "ef": [60.0, 30.0]})


def test_valid_table_gets_ids_and_augment(tmp_path):
    table = validate(good(), CLASSES, tmp_path)
    assert table["video_id"].tolist() == ["a", "b"]
    assert table["augment"].tolist() == ["", ""]


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.drop(columns="group"), "missing column"),
    (lambda t: t.assign(site=1), "unknown column(s) ['site']"),
    (lambda t: t.assign(path=["a.avi", "sub/a.avi"]), "duplicate video_id ['a']"),
    (lambda t: t.assign(label=["NORMAL", ""]), "row 2 (path 'b.avi'): missing label"),
    (lambda t: t.assign(label=["NORMAL", "MILD"]), "label 'MILD' is not among data.classes"),
    (lambda t: t.assign(group=["p1", ""]), "row 2 (path 'b.avi'): missing group"),
    (lambda t: t.assign(path=["a.avi", "../../etc/b.avi"]), "leaves the data root"),
    (lambda t: t.assign(ef=[60.0, float("nan")]), "row 2 (path 'b.avi'): ef is empty, NaN"),
])
def test_table_problems_name_the_row_and_the_fix(tmp_path, mutate, message):
    with pytest.raises(LabelsError) as err:
        validate(mutate(good()), CLASSES, tmp_path, source="labels.csv")
    assert message in str(err.value)
    assert "labels.csv" in str(err.value)


def test_shards_are_stable_and_spread():
    shards = [shard_of(f"video_{i}", 4) for i in range(400)]
    assert shards == [shard_of(f"video_{i}", 4) for i in range(400)]
    assert set(shards) == {0, 1, 2, 3}


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.assign(split=["train", "holdout"]), "split 'holdout' is not one of ['train', 'val', 'test']"),
    (lambda t: t.assign(split=["train", ""]), "row 2: split is empty while other rows have one"),
    (lambda t: t.assign(group=["p1", "p1"], split=["train", "test"]), "group 'p1' appears in splits"),
    (lambda t: t.assign(ef=[60.0, "n/a"]), "ef is empty, NaN or not a number ('n/a')"),
    (lambda t: t.assign(edv=[1.0, 2.0]), "unknown column(s) ['edv']"),
])
def test_split_and_target_problems(tmp_path, mutate, message):
    with pytest.raises(LabelsError) as err:
        validate(mutate(good()), CLASSES, tmp_path, source="labels.csv")
    assert message in str(err.value)


def test_csv_table_reads_targets_as_numbers_and_text_as_text(tmp_path):
    (tmp_path / "labels.csv").write_text("path,label,group,ef,split\n001.avi,NORMAL,007,61.5,TRAIN\n"
                                         "002.avi,REDUCED,008,30,test\n")
    table = validate(read_table(tmp_path / "labels.csv"), CLASSES, tmp_path)
    assert table["group"].tolist() == ["007", "008"] and table["video_id"].tolist() == ["001", "002"]
    assert table["ef"].tolist() == [61.5, 30.0] and table["split"].tolist() == ["train", "test"]
