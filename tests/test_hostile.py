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
