"""The frame cache: decode each video once into uint8 frames that training reads memory-mapped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .config import CacheConfig
from .readers import UnreadableVideo, read_video

SHARD_COLUMNS = ["video_id", "source", "status", "reason", "n_frames", "fps", "height", "width", "channels",
                 "frames_path"]


def preprocess(frames: np.ndarray, cfg: CacheConfig) -> np.ndarray:
    """RGB [T,H,W,3] uint8 -> [T, size, size, C] uint8 (grey or RGB)."""
    import cv2

    if cfg.max_frames:
        frames = frames[: cfg.max_frames]
    out = np.empty((len(frames), cfg.size, cfg.size, cfg.channels), np.uint8)
    for t, frame in enumerate(frames):
        frame = cv2.resize(frame, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)
        if cfg.channels == 1:
            frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[..., None]
        out[t] = frame
    return out


def cache_video(source: Path, dest: Path, cfg: CacheConfig) -> dict:
    """Decode, preprocess and store one video; returns its shard-table row (status ok or quarantined)."""
    row = dict(source=str(source), status="ok", reason="", n_frames=0, fps=0.0, height=0, width=0,
               channels=cfg.channels, frames_path="")
    try:
        frames, fps = read_video(source)
    except UnreadableVideo as err:
        return dict(row, status="quarantined", reason=str(err))
    except Exception as err:  # a decoder crash on one file must not stop the shard
        return dict(row, status="quarantined", reason=f"decoder error: {type(err).__name__}: {err}")
    cached = preprocess(frames, cfg)
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.save(dest, cached)
    return dict(row, n_frames=len(cached), fps=fps, height=frames.shape[1], width=frames.shape[2],
                frames_path=str(dest))


def cache_shard(videos: pd.DataFrame, root: str | Path, out_dir: str | Path, cfg: CacheConfig) -> pd.DataFrame:
    """Cache every video of one shard (`videos` has video_id and path) into `out_dir`."""
    out_dir = Path(out_dir)
    rows = []
    for video in videos.itertuples(index=False):
        row = cache_video(Path(root) / video.path, out_dir / f"{video.video_id}.npy", cfg)
        rows.append(dict(row, video_id=video.video_id))
    return pd.DataFrame(rows, columns=SHARD_COLUMNS)


def load_frames(frames_path: str | Path) -> np.ndarray:
    """Memory-mapped [T, H, W, C] uint8 frames: a clip is read without decoding or copying the video."""
    return np.load(frames_path, mmap_mode="r")
