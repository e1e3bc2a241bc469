"""Per-fold normalisation statistics, from the training partition only (val/test never leak in)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cineflow.data.cache import video_frames


def channel_stats(rows: pd.DataFrame, max_videos: int = 64, seed: int = 0) -> tuple[list[float], list[float]]:
    """Per-channel mean/std in [0, 1] units over (a seeded sample of) the given cached videos' manifest rows."""
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(rows))[:max_videos]
    total, total_sq, count = 0.0, 0.0, 0
    for i in sorted(chosen):
        frames = video_frames(rows.iloc[i])
        pixels = frames[::4].reshape(-1, frames.shape[-1]).astype(np.float64) / 255.0
        total, total_sq, count = total + pixels.sum(0), total_sq + (pixels**2).sum(0), count + len(pixels)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return np.asarray(mean).tolist(), np.maximum(std, 1e-3).tolist()


def fold_normalisation(split: pd.DataFrame, manifest: pd.DataFrame, seed: int) -> dict:
    """{mean, std, n_videos, partition}: statistics of the fold's training videos."""
    train = split.loc[split["partition"] == "train", ["video_id"]].merge(manifest, on="video_id", how="left")
    if train.empty:
        raise ValueError("the fold's train partition is empty; no normalisation statistics can be computed")
    mean, std = channel_stats(train, seed=seed)
    return {"mean": mean, "std": std, "n_videos": int(len(train)), "partition": "train"}
