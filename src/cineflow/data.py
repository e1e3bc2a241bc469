"""Clips from the frame cache: memory-mapped reads, deterministic per (seed, epoch, item) sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from .cache import load_frames


def clip_indices(n_frames: int, length: int, period: int, start: int) -> np.ndarray:
    """Frame indices of one clip; -1 marks padding past the end of a short video."""
    idx = start + period * np.arange(length)
    return np.where(idx < n_frames, idx, -1)


def clip_starts(n_frames: int, length: int, period: int, n_clips: int) -> np.ndarray:
    """Evenly spread clip starts over the video (evaluation)."""
    last = max(0, n_frames - (length - 1) * period - 1)
    return np.unique(np.linspace(0, last, n_clips).round().astype(int))


def read_clip(frames: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """[T, H, W, C] uint8 clip; padding frames are zeros (as EchoNet-Dynamic pads)."""
    clip = np.zeros((len(indices),) + frames.shape[1:], np.uint8)
    valid = indices >= 0
    clip[valid] = frames[indices[valid]]
    return clip


def to_tensor(clip: np.ndarray, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 [T,H,W,C] -> normalised float [C,T,H,W]."""
    x = torch.from_numpy(clip).permute(3, 0, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1, 1)
    return (x - m) / s


def channel_stats(frames_paths: list[str], max_videos: int = 64, seed: int = 0) -> tuple[list[float], list[float]]:
    """Per-channel mean/std of the training partition's frames (never val/test: no leakage)."""
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(frames_paths))[:max_videos]
    samples = []
    for i in chosen:
        frames = load_frames(frames_paths[i])
        samples.append(frames[::4].reshape(-1, frames.shape[-1]))
    pixels = np.concatenate(samples).astype(np.float64) / 255.0
    return pixels.mean(0).tolist(), np.maximum(pixels.std(0), 1e-3).tolist()


class ClipDataset(Dataset):
    """Training clips (random start, optional flip) or evaluation clips (fixed starts)."""

    def __init__(self, rows: pd.DataFrame, targets: np.ndarray, length: int, period: int, mean: list[float],
                 std: list[float], train: bool, seed: int = 0, hflip_p: float = 0.0):
        self.paths = rows["frames_path"].tolist()
        self.n_frames = rows["n_frames"].to_numpy()
        self.targets = targets
        self.length, self.period = length, period
        self.mean, self.std = mean, std
        self.train, self.seed, self.hflip_p = train, seed, hflip_p
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        frames = load_frames(self.paths[i])
        rng = np.random.default_rng([self.seed, self.epoch, i])
        span = (self.length - 1) * self.period + 1
        start = int(rng.integers(0, max(1, self.n_frames[i] - span + 1))) if self.train else 0
        clip = read_clip(frames, clip_indices(self.n_frames[i], self.length, self.period, start))
        if self.train and rng.random() < self.hflip_p:
            clip = clip[:, :, ::-1]
        return to_tensor(np.ascontiguousarray(clip), self.mean, self.std), self.targets[i]
