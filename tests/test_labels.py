import pandas as pd
import pytest

from cineflow.labels import LabelsError, shard_of, validate

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
    (lambda t: t.assign(ef=[60.0, float("nan")]), "row 2: ef is empty/NaN"),
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
