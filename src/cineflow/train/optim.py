"""Optimizers and schedulers in registries, with two parameter groups (backbone, head) so that
two-stage fine-tuning can freeze the backbone and later train it at its own learning rate."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from cineflow.config import ConfigError, ModelConfig
from cineflow.models.architectures import backbone_blocks
from cineflow.registry import Registry

OPTIMIZERS: Registry[Callable] = Registry("optimizer", "models.<name>.optimizer")
SCHEDULERS: Registry[Callable] = Registry("scheduler", "models.<name>.scheduler")
for _name, _optimizer in {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}.items():
    OPTIMIZERS.register(_optimizer, name=_name)


def param_groups(model: nn.Module, cfg: ModelConfig) -> list[dict]:
    """[backbone at backbone_lr (default lr), everything else at lr]."""
    backbone = {id(p) for p in model.backbone.parameters()}
    groups = [{"name": "backbone", "params": [p for p in model.parameters() if id(p) in backbone],
               "lr": cfg.backbone_lr or cfg.lr},
              {"name": "head", "params": [p for p in model.parameters() if id(p) not in backbone], "lr": cfg.lr}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: ModelConfig) -> torch.optim.Optimizer:
    build = OPTIMIZERS.get(cfg.optimizer)
    try:
        return build(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                         **cfg.optimizer_params)
    except TypeError as err:
        raise ConfigError(f"optimizer '{cfg.optimizer}': {err}; check optimizer_params") from None


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ModelConfig, lower_is_better: bool):
    """Stepped once per epoch; `plateau` is stepped with the monitored value."""
    build = SCHEDULERS.get(cfg.scheduler)
    try:
        return build(optimizer, cfg, lower_is_better, **cfg.scheduler_params)
    except TypeError as err:
        raise ConfigError(f"scheduler '{cfg.scheduler}': {err}; check scheduler_params") from None


@SCHEDULERS.register
def cosine(optimizer, cfg, lower_is_better, warmup_epochs: int = 0, min_lr: float = 0.0):
    """Linear warmup over `warmup_epochs`, then cosine decay to `min_lr` (a fraction of each group's lr).

    Args:
        optimizer: the optimizer whose groups are scheduled.
        cfg: the model's config (epochs, lr).
        lower_is_better: unused (the plateau scheduler's).
        warmup_epochs: epochs of linear warmup.
        min_lr: the floor, as an absolute learning rate of the head group.
    """
    decay = max(cfg.epochs - warmup_epochs, 1)
    floor = min_lr / cfg.lr

    def factor(epoch: int) -> float:
        if epoch < warmup_epochs:
            return (epoch + 1) / (warmup_epochs + 1)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(epoch - warmup_epochs, decay) / decay))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@SCHEDULERS.register
def step(optimizer, cfg, lower_is_better, step_size: int = 10, gamma: float = 0.1):
    """The learning rate times `gamma` every `step_size` epochs (the arguments as for `cosine`)."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)


@SCHEDULERS.register
def plateau(optimizer, cfg, lower_is_better, factor: float = 0.1, patience: int = 3, min_lr: float = 0.0):
    """The learning rate times `factor` after `patience` epochs without improvement of the monitor, down to
    `min_lr`; `lower_is_better` says which way the monitor improves (the other arguments as for `cosine`)."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min" if lower_is_better else "max",
                                                      factor=factor, patience=patience, min_lr=min_lr)


@SCHEDULERS.register
def none(optimizer, cfg, lower_is_better):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def step_scheduler(scheduler, monitored: float) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if not math.isnan(monitored):
            scheduler.step(monitored)
    else:
        scheduler.step()


def trainable_blocks(cfg: ModelConfig, epoch: int) -> int | None:
    """How many backbone blocks (from the last) train in `epoch`: 0 in stage 1, None = all."""
    if epoch < cfg.freeze_epochs:
        return 0
    if cfg.unfreeze_blocks is None:
        return None
    return min(cfg.unfreeze_blocks, epoch - cfg.freeze_epochs + 1)


def apply_stage(model: nn.Module, cfg: ModelConfig, epoch: int) -> str:
    """Freeze what this epoch does not train; frozen parts also keep their BatchNorm statistics.

    Call after model.train(). Returns a short description for the log."""
    k = trainable_blocks(cfg, epoch)
    blocks = backbone_blocks(model.backbone)
    frozen = blocks if k == 0 else [] if k is None else blocks[:len(blocks) - k]
    frozen_ids = {id(p) for block in frozen for p in block.parameters()}
    if k == 0:
        frozen_ids |= {id(p) for p in model.backbone.parameters()}
        model.backbone.eval()
    for p in model.backbone.parameters():
        p.requires_grad_(id(p) not in frozen_ids)
    for block in frozen:
        block.eval()
    return "head only" if k == 0 else "all" if k is None else f"head + last {k} of {len(blocks)} backbone blocks"
