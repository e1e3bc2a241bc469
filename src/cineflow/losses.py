"""Loss functions in a registry. Each entry knows its task and how its outputs read as scores.

Every loss takes (outputs [B, K], targets [B]) whatever the task, so the trainer has one call.
torch is imported where a loss is built: the workflow checks model entries against this registry
when it parses, and importing torch there would cost every `snakemake` call two seconds.
`output` says what the model's last layer means: softmax logits (one per class), a sigmoid
logit (binary, one output) or an identity value (regression, one output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from .config import ConfigError
from .registry import registrar

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class LossEntry:
    build: Callable[..., nn.Module]  # (n_classes, train_targets, **params) -> module
    task: str  # classification | regression
    output: str  # softmax | sigmoid | identity


LOSSES: dict[str, LossEntry] = {}


def register_loss(name: str, task: str, output: str):
    def wrap(fn):
        registrar(LOSSES)(name)(LossEntry(fn, task, output))
        return fn

    return wrap


def loss_entry(name: str) -> LossEntry:
    if name not in LOSSES:
        raise ConfigError(f"unknown loss '{name}'; registered: {sorted(LOSSES)}")
    return LOSSES[name]


def build_loss(name: str, n_classes: int, train_targets: np.ndarray, **params) -> nn.Module:
    try:
        return loss_entry(name).build(n_classes, train_targets, **params)
    except TypeError as err:  # an unknown key in loss_params
        raise ConfigError(f"loss '{name}': {err}; check loss_params") from None


def n_outputs(loss: str, n_classes: int) -> int:
    return n_classes if loss_entry(loss).output == "softmax" else 1


def to_scores(outputs: torch.Tensor, output: str) -> torch.Tensor:
    """Model outputs -> class probabilities [B, n_classes] or values [B, 1]."""
    import torch

    outputs = outputs.float()
    if output == "softmax":
        return torch.softmax(outputs, dim=1)
    if output == "sigmoid":
        p = torch.sigmoid(outputs[:, :1])
        return torch.cat([1 - p, p], dim=1)
    return outputs


def weights_for(spec: list | str | None, n_classes: int, train_targets: np.ndarray) -> torch.Tensor | None:
    """`balanced` = inverse class frequency in the fold's train partition (as scikit-learn defines it)."""
    import torch

    if spec is None:
        return None
    if spec == "balanced":
        counts = np.bincount(np.asarray(train_targets, dtype=int), minlength=n_classes).astype(float)
        return torch.tensor(len(train_targets) / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)
    if len(spec) != n_classes:
        raise ConfigError(f"class_weights has {len(spec)} values for {n_classes} classes")
    return torch.tensor(spec, dtype=torch.float32)


@register_loss("cross_entropy", "classification", "softmax")
def cross_entropy(n_classes, train_targets, label_smoothing: float = 0.0,
                  class_weights: list | str | None = None) -> nn.Module:
    from torch import nn

    return nn.CrossEntropyLoss(weight=weights_for(class_weights, n_classes, train_targets),
                               label_smoothing=label_smoothing)


@register_loss("focal", "classification", "softmax")
def focal(n_classes, train_targets, gamma: float = 2.0, class_weights: list | str | None = None) -> nn.Module:
    from .loss_modules import FocalLoss

    return FocalLoss(gamma, weights_for(class_weights, n_classes, train_targets))


@register_loss("bce", "classification", "sigmoid")
def bce(n_classes, train_targets, pos_weight: float | str | None = None) -> nn.Module:
    if n_classes != 2:
        raise ConfigError(f"loss 'bce' is for two classes, the config has {n_classes}; use cross_entropy or focal")
    if pos_weight == "balanced":
        y = np.asarray(train_targets)
        pos_weight = float((y == 0).sum() / max((y == 1).sum(), 1))
    from .loss_modules import BinaryCrossEntropy

    return BinaryCrossEntropy(pos_weight)


@register_loss("mse", "regression", "identity")
def mse(n_classes, train_targets) -> nn.Module:
    from .loss_modules import F, Regression

    return Regression(F.mse_loss)


@register_loss("l1", "regression", "identity")
def l1(n_classes, train_targets) -> nn.Module:
    from .loss_modules import F, Regression

    return Regression(F.l1_loss)


@register_loss("huber", "regression", "identity")
def huber(n_classes, train_targets, delta: float = 1.0) -> nn.Module:
    from .loss_modules import F, Regression

    return Regression(lambda a, b, reduction: F.huber_loss(a, b, reduction=reduction, delta=delta))


@register_loss("weighted_mse", "regression", "identity")
def weighted_mse(n_classes, train_targets, edges: list[float] = (30, 40, 70),
                 weights: list[float] = (3.0, 2.0, 1.0, 2.5)) -> nn.Module:
    """The EF study's recipe: targets below 30 weigh 3, 30-40 weigh 2, above 70 weigh 2.5, the rest 1.

    A target equal to an edge belongs to the bin above it."""
    if len(weights) != len(edges) + 1 or list(edges) != sorted(edges):
        raise ConfigError(f"weighted_mse needs ascending edges and one more weight than edges; got edges={list(edges)}"
                          f", weights={list(weights)}")
    from .loss_modules import F, Regression

    return Regression(F.mse_loss, list(edges), list(weights))
