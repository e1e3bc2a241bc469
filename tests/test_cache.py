import numpy as np

from cineflow.cache import cache_shard, load_frames
from cineflow.config import CacheConfig
from cineflow.video_io import write_avi

import pandas as pd


def test_cache_decodes_once_and_quarantines_bad_files(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (9, 40, 48), dtype=np.uint8)
    write_avi(tmp_path / "ok.avi", frames, fps=25)
    (tmp_path / "empty.avi").write_bytes(b"")
    (tmp_path / "corrupt.avi").write_bytes(b"\x00garbage" * 50)
    videos = pd.DataFrame({"video_id": ["ok", "empty", "corrupt", "missing"],
                           "path": ["ok.avi", "empty.avi", "corrupt.avi", "missing.avi"]})
    table = cache_shard(videos, tmp_path, tmp_path / "cache", CacheConfig(shards=1, size=16, color="grey",
                                                                          max_frames=None))
    by_id = table.set_index("video_id")
    assert by_id.loc["ok", "status"] == "ok"
    assert (by_id.loc["ok", ["n_frames", "height", "width"]].tolist()) == [9, 40, 48]
    assert by_id.loc["ok", "fps"] == 25
    cached = load_frames(by_id.loc["ok", "frames_path"])
    assert isinstance(cached, np.memmap) and cached.dtype == np.uint8 and cached.shape == (9, 16, 16, 1)
    # the cached frames are the video, resized (MJPG is lossy: compare loosely)
    assert abs(float(cached.mean()) - float(frames.mean())) < 6
    assert by_id.loc["empty", "reason"] == "empty file (0 bytes)"
    assert by_id.loc["missing", "reason"] == "file not found"
    assert by_id.loc["corrupt", "status"] == "quarantined" and by_id.loc["corrupt", "reason"]


def test_rgb_cache_and_max_frames(tmp_path):
    frames = np.zeros((10, 20, 20, 3), np.uint8)
    frames[..., 0] = 200  # red
    write_avi(tmp_path / "red.avi", frames, fps=10)
    table = cache_shard(pd.DataFrame({"video_id": ["red"], "path": ["red.avi"]}), tmp_path, tmp_path / "c",
                        CacheConfig(shards=1, size=8, color="rgb", max_frames=4))
    cached = load_frames(table["frames_path"][0])
    assert cached.shape == (4, 8, 8, 3)
    assert cached[..., 0].mean() > 150 and cached[..., 2].mean() < 50
