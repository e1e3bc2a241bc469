"""The region of interest drawn as a closed outline (Stall Catchers): the found inside against the drawn
one, after H.264 compression, and what the cache does with it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cineflow.config import CacheConfig
from cineflow.data.cache import cache_video
from cineflow.data.readers import UnreadableVideo, read_video
from cineflow.data.roi import bounding_box, outline_inside
from cineflow.data.video_io import write_mp4
from helpers import settings
from helpers.studies import ORANGE, outline_video


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


# outlines of 2 px and more: H.264 averages colour over 2 x 2 pixels, so a 1-px line loses its colour
@pytest.mark.parametrize("center, axes, thickness, size", [
    ((32, 30), (20, 14), 2, 64),
    ((40, 50), (30, 12), 2, 96),
    ((60, 50), (25, 35), 3, 128),
    ((20, 24), (10, 8), 2, 48),
])
def test_found_inside_matches_the_drawn_one_after_h264(tmp_path, center, axes, thickness, size):
    frames, drawn = outline_video(n_frames=10, size=size, center=center, axes=axes, thickness=thickness)
    path = write_mp4(tmp_path / "clip.mp4", frames, 20)
    decoded, _ = read_video(path)
    found = outline_inside(decoded, list(ORANGE), tolerance=80)
    assert iou(found, drawn) >= 0.9
    border = ~np.pad(np.ones((size - 2, size - 2), bool), 1, constant_values=False)
    assert not (found & border).any()  # the outside is never kept


def test_no_outline_and_an_open_outline_are_unusable():
    frames, _ = outline_video(outline=False)
    with pytest.raises(UnreadableVideo, match=r"no outline of colour \[255, 140, 0\] \(tolerance 40\) found"):
        outline_inside(frames, list(ORANGE), 40)
    frames, _ = outline_video()
    frames[:, :, 28:36] = 0  # cut the outline through: it no longer closes
    with pytest.raises(UnreadableVideo, match="is not closed"):
        outline_inside(frames, list(ORANGE), 40)


def test_cache_keeps_the_inside_fills_the_rest_and_crops(tmp_path):
    frames, drawn = outline_video(size=64)
    path = write_mp4(tmp_path / "clip.mp4", frames, 20)
    cfg = settings(CacheConfig, "cache", size=32, color="rgb", fill=[0, 0, 255],
                   roi={"outline_color": list(ORANGE), "tolerance": 80})
    row = cache_video(path, tmp_path / "clip.npy", cfg)
    assert row["status"] == "ok"
    x, y, w, h = json.loads(row["crop"])
    assert abs(x - bounding_box(drawn)[0]) <= 2 and abs(w - bounding_box(drawn)[2]) <= 4
    assert 0.1 < row["mask_fraction"] < 0.3
    cached = np.load(tmp_path / "clip.npy")
    assert cached.shape[1:] == (32, 32, 3) and cached[0, 0, 0].tolist() == [0, 0, 255]
    orange = (np.abs(cached.astype(int) - ORANGE) <= 40).all(-1)
    assert not orange.any()  # the outline itself is gone
    grey = cache_video(path, tmp_path / "grey.npy", settings(CacheConfig, "cache", size=32, color="grey",
                                                             roi={"outline_color": list(ORANGE), "tolerance": 80}))
    assert grey["status"] == "ok" and np.load(tmp_path / "grey.npy").shape[-1] == 1  # found in colour, kept grey
    missing = cache_video(write_mp4(tmp_path / "plain.mp4", outline_video(outline=False)[0], 20),
                          tmp_path / "plain.npy", cfg)
    assert missing["status"] == "quarantined" and missing["reason"].startswith("no outline of colour")


def test_an_outline_colour_found_in_no_video_stops_the_manifest(tmp_path):
    import pandas as pd

    from cineflow.data.cache import cache_shard
    from cineflow.data.manifest import build_manifest

    for name in ("a", "b"):
        write_mp4(tmp_path / f"{name}.mp4", outline_video()[0], 20)
    labels = pd.DataFrame({"video_id": ["a", "b"], "path": ["a.mp4", "b.mp4"], "label": "x", "group": ["a", "b"]})
    cfg = settings(CacheConfig, "cache", size=16, color="rgb", roi={"outline_color": [0, 0, 255], "tolerance": 30})
    shard = cache_shard(labels, tmp_path, tmp_path / "cache", cfg)
    with pytest.raises(ValueError, match=r"all 2 videos were quarantined.*no outline of colour \[0, 0, 255\]"):
        build_manifest(labels, [shard])
