"""The frame cache: decode each video once (data.preprocess), store uint8 frames that training memory-maps
(data.store), and record every choice per video in the shard table.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cineflow.config import CacheConfig
from cineflow.data.deidentify import Audit
from cineflow.data.preprocess import fill_value, preprocess, read_deidentified
from cineflow.data.readers import UnreadableVideo
from cineflow.data.store import SHARD_FILE, ShardFile
from cineflow.data.synthetic import Degradation, degrade
from cineflow.io import atomic_path, read_ahead

SHARD_COLUMNS = ["video_id", "source", "status", "reason", "n_frames", "fps", "source_frames", "source_fps",
                 "height", "width", "channels", "crop", "mask_fraction", "preprocess", "frames_path", "frame_offset",
                 "deidentified"]


def leave_out(listed_in: str, settings_fixed: bool = False) -> str:
    """How a user leaves one video out of a run, for messages: its row of a table, or its file in a folder;
    and, where the cache settings are the user's (not a trained model's), the setting that admits it."""
    where = "remove its row from the table" if listed_in == "table" else "move the file out of the folder"
    return where + (" (cache.media is the trained models' setting)" if settings_fixed else " or set cache.media: any")


def listed_in(layout: str) -> str:
    """Whether a data layout lists its videos in a table or finds them in a folder."""
    return "folder" if layout == "imagefolder" else "table"


@dataclass
class Decoded:
    """One video decoded and preprocessed, not yet stored: its shard-table row so far and its cached frames
    (None where it was quarantined)."""

    row: dict
    cached: np.ndarray | None = None


def decode_video(source: Path, cfg: CacheConfig, fix: str = leave_out("table"), degradation: Degradation | None = None,
                 key: str = "") -> Decoded:
    """Decode and preprocess one video (cache_video's work before the write); a video that cannot be used is
    quarantined with the reason. Arguments as cache_video's."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("shards", "store")}  # how, not where
    row = dict(source=str(source), status="ok", reason="", n_frames=0, fps=0.0, source_frames=0, source_fps=0.0,
               height=0, width=0, channels=cfg.channels, crop=json.dumps(cfg.crop), mask_fraction=1.0,
               preprocess=json.dumps(settings, sort_keys=True), frames_path="", frame_offset=0, deidentified="")
    audit = Audit() if cfg.deidentify else None  # what de-identification did: results/deidentification.csv
    try:
        frames, fps, _ = read_deidentified(source, cfg, audit)
        if cfg.media == "video" and len(frames) < 2:
            raise UnreadableVideo(f"a still image (1 frame) where cache.media is 'video'; {fix}")
        if cfg.media == "image" and len(frames) > 1:
            raise UnreadableVideo(f"a video ({len(frames)} frames) where cache.media is 'image'; {fix}")
        cached, info = preprocess(frames, fps, cfg)
        if degradation is not None:
            cached = degrade(cached, degradation, fill_value(cfg.fill, cfg.channels), key)
    except UnreadableVideo as err:
        return Decoded(dict(row, status="quarantined", reason=str(err), deidentified=audited(audit)))
    except Exception as err:  # a decoder crash on one file must not stop the shard
        return Decoded(dict(row, status="quarantined", reason=f"decoder error: {type(err).__name__}: {err}",
                            deidentified=audited(audit)))
    row["deidentified"] = audited(audit)
    return Decoded(dict(row, n_frames=len(cached), source_frames=len(frames), source_fps=float(fps),
                        height=frames.shape[1], width=frames.shape[2], **info), cached)


def audited(audit: Audit | None) -> str:
    """The shard table's `deidentified` cell: the audit as JSON, "" where de-identification is off."""
    return json.dumps(audit.row(), sort_keys=True) if audit is not None else ""


def store_video(decoded: Decoded, dest: Path | ShardFile) -> dict:
    """Write a decoded video's frames to its own .npy `dest` (atomically) or append them to a ShardFile; returns
    its shard-table row."""
    if decoded.cached is None:
        return decoded.row
    if isinstance(dest, ShardFile):
        offset, dest = dest.append(decoded.cached), dest.path
    else:
        offset = 0
        with atomic_path(dest) as tmp, open(tmp, "wb") as fh:  # a killed job leaves no half-written frames
            np.save(fh, decoded.cached)
    return dict(decoded.row, frames_path=str(dest), frame_offset=offset)


def cache_video(source: Path, dest: Path | ShardFile, cfg: CacheConfig, fix: str = leave_out("table"),
                degradation: Degradation | None = None, key: str = "") -> dict:
    """Decode, preprocess and store one video in its own file `dest`, or appended to a ShardFile;
    returns its shard-table row (status ok or quarantined).

    Args:
        source: the video file (or frame folder).
        dest: its own .npy, or the shard file it is appended to.
        cfg: the cache settings.
        fix: what the user can do about a still image where videos are wanted, or the reverse
            (leave_out: the table's row or the folder's file).
        degradation: for a synthetic low-quality copy (data.synthetic_low_quality), how its frames are degraded.
        key: the video's id (seeds the degradation's noise).
    """
    return store_video(decode_video(source, cfg, fix, degradation, key), dest)


def cache_shard(videos: pd.DataFrame, root: str | Path, out_dir: str | Path, cfg: CacheConfig,
                fix: str = leave_out("table"), threads: int = 1) -> pd.DataFrame:
    """Cache every video of one shard (`videos` has video_id, path and, where data.synthetic_low_quality adds
    copies, degrade) into `out_dir`: a file per video, or with cache.store: shards one file for all of them.

    With `threads` > 1 several videos are decoded at once (the decoders run without the GIL; a video is one
    decoder's work, so threads over videos keep every core busy at any frame size) and stored in order, at
    most 2 × threads decoded ahead. `fix`: as cache_video's."""
    out_dir = Path(out_dir)
    rows = []

    def decode(video) -> tuple:
        return video, decode_video(Path(root) / video.path, cfg, fix,
                                   Degradation.from_json(getattr(video, "degrade", "")), video.video_id)

    with contextlib.ExitStack() as stack:
        shard = None
        if cfg.store == "shards":
            shard = stack.enter_context(ShardFile(out_dir / SHARD_FILE, (cfg.size, cfg.size, cfg.channels)))
        for video, decoded in read_ahead(decode, videos.itertuples(index=False), max(1, threads), 2 * max(1, threads),
                                         "cineflow-decode"):
            row = store_video(decoded, shard or out_dir / f"{video.video_id}.npy")
            rows.append(dict(row, video_id=video.video_id))
    return pd.DataFrame(rows, columns=SHARD_COLUMNS)
