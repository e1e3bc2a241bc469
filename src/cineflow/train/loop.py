"""One epoch of training and one pass of validation, after EchoNet-Dynamic's `run_epoch`, and the
DataLoader that feeds them."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from cineflow.config import AUTO_LOADER_WORKERS
from cineflow.data.clips import Buffers, ClipBatches, ClipDataset, Prepare
from cineflow.data.sampling import ClipSpec
from cineflow.io import read_ahead
from cineflow.models.inference import predict_videos
from cineflow.seeding import compile_determinism
from cineflow.tasks import Task
from cineflow.train.distributed import Group
from cineflow.train.precision import Precision


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """Channels-last weights: 4D (2D convs) as channels_last, 5D (3D convs) as channels_last_3d."""
    for p in model.parameters():
        if p.dim() in (4, 5):
            p.data = p.data.contiguous(memory_format=torch.channels_last if p.dim() == 4 else torch.channels_last_3d)
    return model


def compiled(model: torch.nn.Module, setting: bool | str) -> torch.nn.Module:
    """torch.compile for the training forward pass; the plain module keeps the weights for saving."""
    if not setting:
        return model
    compile_determinism()
    return torch.compile(model, backend="inductor" if setting is True else setting)


def loader_workers(setting: int | str, device: torch.device) -> int:
    """resources.loader_workers: a number, or "auto" = AUTO_LOADER_WORKERS on a GPU and 0 on a CPU, where
    the model needs every core of the training process's share."""
    if setting == "auto":
        return AUTO_LOADER_WORKERS if device.type == "cuda" else 0
    return int(setting)


@dataclass
class EpochBuffers:
    """The training process's batch buffers (data.Buffers), kept from epoch to epoch by the StageRunner: the
    uint8 batches it reads itself (no workers) and the float batches it prepares (a CPU)."""

    read: Buffers = field(default_factory=lambda: Buffers(ClipBatches.RING))
    ready: Buffers = field(default_factory=lambda: Buffers(2))


def training_loader(dataset: ClipDataset, batches: list[list[int]], workers: int, device: torch.device,
                    steps: list[int] | None = None, buffers: EpochBuffers | None = None):
    """The epoch's loader of uint8 batches (data.ClipBatches: (clips, targets, step) items), over `steps`, the
    batches this process takes (all by default; one share of them per process in distributed training).

    With `workers`, the next batches are read while the training process prepares and trains on the current
    one. On a GPU the workers are DataLoader processes that hand the batches over in shared memory into
    pinned memory (two each ahead). On a CPU they are reader threads of the training process (ThreadedBatches):
    processes would hand every batch over through shared memory that both sides fault in afresh, start anew
    every epoch and compete with the training process for the cores it prepares the batches with, which made
    more workers slower than none. Every device gets the batches as uint8 and prepares them itself
    (ready_batches): float batches would be 4 times the bytes to hand over.

    Args:
        dataset: the train partition's clips.
        batches: the epoch's batches of row indices (batching.epoch_batches).
        workers: loader workers (loader_workers).
        device: where training runs.
        steps: the batches this process takes; None = all.
        buffers: the training process's buffers, kept from epoch to epoch (EpochBuffers).
    """
    steps = list(range(len(batches))) if steps is None else list(steps)
    items = ClipBatches(dataset, batches, buffers.read if buffers else None)
    if device.type != "cuda":
        return ThreadedBatches(items, steps, workers)
    return process_loader(items, steps, workers, pin_memory=True)


def process_loader(items: ClipBatches, steps: list[int], workers: int, pin_memory: bool) -> DataLoader:
    """The GPU's loader: `workers` DataLoader processes reading `steps` of `items` two each ahead, one torch
    thread each, into pinned memory where `pin_memory`."""
    return DataLoader(items, batch_size=None, sampler=steps, num_workers=workers, pin_memory=pin_memory,
                      prefetch_factor=2 if workers else None, worker_init_fn=_one_thread if workers else None)


class ThreadedBatches:
    """The batches `steps` of `items` in order, read ahead by `workers` threads of this process (none: read
    when asked for). The read is a copy out of the memory-mapped cache that runs without the GIL, so the
    threads read while this process prepares and trains; at most AHEAD batches are read ahead, fewer than
    the read buffers (ClipBatches.RING) less the one being prepared, so no buffer is reused while in use."""

    AHEAD = ClipBatches.RING - 2

    def __init__(self, items: ClipBatches, steps: list[int], workers: int):
        self.items, self.steps, self.workers = items, steps, workers

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self):
        # a DataLoader draws its workers' base seed from torch's global stream when it starts an epoch; the same
        # draw here keeps that stream, and with it dropout and every later draw, where earlier versions had it:
        # a run's results stay the same across this change (the demo's, bit for bit)
        torch.empty((), dtype=torch.int64).random_()
        yield from read_ahead(self.items.__getitem__, self.steps, min(self.workers, self.AHEAD), self.AHEAD,
                              "cineflow-reader")


