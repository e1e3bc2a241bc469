"""Finding new videos for `predict`: folders, tables, and tables that cannot work."""

from dataclasses import asdict

import pandas as pd
import pytest

from cineflow.config import CacheConfig, ConfigError
from cineflow.data.video_io import write_avi
from cineflow.evaluate.predict import find_videos, prepare
from helpers import settings
from helpers.media import gradient_clip, write_image


def test_a_folder_yields_every_file_a_reader_knows(tmp_path):
    for name in ("a.avi", "sub/b.dcm", "sub/c.png", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    videos, root = find_videos(tmp_path)
    assert root == tmp_path
    assert videos.to_dict("list") == {"video_id": ["a", "sub__b", "sub__c"], "path": ["a.avi", "sub/b.dcm", "sub/c.png"]}


def test_a_table_needs_paths_and_unique_ids(tmp_path):
    pd.DataFrame({"path": ["x/1.avi", "2.avi"]}).to_csv(tmp_path / "t.csv", index=False)
    videos, root = find_videos(tmp_path / "t.csv")
    assert root == tmp_path and videos["video_id"].tolist() == ["x__1", "2"]
    pd.DataFrame({"file": ["1.avi"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ConfigError, match=r"bad.csv: a prediction table needs a `path` column"):
        find_videos(tmp_path / "bad.csv")
    pd.DataFrame({"path": ["1.avi", "2.avi"], "video_id": ["v", "v"]}).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(ConfigError, match=r"dup.csv: duplicate video_id \['v'\]"):
        find_videos(tmp_path / "dup.csv")
    with pytest.raises(ConfigError, match="neither a folder nor"):
        find_videos(tmp_path / "missing.avi")


def test_a_skipped_file_is_explained_in_terms_of_its_folder_or_its_table(tmp_path):
    """A still image given to video models: a folder's user moves the file, a table's user removes its row;
    neither can change cache.media, which is the trained models' setting."""
    write_image(tmp_path / "xray.png", gradient_clip(1, 32)[0])
    write_avi(tmp_path / "cine.avi", gradient_clip(5, 32), 25)
    preprocess = asdict(settings(CacheConfig, "cache", media="video", size=16))
    videos, root = find_videos(tmp_path)
    rows, status = prepare(videos, root, preprocess, tmp_path / "work", listed="folder")
    reasons = status.set_index("video_id")["reason"]
    assert rows["video_id"].tolist() == ["cine"] and reasons["cine"] == ""
    assert rows["source"].tolist() == [str(tmp_path / "cine.avi")]  # Grad-CAMs are drawn on it
    assert reasons["xray"] == ("a still image (1 frame) where cache.media is 'video'; move the file out of the folder "
                               "(cache.media is the trained models' setting)")
    _, status = prepare(videos, root, preprocess, tmp_path / "work2", listed="table")
    assert "'video'; remove its row from the table (cache.media" in status["reason"][1]


def test_predictions_combine_per_patient_by_a_column_of_the_input_table(tmp_path):
    import numpy as np

    from cineflow.cli import unit_column
    from cineflow.evaluate.predict import aggregate_predictions
    from cineflow.tasks import Binary

    pd.DataFrame({"path": ["a/1.avi", "a/2.avi", "b/1.avi", "c.avi"], "patient": ["p1", "p1", "p2", None]}).to_csv(
        tmp_path / "t.csv", index=False)
    units = unit_column(str(tmp_path / "t.csv"), "patient")
    assert units[["a__1", "a__2", "b__1"]].tolist() == ["p1", "p1", "p2"] and pd.isna(units["c"])
    with pytest.raises(SystemExit, match="has no column 'study'"):
        unit_column(str(tmp_path / "t.csv"), "study")
    score = np.array([0.2, 0.9, 0.4, 0.7])
    table = pd.DataFrame({"video_id": ["a__1", "a__2", "b__1", "c"], "status": ["ok", "ok", "ok", "ok"],
                          "score_NORMAL": 1 - score, "score_REDUCED": score, "threshold": 0.5})
    out = aggregate_predictions(Binary(("NORMAL", "REDUCED")), table, units, "max")
    assert out["patient"].tolist() == ["p1", "p2"] and out["n_videos"].tolist() == [2, 1]  # c: no patient
    assert out["score_REDUCED"].tolist() == [0.9, 0.4] and out["prediction"].tolist() == ["REDUCED", "NORMAL"]
    assert aggregate_predictions(Binary(("NORMAL", "REDUCED")), table, units, "mean")["score_REDUCED"][0] == 0.55
