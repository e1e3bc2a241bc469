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
