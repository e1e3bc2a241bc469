"""Clips from the frame cache: memory-mapped uint8 reads, deterministic per (seed, epoch, item) sampling.

Clips stay uint8 until they reach the device; float conversion, augmentation and normalisation
happen there (a quarter of the bytes through the loader). Without a GPU they happen in the loader's
worker processes instead, which the CPU has more of than the training process.
"""

from __future__ import annotations

import collections
import threading
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


def normalise(x: torch.Tensor, mean: list[float], std: list[float], out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 or [0, 1] float clips [..., C, T, H, W] (any memory layout) -> normalised float, contiguous,
    on the same device. This runs on every batch: uint8 on a CPU goes through a lookup table. `out`: a
    contiguous float32 tensor of x's shape to write into (a reused buffer: no fresh pages to fault in)."""
    if x.dtype == torch.uint8 and x.device.type == "cpu":
        return _normalise_table(x, mean, std, out)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)
    if out is not None and x.dtype == torch.float32:
        # the layout .contiguous() would give: x's own where it counts as contiguous (a 1-channel clip viewed
        # channels first), so that the model sees the strides, and computes the numbers, it always did
        target = out.as_strided(x.shape, x.stride()) if x.is_contiguous() else out
        return torch.sub(x, m, out=target).div_(s)
    if x.dtype == torch.uint8:  # one float copy, then in place
        return x.to(torch.float32, memory_format=torch.contiguous_format).sub_(m * 255.0).div_(s * 255.0)
    return (x - m.to(x.dtype)).div_(s.to(x.dtype)).contiguous()


