"""A study's own table(s) as published -> cineflow's fields: column mapping and templates, label maps,
original vs augmented tags, DICOM-header and absent groups, joined tables, and the errors for each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cineflow.config import ConfigError, DataConfig, check_data, resolve
from cineflow.data.columns import raw_key
from cineflow.data.labels import LabelsError, validate
from cineflow.data.layouts import leakage_warning, load_layout
from helpers import settings
from helpers.media import write_dicom

ANN = "TYPE,VIDEO_NAME,SCAN,AUGMENT\nNORMAL,v1,S1,orig\nNORMAL,v1,S1,hflip\nANN_1_4,v2,S2,ORIG\nANN_1_4,v3,S2,\n"
ANN_COLUMNS = {"path": "frames/{VIDEO_NAME}_{AUGMENT}", "video_id": "{VIDEO_NAME}_{AUGMENT}", "label": "TYPE",
               "group": "SCAN", "augment": "AUGMENT"}


def table_config(tmp_path, text: str | list[str], **data) -> DataConfig:
    paths = []
    for i, body in enumerate([text] if isinstance(text, str) else text):
        (tmp_path / f"t{i}.csv").write_text(body)
        paths.append(str(tmp_path / f"t{i}.csv"))
    return settings(DataConfig, "data", layout="table", root=str(tmp_path),
                    labels=paths[0] if isinstance(text, str) else paths, **data)


def checked(cfg: DataConfig) -> pd.DataFrame:
    return validate(load_layout(cfg), cfg.classes, cfg.root, source="t", targets=cfg.targets,
                    originals=cfg.augment_original)


def test_columns_and_templates_map_a_study_table_and_orig_tags_are_originals(tmp_path):
    cfg = table_config(tmp_path, ANN, classes=["NORMAL", "ANN_1_4"], columns=ANN_COLUMNS)
    table = checked(cfg)
    assert table["path"].tolist() == ["frames/v1_orig", "frames/v1_hflip", "frames/v2_ORIG", "frames/v3_"]
    assert table["video_id"].tolist() == ["v1_orig", "v1_hflip", "v2_ORIG", "v3_"]
    assert table["label"].tolist() == ["NORMAL", "NORMAL", "ANN_1_4", "ANN_1_4"]
    assert table["group"].tolist() == ["S1", "S1", "S2", "S2"]
    assert table["augment"].tolist() == ["", "hflip", "", ""]  # orig (any case) and empty are originals


def test_a_bracketed_template_part_is_optional_as_the_ann_studys_augment_column(tmp_path):
    """S0's AUGMENT is "if available": with the column, [_{AUGMENT}] fills (empty cells drop it); without, it
    drops and every video is an original. A column outside brackets is still required."""
    columns = {"path": "frames/{VIDEO_NAME}[_{AUGMENT}]", "video_id": "{VIDEO_NAME}[_{AUGMENT}]", "label": "TYPE",
               "group": "SCAN", "augment": "[{AUGMENT}]"}
    table = checked(table_config(tmp_path, ANN, classes=["NORMAL", "ANN_1_4"], columns=columns))
    assert table["path"].tolist() == ["frames/v1_orig", "frames/v1_hflip", "frames/v2_ORIG", "frames/v3"]
    assert table["augment"].tolist() == ["", "hflip", "", ""]
    without = "TYPE,VIDEO_NAME,SCAN\nNORMAL,v1,S1\nANN_1_4,v2,S2\n"
    table = checked(table_config(tmp_path, without, classes=["NORMAL", "ANN_1_4"], columns=columns))
    assert table["path"].tolist() == ["frames/v1", "frames/v2"] and table["video_id"].tolist() == ["v1", "v2"]
    assert table["augment"].tolist() == ["", ""]
    with pytest.raises(LabelsError, match=r"template 'frames/\{VIDEO_NAME\}_\{AUGMENT\}' names column\(s\) "
                                          r"\['AUGMENT'\].*in \[brackets\] may be absent"):
        checked(table_config(tmp_path, without, classes=["NORMAL", "ANN_1_4"], columns=ANN_COLUMNS))


def test_augment_original_is_configurable(tmp_path):
    cfg = table_config(tmp_path, ANN, classes=["NORMAL", "ANN_1_4"], columns=ANN_COLUMNS, augment_original=["orig"])
    assert checked(cfg)["augment"].tolist() == ["", "hflip", "", ""]
    cfg = table_config(tmp_path, ANN, classes=["NORMAL", "ANN_1_4"], columns=ANN_COLUMNS, augment_original=["none"])
    assert checked(cfg)["augment"].tolist() == ["orig", "hflip", "ORIG", ""]


def test_label_map_takes_numbers_however_written(tmp_path):
    cfg = table_config(tmp_path, "video_path,quality_score\na.dcm,0\nb.dcm,1.0\nc.dcm,1\n", classes=["POOR", "GOOD"],
                       columns={"path": "video_path", "label": "quality_score", "group": None},
                       label_map={0: "POOR", 1: "GOOD"})
    table = checked(cfg)
    assert table["label"].tolist() == ["POOR", "GOOD", "GOOD"]
    assert table["group"].tolist() == ["a", "b", "c"]  # null: each video its own group
    assert raw_key(1.0) == raw_key("1") == raw_key(1) == "1" and raw_key(" x ") == "x"


def test_group_from_the_dicom_header(tmp_path):
    for name, patient in (("a", "P1"), ("b", "P1"), ("c", "P2")):
        write_dicom(tmp_path / f"{name}.dcm", np.zeros((2, 8, 8), np.uint8), patient_id=patient)
    cfg = table_config(tmp_path, "video_path,q\na.dcm,0\nb.dcm,1\nc.dcm,1\nmissing.dcm,0\n", classes=["0", "1"],
                       columns={"path": "video_path", "label": "q", "group": "dicom:PatientID"})
    table = checked(cfg)
    assert table["group"].tolist() == ["P1", "P1", "P2", "missing"]  # a missing file: quarantined by the cache
    write_dicom(tmp_path / "d.dcm", np.zeros((2, 8, 8), np.uint8), patient_id="")
    cfg = table_config(tmp_path, "video_path,q\na.dcm,0\nd.dcm,1\n", classes=["0", "1"],
                       columns={"path": "video_path", "label": "q", "group": "dicom:PatientID"})
    with pytest.raises(LabelsError, match=r"1 of 2 files have no PatientID \(empty or anonymised\), and 1 of them "
                                          "sit in data.root itself"):
        checked(cfg)


def test_anonymised_or_constant_patient_ids_fall_back_to_the_study_folders(tmp_path, capsys):
    """An export anonymised to one PatientID (or to none) would be one group that no split can divide: each
    file's folder (one per study) stands in for the patient."""
    files = {"S1/IM_0001.dcm": "ANONYMOUS", "S1/IM_0002.dcm": "ANONYMOUS", "S2/IM_0001.dcm": "ANONYMOUS"}
    for name, patient in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_dicom(tmp_path / name, np.zeros((2, 8, 8), np.uint8), patient_id=patient)
    table = "video_path,q\n" + "".join(f"{name},{i % 2}\n" for i, name in enumerate(files))
    columns = {"path": "video_path", "label": "q", "group": "dicom:PatientID"}
    checked_table = checked(table_config(tmp_path, table, classes=["0", "1"], columns=columns))
    assert checked_table["group"].tolist() == ["S1", "S1", "S2"]
    assert checked_table["video_id"].tolist() == ["S1__IM_0001", "S1__IM_0002", "S2__IM_0001"]
    assert "all 3 files have PatientID 'ANONYMOUS'; their folders stand in" in capsys.readouterr().err
    # group: folder says so directly; a file in data.root itself has no folder
    by_folder = checked(table_config(tmp_path, table, classes=["0", "1"], columns=dict(columns, group="folder")))
    assert by_folder["group"].tolist() == ["S1", "S1", "S2"]
    with pytest.raises(LabelsError, match=r"row 2 \(path 'loose.dcm'\): the file sits in data.root itself"):
        checked(table_config(tmp_path, "video_path,q\nS1/IM_0001.dcm,0\nloose.dcm,1\n", classes=["0", "1"],
                             columns=dict(columns, group="folder")))
    # one folder for all: no split could keep patients apart
    with pytest.raises(LabelsError, match=r"all 2 files have PatientID 'ANONYMOUS', and they sit in one folder"):
        checked(table_config(tmp_path, "video_path,q\nS1/IM_0001.dcm,0\nS1/IM_0002.dcm,1\n", classes=["0", "1"],
                             columns=columns))


