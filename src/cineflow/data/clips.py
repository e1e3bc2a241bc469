"""Clips from the frame cache: memory-mapped uint8 reads, deterministic per (seed, epoch, item) sampling.

Clips stay uint8 until they reach the device; float conversion, augmentation and normalisation
happen there (a quarter of the bytes through the loader). Without a GPU they happen in the loader's
worker processes instead, which the CPU has more of than the training process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, get_worker_info

from cineflow.data.augment import Op, augment
from cineflow.data.sampling import ClipSpec, train_clip
from cineflow.data.store import load_frames


def read_clip(frames: np.ndarray, indices: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """[T, H, W, C] uint8 clip; padding frames (-1) are zeros (as EchoNet-Dynamic pads). `out` (any
    strides) receives it without an intermediate copy."""
    valid = indices >= 0
    if out is None:
        out = np.zeros((len(indices),) + frames.shape[1:], np.uint8)
    elif valid.all():
        return np.take(frames, indices, axis=0, out=out)  # one contiguous copy per frame
    else:
        out[~valid] = 0
    out[valid] = frames[indices[valid]]
    return out


def to_channels_first(clips: np.ndarray) -> torch.Tensor:
    """uint8 [..., T, H, W, C] -> uint8 [..., C, T, H, W] (no copy until needed)."""
    x = torch.from_numpy(np.ascontiguousarray(clips))
    return x.movedim(-1, -4)


def normalise(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 or [0, 1] float clips [..., C, T, H, W] (any memory layout) -> normalised float, contiguous,
    on the same device. This runs on every batch: uint8 on a CPU goes through a lookup table."""
    if x.dtype == torch.uint8 and x.device.type == "cpu":
        return _normalise_table(x, mean, std)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)
    if x.dtype == torch.uint8:  # one float copy, then in place
        return x.to(torch.float32, memory_format=torch.contiguous_format).sub_(m * 255.0).div_(s * 255.0)
    return (x - m.to(x.dtype)).div_(s.to(x.dtype)).contiguous()


def _normalise_table(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """normalise() of uint8 on a CPU: each channel plane through a 256-entry table (cv2.LUT), one pass
    per pixel instead of a float copy and two arithmetic passes; channels-last clips are split first."""
    import cv2

    c, t, h, w = x.shape[-4:]
    table = ((np.arange(256)[:, None] / 255.0 - np.asarray(mean)) / np.asarray(std)).astype(np.float32)
    out = _shared_empty(tuple(x.shape), torch.float32)  # in a loader worker: handed over without a copy
    planes_out = out.reshape(-1, c, t * h, w).numpy()
    last = x.movedim(-4, -1)  # [..., T, H, W, C]
    if c > 1 and last.is_contiguous():  # the cache's own layout
        src = last.reshape(-1, t * h, w, c).numpy()
        for n in range(len(src)):
            for k, plane in enumerate(cv2.split(src[n])):
                cv2.LUT(plane, table[:, k], dst=planes_out[n, k])
    else:
        src = x.contiguous().reshape(-1, c, t * h, w).numpy()
        for n in range(len(src)):
            for k in range(c):
                cv2.LUT(src[n, k], table[:, k], dst=planes_out[n, k])
    return out


def to_tensor(clip: np.ndarray, mean: list[float], std: list[float]) -> torch.Tensor:
    """One uint8 clip [T,H,W,C] -> normalised float [C,T,H,W]."""
    return normalise(to_channels_first(clip), mean, std)


class ClipDataset(Dataset):
    """Training clips as uint8 [C, T, H, W], drawn by the model's sampler with a per-(seed, epoch, item) RNG."""

    def __init__(self, rows: pd.DataFrame, targets: np.ndarray, spec: ClipSpec, seed: int = 0):
        self.paths = rows["frames_path"].tolist()
        self.offsets = rows["frame_offset"].to_numpy() if "frame_offset" in rows else np.zeros(len(rows), int)
        self.n_frames = rows["n_frames"].to_numpy()
        self.targets = targets
        self.spec, self.seed = spec, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def frames(self, i: int) -> np.ndarray:
        """Video `i`'s memory-mapped frames (its file, or its part of a shard file)."""
        return load_frames(self.paths[i], int(self.offsets[i]), int(self.n_frames[i]))

    def indices(self, i: int) -> np.ndarray:
        """The frames of video `i`'s training clip this epoch."""
        return train_clip(int(self.n_frames[i]), self.spec, np.random.default_rng([self.seed, self.epoch, i]))

    def __getitem__(self, i: int):
        return to_channels_first(read_clip(self.frames(i), self.indices(i))), self.targets[i]


def augment_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """The augmentation draws of one training batch, a function of (seed, epoch, step) alone: a batch is
    augmented the same in a loader worker or in the training process, and after a resume."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch, step]).generate_state(1)[0]))


@dataclass(frozen=True)
class Prepare:
    """uint8 clips -> the model's augmentations -> normalised float [B, C, T, H, W], on the clips' device.
    The batch's draws come from `augment_generator(seed, epoch, step)`."""

    mean: list[float]
    std: list[float]
    augment: dict[str, Op]  # data.augment.augmentations of the model's section
    seed: int

    def __call__(self, x: torch.Tensor, epoch: int, step: int) -> torch.Tensor:
        """`x`: uint8 [B, T, H, W, C], the cache's layout (ClipBatches) -> float [B, C, T, H, W]."""
        x = augment(x.movedim(-1, 1), self.augment, augment_generator(self.seed, epoch, step))
        return normalise(x, self.mean, self.std)


class ClipBatches(Dataset):
    """One item = one training batch: (uint8 clips [B, T, H, W, C], targets [B], step), or with `prepare`
    (no GPU) the prepared float clips [B, C, T, H, W].

    A whole batch per item means one message per batch between a loader worker and the training
    process. The clips are read straight into a buffer in shared memory (no collate copy) in the
    cache's own layout: a contiguous copy of each frame; channels move first in `Prepare`.
    """

    def __init__(self, clips: ClipDataset, batches: list[list[int]], prepare: Prepare | None = None):
        self.clips, self.batches, self.prepare = clips, batches, prepare

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, step: int):
        items = self.batches[step]
        first = self.clips.frames(items[0])
        out = _shared_empty((len(items), self.clips.spec.frames) + first.shape[1:], torch.uint8)
        view = out.numpy()
        for k, i in enumerate(items):
            frames = first if k == 0 else self.clips.frames(i)
            read_clip(frames, self.clips.indices(i), out=view[k])
        x = out if self.prepare is None else self.prepare(out, self.clips.epoch, step)
        return x, torch.as_tensor(self.clips.targets[items]), step


def _shared_empty(shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    """An empty tensor, in shared memory inside a loader worker (as PyTorch's own collate does), so
    handing it to the training process copies nothing."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    numel = int(np.prod(shape))
    storage = torch.UntypedStorage._new_shared(numel * torch.empty((), dtype=dtype).element_size())
    return torch.tensor([], dtype=dtype).set_(storage).view(shape)
