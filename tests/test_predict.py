"""Finding new videos for `predict`: folders, tables, and tables that cannot work."""

import pandas as pd
import pytest

from cineflow.config import ConfigError
from cineflow.evaluate.predict import find_videos


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
