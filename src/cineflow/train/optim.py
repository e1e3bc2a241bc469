"""A stage's optimizer and scheduler, from timm, and what trains in it.

Parameters come in two groups, backbone and head, each with its own learning rate, so that a stage can
fine-tune a pretrained backbone more gently than the new head. Optimizers and schedulers are timm's:
every name timm knows works, with timm's own arguments.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cineflow.config import ConfigError, Stage
from cineflow.models.adapters import has_adapter, is_adapter_key
from cineflow.models.architectures import backbone_blocks


def param_groups(model: nn.Module, stage: Stage) -> list[dict]:
    """[backbone at backbone_lr (default lr), everything else at lr], empty groups left out."""
    backbone = {id(p) for p in model.backbone.parameters()}
    groups = [{"name": "backbone", "params": [p for p in model.parameters() if id(p) in backbone],
               "lr": stage.backbone_lr or stage.lr},
              {"name": "head", "params": [p for p in model.parameters() if id(p) not in backbone], "lr": stage.lr}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, stage: Stage) -> torch.optim.Optimizer:
    """timm's create_optimizer_v2 over the two groups; `lookahead_<name>` wraps <name> in Lookahead, and
    optimizer_params' gradient_centralization adds Ranger's gradient centralisation (timm has none).

    Frozen parameters stay in the groups: they get no gradient, so no optimizer moves them, and a later
    stage that unfreezes them builds its own optimizer."""
    from timm.optim import create_optimizer_v2

    params = dict(stage.optimizer_params)
    centralise = params.pop("gradient_centralization", False)
    try:
        optimizer = create_optimizer_v2(param_groups(model, stage), opt=stage.optimizer, lr=stage.lr,
                                        weight_decay=stage.weight_decay, **params)
    except (TypeError, ValueError, AssertionError) as err:
        raise ConfigError(f"optimizer '{stage.optimizer}' with optimizer_params {stage.optimizer_params}: {err}"
                          ) from None
    if centralise:  # on the inner optimizer: timm's Lookahead.step runs no hooks of its own
        getattr(optimizer, "_base_optimizer", optimizer).register_step_pre_hook(centralise_gradients)
    return optimizer


def centralise_gradients(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    """Gradient centralisation (Yong et al. 2020), as Ranger applies it with gc_conv_only=False: each gradient
    of a weight with more than one dimension loses its mean over all dimensions but the first. A step
    pre-hook, so it runs after AMP's unscale and before the update."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None and p.grad.dim() > 1:
                p.grad.sub_(p.grad.mean(dim=tuple(range(1, p.grad.dim())), keepdim=True))


def build_scheduler(optimizer: torch.optim.Optimizer, stage: Stage, updates_per_epoch: int, lower_is_better: bool):
    """timm's create_scheduler_v2 over the stage's epochs, or None for `none`.

    Stepped by `Schedule`: per epoch, or per update with step_on_epochs: false or warmup_steps. The
    warmup starts from timm's warmup_lr (1e-5 unless given), the same for both groups: with a backbone
    learning rate near it, set warmup_lr: 0 and step per update. timm's cosine runs over the whole stage with
    the warmup laid over its start, so after the warmup it is below its peak; with warmup_prefix: true it starts
    at the peak once the warmup ends and still ends with the stage (Hugging Face's cosine with warmup: the EF
    study's).

    Args:
        optimizer: the stage's optimizer.
        stage: the stage (scheduler, scheduler_params, epochs).
        updates_per_epoch: optimizer updates in one epoch of this process.
        lower_is_better: which way the plateau scheduler's metric (stop_on) improves.
    """
    from timm.scheduler import create_scheduler_v2

    if stage.scheduler == "none":
        return None
    params = {"num_epochs": stage.epochs, **stage.scheduler_params}
    warmup_steps = params.pop("warmup_steps", None)
    if warmup_steps is not None:
        params.update(step_on_epochs=False, warmup_epochs=warmup_steps / max(1, updates_per_epoch))
    if not params.get("step_on_epochs", True):
        params["updates_per_epoch"] = max(1, updates_per_epoch)
    if params.get("warmup_prefix"):  # timm adds a prefixed warmup to num_epochs; the stage's length is fixed
        # (a warmup as long as the stage, as in a shortened test run, leaves the cosine one epoch)
        params["num_epochs"] = max(1, params["num_epochs"] - params.get("warmup_epochs", 0))
    try:
        if stage.scheduler == "plateau":
            return plateau(optimizer, lower_is_better, **stage.scheduler_params)
        scheduler, _ = create_scheduler_v2(optimizer, sched=stage.scheduler, **params)
    except (TypeError, ValueError, AssertionError) as err:
        raise ConfigError(f"scheduler '{stage.scheduler}' with scheduler_params {stage.scheduler_params}: {err}"
                          ) from None
    return scheduler


