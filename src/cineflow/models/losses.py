"""Loss functions in a registry. Each entry's metadata says which task kind it fits and how the
model's outputs read as scores.

Every loss takes (outputs [B, K], targets [B]) whatever the task, so the trainer has one call.
`output` says what the model's last layer means: softmax logits (one per class), a sigmoid logit
(binary, one output) or an identity value (regression, one output).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cineflow.config import ConfigError
from cineflow.registry import Registry

# (n_classes, train_targets, **loss_params) -> module; metadata: task (classification | regression), output
LOSSES: Registry[Callable[..., nn.Module]] = Registry("loss", "models.<name>.loss")


def build_loss(name: str, n_classes: int, train_targets: np.ndarray, **params) -> nn.Module:
    build = LOSSES.get(name)
    try:
        return build(n_classes, train_targets, **params)
    except TypeError as err:  # an unknown key in loss_params
        raise ConfigError(f"models.<name>.loss_params: loss '{name}' says {err}") from None


def loss_output(name: str) -> str:
    """How the outputs of a model trained with loss `name` read: softmax, sigmoid or identity."""
    return LOSSES.meta(name)["output"]


def n_outputs(loss: str, n_classes: int) -> int:
    return n_classes if loss_output(loss) == "softmax" else 1


def to_scores(outputs: torch.Tensor, output: str) -> torch.Tensor:
    """Model outputs -> class probabilities [B, n_classes] or values [B, 1]."""
    outputs = outputs.float()
    if output == "softmax":
        return torch.softmax(outputs, dim=1)
    if output == "sigmoid":
        p = torch.sigmoid(outputs[:, :1])
        return torch.cat([1 - p, p], dim=1)
    return outputs


def weights_for(spec: list | str | None, n_classes: int, train_targets: np.ndarray) -> torch.Tensor | None:
    """`balanced` = inverse class frequency in the fold's train partition (as scikit-learn defines it)."""
    if spec is None:
        return None
    if spec == "balanced":
        counts = np.bincount(np.asarray(train_targets, dtype=int), minlength=n_classes).astype(float)
        return torch.tensor(len(train_targets) / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)
    if len(spec) != n_classes:
        raise ConfigError(f"class_weights has {len(spec)} values for {n_classes} classes")
    return torch.tensor(spec, dtype=torch.float32)


@LOSSES.register(task="classification", output="softmax")
def cross_entropy(n_classes, train_targets, label_smoothing: float = 0.0,
                  class_weights: list | str | None = None) -> nn.Module:
    return nn.CrossEntropyLoss(weight=weights_for(class_weights, n_classes, train_targets),
                               label_smoothing=label_smoothing)


@LOSSES.register(task="classification", output="softmax")
def focal(n_classes, train_targets, gamma: float = 2.0, class_weights: list | str | None = None) -> nn.Module:
    return FocalLoss(gamma, weights_for(class_weights, n_classes, train_targets))


@LOSSES.register(task="classification", output="sigmoid")
def bce(n_classes, train_targets, pos_weight: float | str | None = None) -> nn.Module:
    if n_classes != 2:
        raise ConfigError(f"loss 'bce' is for two classes, the config has {n_classes}; use cross_entropy or focal")
    if pos_weight == "balanced":
        y = np.asarray(train_targets)
        pos_weight = float((y == 0).sum() / max((y == 1).sum(), 1))
    return BinaryCrossEntropy(pos_weight)


@LOSSES.register(task="regression", output="identity")
def mse(n_classes, train_targets) -> nn.Module:
    return Regression(F.mse_loss)


@LOSSES.register(task="regression", output="identity")
def l1(n_classes, train_targets) -> nn.Module:
    return Regression(F.l1_loss)


@LOSSES.register(task="regression", output="identity")
def huber(n_classes, train_targets, delta: float = 1.0) -> nn.Module:
    return Regression(lambda a, b, reduction: F.huber_loss(a, b, reduction=reduction, delta=delta))


# the EF study's code: weights[labels < 30] = 3.0; weights[labels < 40] = 2.0; weights[labels > 70] = 2.5, in that
# order, so the second line overrides the first (below 40 weighs 2, below 30 too) and 70 itself weighs 1. Its text
# reads 3 / 2 / 1 / 2.5; that reading is the rules [[<, 40, 2], [<, 30, 3], [>, 70, 2.5]].
STUDY_RULES = (("<", 30, 3.0), ("<", 40, 2.0), (">", 70, 2.5))
COMPARISONS = {"<": torch.lt, "<=": torch.le, ">": torch.gt, ">=": torch.ge}


@LOSSES.register(task="regression", output="identity")
def weighted_mse(n_classes, train_targets, rules: list = STUDY_RULES) -> nn.Module:
    """MSE weighted by the target: each [op, value, weight] rule in order sets the weight of the targets it
    matches (a later rule overrides an earlier one; unmatched targets weigh 1), as the EF study's code does."""
    checked = []
    for rule in rules:
        if not (isinstance(rule, (list, tuple)) and len(rule) == 3 and rule[0] in COMPARISONS):
            raise ConfigError(f"weighted_mse rule {rule}: give [op, value, weight] with op one of "
                              f"{', '.join(COMPARISONS)}")
        checked.append((rule[0], float(rule[1]), float(rule[2])))
    return WeightedRegression(F.mse_loss, checked)


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
    """A pointwise loss on one output."""

    def __init__(self, fn: Callable):
        super().__init__()
        self.fn = fn

    def weights(self, targets: torch.Tensor) -> torch.Tensor | None:
        return None

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.float()
        loss = self.fn(outputs[:, 0].float(), targets, reduction="none")
        weights = self.weights(targets)
        return (loss if weights is None else loss * weights).mean()


class WeightedRegression(Regression):
    """A pointwise loss weighted by rules on the target (weighted_mse)."""

    def __init__(self, fn: Callable, rules: list[tuple[str, float, float]]):
        super().__init__(fn)
        self.rules = rules

    def weights(self, targets: torch.Tensor) -> torch.Tensor:
        weights = torch.ones_like(targets)
        for op, value, weight in self.rules:
            weights[COMPARISONS[op](targets, value)] = weight
        return weights
