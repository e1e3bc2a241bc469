"""One fold on several processes (DDP): which share of the work is this process's, and putting the
shares back together. NCCL on GPUs (one process per GPU), gloo on CPUs.

A training job with `gpus: N` re-runs itself under torchrun (train.launch): N processes that each
join the group and train their share.
Outside torchrun every function here describes one process of one, so single-process code is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as tdist


@dataclass(frozen=True)
class Group:
    """This process's place: rank `rank` of `world` processes."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """The one process that writes files."""
        return self.rank == 0

    def share(self, n: int) -> np.ndarray:
        """Indices of this process's items out of n, interleaved (rank, rank + world, ...)."""
        return np.arange(self.rank, n, self.world)

    def equal_share(self, n: int) -> np.ndarray:
        """The same, cut to n // world items on every process: DDP needs every process to take as many
        steps (the remainder, fewer than `world` batches, is left out of that epoch)."""
        if n < self.world:
            raise ValueError(f"an epoch has {n} batch(es) for {self.world} processes: every process needs one; "
                             "lower the model's batch_size or gpus")
        return self.share(n)[: n // self.world]

    def gather(self, local: np.ndarray, n: int) -> np.ndarray:
        """The rows of all processes' `share(n)` in their original order, on every process: each item
        once, none padded or repeated."""
        if self.world == 1:
            return local
        parts: list = [None] * self.world
        tdist.all_gather_object(parts, np.asarray(local))
        out = np.empty((n,) + parts[0].shape[1:], parts[0].dtype)
        for rank, part in enumerate(parts):
            out[np.arange(rank, n, self.world)] = part
        return out

    def mean(self, value: float) -> float:
        """The mean of `value` over the processes."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        tdist.all_reduce(t)
        return float(t.item()) / self.world

    def same_buffers(self, model: torch.nn.Module) -> None:
        """Every process takes the first's buffers (BatchNorm's running statistics): DDP copies them at
        the start of each training forward, so after an epoch's last step each process holds its own,
        and the model that scores the val videos and is saved is the first process's."""
        if self.world > 1:
            for buffer in model.buffers():
                tdist.broadcast(buffer, src=0)

    def barrier(self) -> None:
        if self.world > 1:
            tdist.barrier()


def group() -> Group:
    """This process's group: torch.distributed's when initialised, else a group of one."""
    if tdist.is_available() and tdist.is_initialized():
        return Group(tdist.get_rank(), tdist.get_world_size())
    return Group()
