"""Video-level scores: the mean of class probabilities over evenly spread clips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .cache import load_frames
from .data import clip_indices, clip_starts, read_clip, to_tensor
from .losses import scores_from_outputs


@torch.no_grad()
def predict_videos(model: torch.nn.Module, rows: pd.DataFrame, mean: list[float], std: list[float], length: int,
                   period: int, n_clips: int, device: torch.device, batch_size: int = 16) -> np.ndarray:
    """[N, n_classes] probabilities; clips are batched so memory stays bounded by batch_size."""
    model.eval()
    clips, owners = [], []
    for i, row in enumerate(rows.itertuples(index=False)):
        frames = load_frames(row.frames_path)  # opened once per video, not once per clip
        for start in clip_starts(row.n_frames, length, period, n_clips):
            clips.append((frames, clip_indices(row.n_frames, length, period, start)))
            owners.append(i)
    probs = []
    for b in range(0, len(clips), batch_size):
        batch = torch.stack([to_tensor(read_clip(frames, idx), mean, std) for frames, idx in clips[b: b + batch_size]])
        probs.append(scores_from_outputs(model(batch.to(device))).cpu().numpy())
    probs = np.concatenate(probs) if probs else np.zeros((0, 0))
    owners = np.asarray(owners)
    return np.stack([probs[owners == i].mean(0) for i in range(len(rows))])
