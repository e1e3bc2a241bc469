"""Which videos make each training batch: plain shuffling or class balancing, in a registry.

Each sampler is a pure function of (targets, batch size, seed, epoch), so an epoch's batches are
the same after a resume.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from cineflow.registry import Registry

BatchSampler = Callable[[np.ndarray, int, np.random.Generator], list[np.ndarray]]
BATCH_SAMPLERS: Registry[BatchSampler] = Registry("batch sampler", "models.<name>.sampler")


def epoch_batches(kind: str, targets: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch: lists of row indices, the same for the same seed and epoch.

    Args:
        kind: a BATCH_SAMPLERS name (models.<name>.sampler).
        targets: what the sampler balances (Task.batch_targets).
        batch_size: videos per batch.
        seed: the run's seed.
        epoch: the epoch, so every epoch draws anew and a resumed one draws the same.
    """
    sampler = BATCH_SAMPLERS.get(kind)
    rng = np.random.default_rng([seed, epoch, 99])
    return [b.tolist() for b in sampler(np.asarray(targets), batch_size, rng)]


def _chunks(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Batches in `order`; a short last batch is dropped unless it is the only one (BatchNorm needs 2+)."""
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


@BATCH_SAMPLERS.register
def shuffle(targets, batch_size, rng):
    return _chunks(rng.permutation(len(targets)), batch_size)


@BATCH_SAMPLERS.register
def weighted(targets, batch_size, rng):
    """As many draws as videos, with replacement, each class equally likely (inverse frequency)."""
    counts = np.bincount(targets)
    p = 1.0 / counts[targets]
    return _chunks(rng.choice(len(targets), size=len(targets), replace=True, p=p / p.sum()), batch_size)


@BATCH_SAMPLERS.register
def balanced_batches(targets, batch_size, rng):
    """Every batch holds each class equally (remainder slots to random classes); minority videos repeat
    within an epoch, majority videos are each seen about once."""
    classes = np.flatnonzero(np.bincount(targets))
    pools = {c: _Cycle(np.flatnonzero(targets == c), rng) for c in classes}
    n_batches = max(1, len(targets) // batch_size)
    batches = []
    for _ in range(n_batches):
        slots = np.resize(rng.permutation(classes), batch_size)
        batches.append(rng.permutation(np.array([pools[c].next() for c in slots])))
    return batches


class _Cycle:
    """Endless reshuffled passes over one class's videos."""

    def __init__(self, items: np.ndarray, rng: np.random.Generator):
        self.items, self.rng, self.queue = items, rng, []

    def next(self) -> int:
        if not self.queue:
            self.queue = list(self.rng.permutation(self.items))
        return int(self.queue.pop())
