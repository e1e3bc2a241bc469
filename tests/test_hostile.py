"""A hostile or careless labels table and config: nothing a user names can write outside results/. Ids and names
become file and folder names (cache, Grad-CAM, predictions, model folders), so they are refused at parse time,
before a job runs; paths must stay under the data root, through symlinks too."""

import os

import pandas as pd
import pytest

from cineflow.config import NAME_MAX, ConfigError, check_data, check_models, resolve
from cineflow.data.labels import LabelsError, validate
from cineflow.evaluate.predict import find_videos
from helpers import TINY
from helpers.workflow import copy_repo, snakemake, write_config

CLASSES = ["NORMAL", "REDUCED"]
HOSTILE = {
    "../../escape": "'..'",
    "a/b": "a '/'",
    "a\\b": "a '\\'",
    ".hidden": "starts with a dot",
    "x\0y": "NUL",
    "tab\there": "control character",
    "x" * (NAME_MAX + 1): f"at most {NAME_MAX}",
}


def table(video_id: str, path: str = "a.avi") -> pd.DataFrame:
    return pd.DataFrame({"path": [path, "b.avi"], "label": CLASSES, "group": ["p1", "p2"],
                         "video_id": [video_id, "b"]})


@pytest.mark.parametrize("video_id", list(HOSTILE), ids=range(len(HOSTILE)))
def test_ids_that_would_name_files_outside_results_are_refused(tmp_path, video_id):
    with pytest.raises(LabelsError, match=r"row 1 \(path 'a.avi'\): video_id .*cannot name files") as error:
        validate(table(video_id), CLASSES, tmp_path)
    assert HOSTILE[video_id] in str(error.value)
    frame = tmp_path / "new.csv"
    table(video_id).to_csv(frame, index=False)
    if "\0" not in video_id:  # a CSV cannot carry NUL
        with pytest.raises(ConfigError, match="row 1 video_id"):
            find_videos(frame)  # cineflow-predict's tables too


def test_ids_with_spaces_and_other_printable_characters_are_fine(tmp_path):
    ids = validate(table("patient 7 (apical 4-chamber) é"), CLASSES, tmp_path)["video_id"]
    assert ids.tolist() == ["patient 7 (apical 4-chamber) é", "b"]


