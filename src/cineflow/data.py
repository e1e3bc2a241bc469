"""Clips from the frame cache: memory-mapped uint8 reads, deterministic per (seed, epoch, item) sampling.

Clips stay uint8 until they reach the device; float conversion, augmentation and normalisation
happen there (a quarter of the bytes through the loader).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from .cache import load_frames
from .sampling import ClipSpec, train_clip


def read_clip(frames: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """[T, H, W, C] uint8 clip; padding frames (-1) are zeros (as EchoNet-Dynamic pads)."""
    clip = np.zeros((len(indices),) + frames.shape[1:], np.uint8)
    valid = indices >= 0
    clip[valid] = frames[indices[valid]]
    return clip


def to_channels_first(clips: np.ndarray) -> torch.Tensor:
    """uint8 [..., T, H, W, C] -> uint8 [..., C, T, H, W] (no copy until needed)."""
    x = torch.from_numpy(np.ascontiguousarray(clips))
    return x.movedim(-1, -4)


def normalise(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 or [0, 1] float clips [..., C, T, H, W] -> normalised float on the same device."""
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)
    if x.dtype == torch.uint8:  # one float copy, then in place: this runs on every batch
        return x.float().sub_(m * 255.0).div_(s * 255.0)
    return (x - m.to(x.dtype)).div_(s.to(x.dtype))


def to_tensor(clip: np.ndarray, mean: list[float], std: list[float]) -> torch.Tensor:
    """One uint8 clip [T,H,W,C] -> normalised float [C,T,H,W]."""
    return normalise(to_channels_first(clip), mean, std)


class ClipDataset(Dataset):
    """Training clips as uint8 [C, T, H, W], drawn by the model's sampler with a per-(seed, epoch, item) RNG."""

    def __init__(self, rows: pd.DataFrame, targets: np.ndarray, spec: ClipSpec, seed: int = 0):
        self.paths = rows["frames_path"].tolist()
        self.n_frames = rows["n_frames"].to_numpy()
        self.targets = targets
        self.spec, self.seed = spec, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        indices = train_clip(int(self.n_frames[i]), self.spec, rng)
        return to_channels_first(read_clip(load_frames(self.paths[i]), indices)), self.targets[i]
