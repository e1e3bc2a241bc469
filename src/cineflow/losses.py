"""Loss functions in a registry; each takes (outputs, targets) as produced by the task."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

LOSSES: dict[str, Callable[..., nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "mse": nn.MSELoss,
}


def build_loss(name: str, **params) -> nn.Module:
    if name not in LOSSES:
        raise KeyError(f"unknown loss '{name}'; registered: {sorted(LOSSES)}")
    return LOSSES[name](**params)


def scores_from_outputs(outputs: torch.Tensor) -> torch.Tensor:
    """Class probabilities from logits."""
    return torch.softmax(outputs.float(), dim=1)