def _one_thread(worker: int) -> None:
    """A loader worker reads and copies only: one torch thread (PyTorch's default in workers, said here), so
    that workers and the training process do not oversubscribe the cores."""
    torch.set_num_threads(1)


def ready_batches(loader, prepare: Prepare, device: torch.device, epoch: int, buffers: EpochBuffers | None = None):
    """(float clips [B, C, T, H, W] on `device`, targets) of each uint8 batch of `loader`, prepared (augmented,
    normalised) where training runs. On a CPU the float batches go round the two `buffers.ready` (the caller's,
    kept from epoch to epoch; the batch before the last is done with by then)."""
    on_cpu = device.type != "cuda"
    ready = (buffers or EpochBuffers()).ready
    for x, y, step in loader:
        if not on_cpu:
            yield prepare(x.to(device, non_blocking=True), epoch, int(step)), y
            continue
        b, t, h, w, c = x.shape
        yield prepare(x, epoch, int(step), out=ready.next((b, c, t, h, w), torch.float32), inplace=True), y


def train_one_epoch(model: torch.nn.Module, loader, criterion: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    precision: Precision, device: torch.device, prepare: Prepare, epoch: int, accumulate: int = 1,
                    clip_grad_norm: float | None = None, channels_last: bool = False, desc: str = "",
                    on_update: Callable[[], None] | None = None, buffers: EpochBuffers | None = None) -> float:
    """One pass over `loader` (an epoch, or the part of one up to the next validation), training; returns
    the mean training loss (after EchoNet-Dynamic's run_epoch).

    uint8 batches become float, augmented and normalised on `device` (batches a CPU worker already
    prepared arrive as float). The loss is summed on the device and read once at the end: a per-step
    `.item()` would make the host wait for every step and leave the GPU idle while the next one is
    launched.

    Args:
        model: the module to call (the compiled one when `compile` is set); already on `device`, in train mode.
        loader: yields (clips, targets [B], step) as `training_loader` makes it: uint8 clips [B, T, H, W, C]
            as read, or float [B, C, T, H, W] when a CPU worker prepared them.
        criterion: the loss module, on `device`.
        optimizer: stepped every `accumulate` batches and after the last one.
        precision: autocast, loss scaling and the optimizer step (precision.Precision).
        device: where the batch goes.
        prepare: float conversion, augmentation and normalisation of a uint8 batch (data.Prepare).
        epoch: the epoch number, which with the step seeds the batch's augmentation.
        accumulate: batches per optimizer step (gradient accumulation).
        clip_grad_norm: the gradient norm clip, or None.
        channels_last: convert the batch to channels_last(_3d) memory format.
        desc: the progress bar's label.
        on_update: called after every optimizer update (a per-update learning-rate schedule).
        buffers: the batch buffers kept from epoch to epoch (EpochBuffers); None: new ones.
    """
    total, n_batches = torch.zeros((), dtype=torch.float64, device=device), len(loader)
    optimizer.zero_grad(set_to_none=True)
    batches = tqdm(ready_batches(loader, prepare, device, epoch, buffers), total=n_batches, desc=desc,
                   file=sys.stderr, mininterval=10, leave=False)
    for step, (x, y) in enumerate(batches):
        if channels_last and x.dim() == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with precision.autocast():
            loss = criterion(model(x), y.to(device, non_blocking=True))
        precision.backward(loss / accumulate)
        if (step + 1) % accumulate == 0 or step + 1 == n_batches:
            precision.step(optimizer, model.parameters(), clip_grad_norm)
            if on_update is not None:
                on_update()
        total += loss.detach()
    return float(total.item()) / max(1, n_batches)


def validate(model: torch.nn.Module, rows: pd.DataFrame, y: np.ndarray, task: Task, norm: dict, spec: ClipSpec,
             device: torch.device, block: int, output: str, group: Group) -> dict:
    """The task's val metrics of `model` on `rows` (one clip per video), `loss` included.

    Args:
        model: the plain module (not the DDP or compiled wrapper), on `device`.
        rows: the val partition's manifest rows.
        y: their targets (task.targets).
        task: whose val_metrics score the predictions.
        norm: the fold's normalisation, {"mean": [...], "std": [...]}.
        spec: which frames make the clip.
        device: where the model runs.
        block: clips per forward pass.
        output: how the model's outputs read (the loss's `output` metadata).
        group: the distributed group; each process scores its share and the shares are gathered.
    """
    mine = rows.iloc[group.share(len(rows))].reset_index(drop=True)
    probs = group.gather(predict_videos(model, mine, norm["mean"], norm["std"], spec, 1, device, block=block,
                                        output=output), len(rows))
    return task.val_metrics(y, probs)