def test_paths_that_leave_the_data_root_are_refused_also_through_a_symlink(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.avi").write_bytes(b"x")
    os.symlink(outside, root / "link")
    for path in ("link/secret.avi", str(outside / "secret.avi"), "../elsewhere/secret.avi"):
        with pytest.raises(LabelsError, match="row 1 .*leaves the data root"):
            validate(table("a", path), CLASSES, root)
    os.symlink(root / "b.avi", root / "inside.avi")  # a link that stays inside is fine
    assert validate(table("a", "inside.avi"), CLASSES, root)["path"][0] == "inside.avi"


@pytest.mark.parametrize("section, name, where", [
    ("models", "../m", "models/../m"),
    ("models", ".m", "models/.m"),
    ("classes", "A/B", r"data.classes\[1\]"),
    ("external", "..", "external/.."),
    ("external", "site\\c", r"external/site\\c"),
])
def test_model_class_and_external_names_are_checked(section, name, where):
    config = resolve({"models": {"tiny": {}}})
    if section == "models":
        config["models"][name] = config["models"].pop("tiny")
    elif section == "classes":
        config["data"]["classes"] = ["NORMAL", name]
    else:
        config["external"] = {name: {"root": "x"}}
    with pytest.raises(ConfigError, match=rf"{where}: .*cannot name files"):
        check_models(config)
        check_data(config)


@pytest.mark.workflow
def test_the_workflow_refuses_a_hostile_table_and_model_name_at_parse_time(tmp_path):
    """`snakemake -n` stops before any job, naming the row or key: nothing is planned, nothing written."""
    work = copy_repo(tmp_path / "work")
    data = work / "data"
    data.mkdir()
    for name in ("a.avi", "b.avi"):
        (data / name).write_bytes(b"")
    table("../../escape").to_csv(data / "labels.csv", index=False)
    config = dict(TINY, data={"layout": "table", "root": "data", "labels": "data/labels.csv"})
    write_config(work, config)
    dry = snakemake(work, "-n", check=False)
    assert dry.returncode != 0 and "video_id '../../escape' cannot name files" in dry.stdout + dry.stderr
    write_config(work, dict(TINY, models={"../out": TINY["models"]["tiny"]}))
    dry = snakemake(work, "-n", check=False)
    assert dry.returncode != 0 and "models/../out" in dry.stdout + dry.stderr
    assert not (work / "results").exists() and not (tmp_path / "escape").exists()


def test_a_served_request_reads_only_inside_its_folder_and_answers_strict_json(tmp_path):
    """Issue 45, cases 8, 13 and 15 without a server: a request without `path`, or naming a file outside the
    serving folder (also through a symlink), is a bad request whose message MLflow sends alone; ids are the files'
    names; NaN goes out as null."""
    import json
    import math

    from mlflow.exceptions import MlflowException

    from cineflow.deploy.pyfunc import request_videos, strict_json

    root = (tmp_path / "served").resolve()
    root.mkdir()
    (tmp_path / "secret.avi").write_bytes(b"x")
    os.symlink(tmp_path / "secret.avi", root / "link.avi")
    with pytest.raises(MlflowException, match="needs a `path` column") as error:
        request_videos(pd.DataFrame({"file": ["a.avi"]}), root)
    assert error.value.get_http_status_code() == 400 and "Traceback" not in json.dumps(error.value.serialize_as_json())
    for path in (str(tmp_path / "secret.avi"), "../secret.avi", "link.avi"):
        with pytest.raises(MlflowException, match="outside the folder this server reads"):
            request_videos(pd.DataFrame({"path": [path]}), root)
    videos = request_videos(pd.DataFrame({"path": ["a/clip 1.avi", "b/clip 1.avi", "c.dcm"]}), root)
    assert videos["video_id"].tolist() == ["clip 1.avi", "clip 1.avi (2)", "c.dcm"]
    answer = strict_json(pd.DataFrame({"video_id": ["a"], "uncertainty": [math.nan], "score": [0.25]}))
    assert json.loads(json.dumps(answer.to_dict(orient="records"), allow_nan=False)) == [
        {"video_id": "a", "uncertainty": None, "score": 0.25}]


def test_the_app_listens_on_this_machine_unless_told_otherwise(tmp_path, monkeypatch, capsys):
    """Case 14: Streamlit's own default is every interface; cineflow-app passes 127.0.0.1, and warns for any
    other address."""
    import sys

    from streamlit.web import cli as streamlit_cli

    from cineflow import cli

    monkeypatch.setattr("cineflow.deploy.bundle.open_bundle", lambda *a: None)
    seen = []
    monkeypatch.setattr(streamlit_cli, "main", lambda: seen.append(list(sys.argv)) or 0)
    assert cli.app_main(["--bundle", str(tmp_path)]) == 0
    assert seen[0][seen[0].index("--server.address") + 1] == "127.0.0.1"
    assert "WARNING" not in capsys.readouterr().err
    cli.app_main(["--bundle", str(tmp_path), "--address", "0.0.0.0"])
    assert seen[1][seen[1].index("--server.address") + 1] == "0.0.0.0"
    assert "no login" in capsys.readouterr().err
    assert cli.is_loopback("127.0.0.2") and cli.is_loopback("::1") and cli.is_loopback("localhost")
    assert not cli.is_loopback("192.168.1.4") and not cli.is_loopback("myhost")


@pytest.mark.parametrize("out, message", [
    ("victim.avi", "a predictions file is named .csv or .parquet"),
    ("folder", "is a folder; name a file in it"),
    ("notes.txt/p.csv", "notes.txt is a file, not a folder"),
])
def test_an_unusable_out_is_refused_before_anything_is_read_or_written(tmp_path, out, message):
    """Case 7 and 10: --out that would overwrite a video, is a folder, or lies under a file."""
    from cineflow.cli import checked_out

    (tmp_path / "victim.avi").write_bytes(b"a video")
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("notes")
    with pytest.raises(SystemExit, match=message):
        checked_out(str(tmp_path / out))
    assert (tmp_path / "victim.avi").read_bytes() == b"a video" and (tmp_path / "notes.txt").read_text() == "notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "notes.txt", "victim.avi"]
    assert checked_out(str(tmp_path / "new" / "p.parquet")).parent.is_dir()
