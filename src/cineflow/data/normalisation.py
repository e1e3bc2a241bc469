"""Input normalisation: per-fold statistics from the training partition only (val/test never leak in),
or fixed statistics a study prescribes (ImageNet's, or its own)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cineflow.data.store import video_frames


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


IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def model_normalisation(spec: str | dict, channels: int, fold_stats: dict | None = None) -> dict:
    """{mean, std, source} a model normalises with: the fold's statistics (spec "fold"), ImageNet's
    ("imagenet"; their average for grey frames) or the fixed {mean, std} of the config.

    Args:
        spec: models.<name>.normalise.
        channels: the cached frames' channels (1 grey, 3 RGB).
        fold_stats: fold_normalisation's result; needed for "fold" only.
    """
    if spec == "fold":
        if fold_stats is None:
            raise ValueError("normalise is 'fold' but no fold statistics were given")
        return {"mean": list(fold_stats["mean"]), "std": list(fold_stats["std"]), "source": "fold"}
    values = IMAGENET if spec == "imagenet" else spec
    mean, std = list(values["mean"]), list(values["std"])
    if channels == 1 and len(mean) == 3:
        mean, std = [float(np.mean(mean))], [float(np.mean(std))]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"normalise {spec} has {len(mean)} mean and {len(std)} std values for {channels}-channel "
                         f"frames; give {channels} of each")
    return {"mean": mean, "std": std, "source": spec if isinstance(spec, str) else "config"}
