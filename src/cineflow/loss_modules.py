"""The loss modules behind the registry in losses.py (kept apart so the registry imports without torch)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F


class FocalLoss(nn.Module):
    """Softmax focal loss: (1 - p_t)^gamma down-weights the easy videos; optional class weights (alpha)."""

    def __init__(self, gamma: float, weight: torch.Tensor | None):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight if weight is not None else torch.empty(0))

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(outputs.float(), dim=1).gather(1, targets[:, None]).squeeze(1)
        loss = -((1 - log_p.exp()) ** self.gamma) * log_p
        if self.weight.numel():
            loss = loss * self.weight[targets]
        return loss.mean()


class BinaryCrossEntropy(nn.Module):
    def __init__(self, pos_weight: float | None):
        super().__init__()
        self.loss = nn.BCEWithLogitsLoss(pos_weight=None if pos_weight is None else torch.tensor(pos_weight))

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(outputs[:, 0].float(), targets.float())


class Regression(nn.Module):
    """A pointwise loss on one output, optionally weighted by which bin the target falls in."""

    def __init__(self, fn: Callable, edges: list[float] | None = None, weights: list[float] | None = None):
        super().__init__()
        self.fn = fn
        self.register_buffer("edges", torch.tensor(edges or [], dtype=torch.float32))
        self.register_buffer("bin_weights", torch.tensor(weights or [1.0], dtype=torch.float32))

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.float()
        loss = self.fn(outputs[:, 0].float(), targets, reduction="none")
        if self.edges.numel():
            loss = loss * self.bin_weights[torch.bucketize(targets, self.edges, right=True)]
        return loss.mean()