def test_joined_tables_and_query(tmp_path):
    meta = "filename,project_id,nano\n1.mp4,P1,True\n2.mp4,P1,False\n3.mp4,P2,True\n"
    labels = "filename,stalled\n3.mp4,1\n1.mp4,0\n2.mp4,1\n"
    columns = {"path": "videos/{filename}", "label": "stalled", "group": "project_id"}
    cfg = table_config(tmp_path, [meta, labels], classes=["FLOWING", "STALLED"], join_on="filename",
                       columns=columns, label_map={0: "FLOWING", 1: "STALLED"})
    table = checked(cfg)
    assert table[["video_id", "label", "group"]].values.tolist() == [
        ["1", "FLOWING", "P1"], ["2", "STALLED", "P1"], ["3", "STALLED", "P2"]]
    cfg = table_config(tmp_path, [meta, labels], classes=["FLOWING", "STALLED"], join_on="filename",
                       columns=columns, label_map={0: "FLOWING", 1: "STALLED"}, query="nano == 'True'")
    assert checked(cfg)["video_id"].tolist() == ["1", "3"]


STALL = {"classes": ["FLOWING", "STALLED"], "join_on": "filename", "label_map": {0: "FLOWING", 1: "STALLED"},
         "columns": {"path": "videos/{filename}", "label": "stalled", "group": "project_id"}}


