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
    (lambda t: t.assign(video_id=["a", "a"]), "duplicate video_id ['a']"),
    (lambda t: t.assign(path=["a.avi", "a.avi"]), "duplicate video_id ['a']"),
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


def test_repeated_file_names_get_ids_from_their_paths_and_unique_stems_keep_theirs(tmp_path):
    """A DICOM export names files IM_0001.dcm in every study folder: ids come from the paths, the same every run."""
    export = pd.DataFrame({"path": ["Study 1/IM_0001.dcm", "Study 1/IM_0002.dcm", "Study 2/IM_0001.dcm"],
                           "label": ["NORMAL", "NORMAL", "REDUCED"], "group": ["p1", "p1", "p2"]})
    ids = validate(export, CLASSES, tmp_path)["video_id"].tolist()
    assert ids == ["Study 1__IM_0001", "Study 1__IM_0002", "Study 2__IM_0001"]
    assert validate(good(), CLASSES, tmp_path)["video_id"].tolist() == ["a", "b"]  # unique stems: unchanged
    deep = "/".join(["a-rather-long-folder-name"] * 8) + "/IM_0001.dcm"
    long = validate(export.assign(path=[deep, deep.replace("IM_0001", "IM_0002"), "x/IM_0001.dcm"]), CLASSES,
                    tmp_path)["video_id"]
    assert long.str.len().max() <= 128 and long.is_unique and long[0].endswith("__IM_0001")


def test_tables_as_clinicians_save_them(tmp_path):
    """Excel's semicolon CSV in cp1252 with a padded header, a BOM, tabs, Excel's UTF-16 "Unicode Text", a decimal
    comma and .xlsx all read alike."""
    rows = [("a.avi", "NORMAL", "Müller", "61,5"), ("b.avi", "REDUCED", "Øster", "30")]
    expected = {"group": ["Müller", "Øster"], "ef": [61.5, 30.0]}
    (tmp_path / "excel.csv").write_bytes(("path ; label;group ;ef\r\n" + "".join(
        ";".join(r) + "\r\n" for r in rows)).encode("cp1252"))
    (tmp_path / "bom.csv").write_bytes(("path,label,group,ef\n" + "".join(
        ",".join(r[:3]) + f",{r[3].replace(',', '.')}\n" for r in rows)).encode("utf-8-sig"))
    (tmp_path / "tabs.tsv").write_text("path\tlabel\tgroup\tef\n" + "".join("\t".join(r) + "\n" for r in rows))
    (tmp_path / "unicode.txt").write_bytes(("path\tlabel\tgroup\tef\r\n" + "".join(
        "\t".join(r) + "\r\n" for r in rows)).encode("utf-16"))
    pd.DataFrame(rows, columns=["path", "label", "group", "ef"]).to_excel(tmp_path / "book.xlsx", index=False)
    for name in ("excel.csv", "bom.csv", "tabs.tsv", "unicode.txt", "book.xlsx"):
        table = validate(read_table(tmp_path / name), CLASSES, tmp_path)
        assert {k: table[k].tolist() for k in expected} == expected, name


def test_a_table_that_cannot_be_read_says_why(tmp_path):
    # rows with a varying number of semicolons: no separator fits every line, and a comma splits nothing
    (tmp_path / "ragged.csv").write_text("path;label;group\na.avi;NORMAL;p1;seen twice;ok\nb.avi;REDUCED\n")
    with pytest.raises(LabelsError, match=r"ragged.csv: the header reads as one column \('path;label;group'\), "
                                          "which holds a semicolon"):
        read_table(tmp_path / "ragged.csv")
    (tmp_path / "binary.csv").write_bytes(b"path,label\n\x81\x8d.avi,NORMAL\n")
    with pytest.raises(LabelsError, match=r"binary.csv: not UTF-8 and not cp1252 \(byte 0x81 at offset 11"):
        read_table(tmp_path / "binary.csv")