def plateau(optimizer: torch.optim.Optimizer, lower_is_better: bool, patience_epochs: int = 10,
            decay_rate: float = 0.1, min_lr: float = 0.0, cooldown_epochs: int = 0):
    """The learning rates times `decay_rate` after `patience_epochs` epochs without improvement of stop_on,
    down to `min_lr` (timm's plateau arguments). torch's ReduceLROnPlateau rather than timm's wrapper of
    it: timm deprecates that wrapper, and it does not save its counters, which an exact resume needs.

    Args:
        optimizer: the stage's optimizer.
        lower_is_better: which way stop_on improves.
        patience_epochs: epochs without improvement before a decay.
        decay_rate: the factor.
        min_lr: the floor.
        cooldown_epochs: epochs after a decay before counting again.
    """
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min" if lower_is_better else "max",
                                                      factor=decay_rate, patience=patience_epochs, min_lr=min_lr,
                                                      cooldown=cooldown_epochs)


class Schedule:
    """Steps a timm scheduler (or nothing): `update` after every optimizer update, `epoch` after every
    epoch of the stage with the latest validation value of stop_on (None when no validation came since:
    the plateau scheduler then waits)."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    def update(self, updates: int) -> None:
        if self.scheduler is not None and not self.plateau:
            self.scheduler.step_update(updates)

    def epoch(self, finished: int, metric: float | None) -> None:
        if self.scheduler is None:
            return
        if not self.plateau:
            self.scheduler.step(finished)
        elif metric is not None and not math.isnan(metric):
            self.scheduler.step(metric)

    def state_dict(self) -> dict:
        return {} if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)


def trainable_blocks(stage: Stage, epoch_in_stage: int) -> int | None:
    """How many backbone blocks (from the last) train: 0 = head only, None = all."""
    if stage.train == "all":
        return None
    start = 0 if stage.train == "head" else int(stage.train)
    return start + stage.grow * (epoch_in_stage // stage.grow_every)


def apply_trainable(model: nn.Module, stage: Stage, epoch_in_stage: int) -> str:
    """Freeze what this epoch of the stage does not train; frozen parts also keep their BatchNorm statistics.

    Call after model.train(). Returns a short description for the log and the history."""
    k = trainable_blocks(stage, epoch_in_stage)
    blocks = backbone_blocks(model.backbone)
    if k is not None and k >= len(blocks):
        k = None
    frozen = blocks if k == 0 else [] if k is None else blocks[:len(blocks) - k]
    frozen_ids = {id(p) for block in frozen for p in block.parameters()}
    if k == 0:
        frozen_ids |= {id(p) for p in model.backbone.parameters()}
        model.backbone.eval()
    for p in model.backbone.parameters():
        p.requires_grad_(id(p) not in frozen_ids)
    if has_adapter(model):  # the base weights never train; the unfrozen blocks' adapters do
        for name, p in model.backbone.named_parameters():
            p.requires_grad_(p.requires_grad and is_adapter_key(name))
    for block in frozen:
        block.eval()
    return "head only" if k == 0 else "all" if k is None else f"head + last {k} of {len(blocks)} backbone blocks"