@pytest.mark.parametrize("tables, data, message", [
    (["filename,project_id\n1.mp4,P1\n2.mp4,P1\n", "filename,stalled\n1.mp4,0\n"], STALL,
     r"t0.csv: 1 filename\(s\) not in .*t1.csv, e.g. \['2.mp4'\]; every row must join"),
    (["filename,project_id\n1.mp4,P1\n", "filename,stalled\n1.mp4,0\n1.mp4,1\n"], STALL,
     r"t1.csv: filename \['1.mp4'\] appear\(s\) more than once"),
    (["file,project_id\n1.mp4,P1\n", "filename,stalled\n1.mp4,0\n"], STALL, r"t0.csv: no join column 'filename'"),
    (["filename,project_id\n1.mp4,P1\n", "filename,stalled\n1.mp4,2\n"], STALL,
     r"row 1: label value '2' is not in data.label_map"),
    (["filename,project_id\n1.mp4,P1\n", "filename,stalled\n1.mp4,0\n"],
     dict(STALL, columns={"path": "videos/{file}", "label": "stalled", "group": "project_id"}),
     r"data.columns.path template 'videos/\{file\}' names column\(s\) \['file'\], which the table does not have"),
    (["filename,project_id\n1.mp4,P1\n", "filename,stalled\n1.mp4,0\n"],
     dict(STALL, columns={"path": "videos/{filename}", "label": "stall", "group": "project_id"}),
     r"data.columns.label names column 'stall', which the table does not have; its columns are"),
])
def test_table_problems_name_the_file_the_key_and_the_fix(tmp_path, tables, data, message):
    with pytest.raises(LabelsError, match=message):
        checked(table_config(tmp_path, tables, **data))


def test_config_checks_and_the_leakage_warning(tmp_path):
    with pytest.raises(ConfigError, match="data.join_on is not set"):
        check_data(resolve({"data": {"layout": "table", "labels": ["a.csv", "b.csv"]}}))
    with pytest.raises(ConfigError, match="apply to layout 'table'"):
        check_data(resolve({"data": {"layout": "echonet", "columns": {"label": "x"}}}))
    assert "videos of one patient" in leakage_warning(settings(DataConfig, "data", layout="table", columns={"group": None}))
    assert leakage_warning(settings(DataConfig, "data", layout="table", columns={"group": "SCAN"})) is None
    assert "group_pattern" in leakage_warning(settings(DataConfig, "data", layout="imagefolder"))
    assert leakage_warning(settings(DataConfig, "data", layout="echonet")) is None


def test_subgroup_columns_are_mapped_like_any_field_and_a_missing_one_is_named(tmp_path):
    from cineflow.data.layouts import labels_table

    text = "file,y,pid,Sex,Vendor\na.avi,NORMAL,p1,F,GE\nb.avi,REDUCED,p2,,Philips\nc.avi,NORMAL,p3,M,GE\n"
    cfg = table_config(tmp_path, text, columns={"path": "file", "label": "y", "group": "pid", "sex": "Sex",
                                                "vendor": "Vendor"}, subgroups=["sex", "vendor"])
    table = labels_table(cfg)
    assert table["sex"].tolist() == ["F", "missing", "M"] and table["vendor"].tolist() == ["GE", "Philips", "GE"]
    cfg = table_config(tmp_path, text, columns={"path": "file", "label": "y", "group": "pid"}, subgroups=["site"])
    with pytest.raises(LabelsError, match=r"data.subgroups names column\(s\) \['site'\], which the table does not"):
        labels_table(cfg)


def test_a_continuous_score_is_cut_by_a_stated_threshold_or_kept_as_a_target(tmp_path):
    """The echo quality study allows a continuous quality_score: binarised at data.label_threshold, and the score
    itself can be a regression target beside it."""
    text = "video_path,quality_score\na.dcm,0.15\nb.dcm,0.5\nc.dcm,\"0,83\"\n"
    cfg = table_config(tmp_path, text, classes=["POOR", "GOOD"], label_threshold=0.5, targets=["quality_score"],
                       columns={"path": "video_path", "label": "quality_score", "quality_score": "quality_score",
                                "group": None})
    table = validate(load_layout(cfg), cfg.classes, cfg.root, source="t", targets=cfg.targets)
    assert table["label"].tolist() == ["POOR", "GOOD", "GOOD"]
    assert table["quality_score"].tolist() == [0.15, 0.5, 0.83]
    bad = table_config(tmp_path, "video_path,quality_score\na.dcm,high\n", classes=["POOR", "GOOD"],
                       label_threshold=0.5, columns={"path": "video_path", "label": "quality_score", "group": None})
    with pytest.raises(LabelsError, match="row 1: label 'high' is not a number"):
        load_layout(bad)
    with pytest.raises(ConfigError, match="data.label_threshold makes a score one of two classes"):
        check_data(resolve({"data": {"layout": "table", "label_threshold": 0.5, "label_map": {0: "POOR"}}}))
