"""Video-level scores: the mean of class probabilities over a video's evaluation clips.

Clips are streamed in blocks of `block`, so memory is bounded by the block, not by the video
length or the number of clips (all-clips test-time augmentation on long videos included).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd
import torch

from .cache import load_frames
from .data import normalise, read_clip, to_channels_first
from .losses import to_scores
from .sampling import ClipSpec, eval_clips


def iter_clips(rows: pd.DataFrame, spec: ClipSpec, n_clips: int | str) -> Iterator[tuple[int, np.ndarray]]:
    """(row number, uint8 clip) for every evaluation clip; each video is opened once."""
    for i, row in enumerate(rows.itertuples(index=False)):
        frames = load_frames(row.frames_path)
        for indices in eval_clips(int(row.n_frames), spec, n_clips):
            yield i, read_clip(frames, indices)


@torch.no_grad()
def predict_videos(model: torch.nn.Module, rows: pd.DataFrame, mean: list[float], std: list[float],
                   spec: ClipSpec, n_clips: int | str, device: torch.device, block: int = 16,
                   output: str = "softmax") -> np.ndarray:
    """[N, n_classes] probabilities (or [N, 1] regression values), each the mean over the video's clips.

    `output` is how the model's outputs read (losses.LossEntry.output)."""
    model.eval()
    sums: np.ndarray | None = None
    counts = np.zeros(len(rows))
    owners: list[int] = []
    clips: list[np.ndarray] = []

    def flush() -> None:
        nonlocal sums
        x = normalise(to_channels_first(np.stack(clips)).to(device), mean, std)
        probs = to_scores(model(x), output).cpu().numpy()
        if sums is None:
            sums = np.zeros((len(rows), probs.shape[1]))
        np.add.at(sums, owners, probs)
        np.add.at(counts, owners, 1)
        owners.clear()
        clips.clear()

    for i, clip in iter_clips(rows, spec, n_clips):
        owners.append(i)
        clips.append(clip)
        if len(clips) == block:
            flush()
    if clips:
        flush()
    if sums is None:
        return np.zeros((0, 0))
    return sums / counts[:, None]