def _normalise_table(x: torch.Tensor, mean: list[float], std: list[float], out: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """normalise() of uint8 on a CPU: each channel plane through a 256-entry table (cv2.LUT), one pass
    per pixel instead of a float copy and two arithmetic passes; channels-last clips are split first."""
    import cv2

    c, t, h, w = x.shape[-4:]
    table = ((np.arange(256)[:, None] / 255.0 - np.asarray(mean)) / np.asarray(std)).astype(np.float32)
    out = torch.empty(tuple(x.shape), dtype=torch.float32) if out is None else out
    planes_out = out.reshape(-1, c, t * h, w).numpy()
    last = x.movedim(-4, -1)  # [..., T, H, W, C]
    if c > 1 and last.is_contiguous():  # the cache's own layout
        src = last.reshape(-1, t * h, w, c).numpy()
        planes = np.empty((c, t * h, w), np.uint8)  # one split buffer for the batch: no fresh pages per clip
        for n in range(len(src)):
            for k, plane in enumerate(cv2.split(src[n], list(planes))):
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

    MAPPED = 512  # cache files kept mapped per process (a shard file holds many videos)

    def __init__(self, rows: pd.DataFrame, targets: np.ndarray, spec: ClipSpec, seed: int = 0):
        self.paths = rows["frames_path"].tolist()
        self.offsets = rows["frame_offset"].to_numpy() if "frame_offset" in rows else np.zeros(len(rows), int)
        self.n_frames = rows["n_frames"].to_numpy()
        self.targets = targets
        self.spec, self.seed = spec, seed
        self.epoch = 0
        self._mapped: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # a worker started by spawn maps the files itself
        return {**self.__dict__, "_mapped": collections.OrderedDict(), "_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def frames(self, i: int) -> np.ndarray:
        """Video `i`'s memory-mapped frames (its file, or its part of a shard file). The MAPPED files read last stay
        mapped: mapping a file afresh for every clip faults in every page it reads again (a third of the read's
        time, measured in bench/loader.py's setting)."""
        path = self.paths[i]
        with self._lock:  # reader threads (train.loop.ThreadedBatches) share the mapped files
            whole = self._mapped.pop(path, None)
            if whole is None:
                whole = load_frames(path)
                if len(self._mapped) >= self.MAPPED:
                    self._mapped.popitem(last=False)
            self._mapped[path] = whole
        offset = int(self.offsets[i])
        return whole[offset:offset + int(self.n_frames[i])]

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

    def __call__(self, x: torch.Tensor, epoch: int, step: int, out: torch.Tensor | None = None,
                 inplace: bool = False) -> torch.Tensor:
        """`x`: uint8 [B, T, H, W, C], the cache's layout (ClipBatches) -> float [B, C, T, H, W], into `out`
        where given (normalise); `inplace`: `x` is the caller's to change (augmented without a copy)."""
        x = augment(x.movedim(-1, 1), self.augment, augment_generator(self.seed, epoch, step), inplace)
        return normalise(x, self.mean, self.std, out)


class Buffers:
    """Batch buffers reused round a ring of `size` per shape: the next one is the least recently handed out.
    A fresh 100 MB batch costs as much in page faults as preparing it, so the training process keeps one
    Buffers from batch to batch and epoch to epoch (ready_batches, and ClipBatches read in this process), and
    each loader worker one of its own in shared memory.

    Args:
        size: buffers per shape; a buffer is handed out again after `size` - 1 others of its shape.
        shared: allocate in shared memory (a loader worker's, handed over without a copy).
    """

    def __init__(self, size: int, shared: bool = False):
        self.size, self.shared = size, shared
        self._rings: dict[tuple, list[torch.Tensor]] = {}
        self._lock = threading.Lock()  # reader threads (train.loop.ThreadedBatches) take buffers concurrently

    def next(self, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        with self._lock:
            ring = self._rings.setdefault((tuple(shape), dtype), [])
            if len(ring) < self.size:
                ring.append(_shared_empty(tuple(shape), dtype) if self.shared
                            else torch.empty(tuple(shape), dtype=dtype))
            else:
                ring.append(ring.pop(0))
            return ring[-1]

    def __getstate__(self) -> dict:  # a spawned loader worker makes buffers of its own
        return {**self.__dict__, "_rings": {}, "_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())


class ClipBatches(Dataset):
    """One item = one training batch: (uint8 clips [B, T, H, W, C], targets [B], step).

    A whole batch per item means one message per batch between a loader worker and the training
    process. The clips are read straight into a buffer in the cache's own layout (a contiguous copy of each
    frame; channels move first in `Prepare`). Batches stay uint8 on every device: a float batch is 4 times
    the bytes to hand over, and the training process prepares it into buffers of its own (ready_batches).

    The read buffers are reused (Buffers): in a loader worker, RING of them in shared memory, more than the
    batches a worker can have in flight (prefetch_factor 2, plus the one being prepared); read in the
    training process, those of `buffers`. A batch stays valid until RING more of its shape have been read.
    """

    RING = 4

    def __init__(self, clips: ClipDataset, batches: list[list[int]], buffers: Buffers | None = None):
        self.clips, self.batches = clips, batches
        self.buffers = buffers or Buffers(self.RING)  # in this process
        self._worker_buffers: Buffers | None = None  # made in each worker process

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, step: int):
        items = self.batches[step]
        first = self.clips.frames(items[0])
        out = self._buffers().next((len(items), self.clips.spec.frames) + first.shape[1:], torch.uint8)
        view = out.numpy()
        for k, i in enumerate(items):
            frames = first if k == 0 else self.clips.frames(i)
            read_clip(frames, self.clips.indices(i), out=view[k])
        return out, torch.as_tensor(self.clips.targets[items]), step

    def _buffers(self) -> Buffers:
        if get_worker_info() is None:
            return self.buffers
        if self._worker_buffers is None:
            self._worker_buffers = Buffers(self.RING, shared=True)
        return self._worker_buffers


def _shared_empty(shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    """An empty tensor, in shared memory inside a loader worker (as PyTorch's own collate does), so
    handing it to the training process copies nothing."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    numel = int(np.prod(shape))
    storage = torch.UntypedStorage._new_shared(numel * torch.empty((), dtype=dtype).element_size())
    return torch.tensor([], dtype=dtype).set_(storage).view(shape)
