"""Optimizers and schedulers from timm, stages (what trains, with which optimizer), class-balanced
batches and gradient clipping."""

import numpy as np
import pytest
import torch
import yaml

from cineflow.config import SCHEMA_PATH, ConfigError, ModelConfig, check_models, model_stages, resolve
from cineflow.models.architectures import backbone_blocks, build_model
from cineflow.train.batching import epoch_batches
from cineflow.train.optim import Schedule, apply_trainable, build_optimizer, build_scheduler, trainable_blocks
from cineflow.train.precision import Precision


def cfg(**over) -> ModelConfig:
    return ModelConfig.from_dict(resolve({"models": {"m": over}})["models"]["m"])


def lrs(c: ModelConfig, epochs: int, monitored=None, updates_per_epoch: int = 1) -> list[float]:
    """The head's learning rate in each epoch of the first stage, stepped as train_fold steps it."""
    model = build_model("tiny3d", 2, 1, width=4)
    stage = model_stages(c, "loss")[0]
    opt = build_optimizer(model, stage)
    schedule = Schedule(build_scheduler(opt, stage, updates_per_epoch, lower_is_better=True))
    out, updates = [], 0
    for e in range(epochs):
        out.append(opt.param_groups[-1]["lr"])
        for _ in range(updates_per_epoch):
            opt.step()  # no gradients: changes nothing
            updates += 1
            schedule.update(updates)
        schedule.epoch(e + 1, monitored[e] if monitored else None)
    return out


def test_timm_schedules_cosine_warmup_step_plateau_and_warm_restarts():
    warm = lrs(cfg(lr=1.0, epochs=6, scheduler_params={"warmup_epochs": 2, "warmup_lr": 0.0}), 6)
    cosine = [0.5 * (1 + np.cos(np.pi * e / 6)) for e in range(6)]  # over all 6 epochs (timm: no warmup_prefix)
    assert warm == pytest.approx([0, 0.5] + cosine[2:])
    assert lrs(cfg(lr=1.0, scheduler="step", scheduler_params={"decay_epochs": 2, "decay_rate": 0.5}), 5) == \
        pytest.approx([1, 1, 0.5, 0.5, 0.25])
    plateau = lrs(cfg(lr=1.0, scheduler="plateau", scheduler_params={"patience_epochs": 1, "decay_rate": 0.1}), 5,
                  monitored=[1.0, 0.9, 0.9, 0.9, 0.9])
    assert plateau == pytest.approx([1, 1, 1, 1, 0.1])
    assert lrs(cfg(lr=1.0, scheduler="none"), 3) == [1.0, 1.0, 1.0]
    # the echo quality study's CosineAnnealingWarmRestarts(T_0=2, T_mult=2): back to lr after 2, then 4 epochs
    restarts = lrs(cfg(lr=1.0, epochs=8, scheduler_params={"num_epochs": 2, "cycle_mul": 2, "cycle_decay": 1.0,
                                                            "cycle_limit": 5}), 8)
    assert restarts[0] == restarts[2] == restarts[6] == 1.0 and restarts[1] == pytest.approx(0.5)
    # warmup counted in updates: 4 updates per epoch, 2 of warmup, the cosine over all 12
    steps = lrs(cfg(lr=1.0, epochs=3, scheduler_params={"warmup_steps": 2, "warmup_lr": 0.0}), 3, updates_per_epoch=4)
    assert steps[0] == 0.0 and steps[1] == pytest.approx(0.5 * (1 + np.cos(np.pi * 4 / 12)))


def test_warmup_prefix_starts_the_cosine_at_its_peak_and_ends_it_with_the_stage():
    """Hugging Face's cosine with warmup (the EF study's): linear from 0 over the warmup, then a whole cosine."""
    params = {"warmup_epochs": 2, "warmup_lr": 0.0, "warmup_prefix": True, "step_on_epochs": False}
    got = lrs(cfg(lr=1.0, epochs=10, scheduler_params=params), 10, updates_per_epoch=4)
    cosine = [0.5 * (1 + np.cos(np.pi * e / 8)) for e in range(8)]  # over the 8 epochs after the warmup
    assert got == pytest.approx([0.0, 0.5] + cosine, abs=1e-9)


def test_every_timm_optimizer_name_works_and_ranger_is_lookahead_radam():
    from timm.optim import Lookahead, list_optimizers

    schema = yaml.safe_load(SCHEMA_PATH.read_text())["definitions"]["timm_optimizers"]["enum"]
    assert set(schema) <= set(list_optimizers())  # every name the parse lets through, timm builds
    model = build_model("tiny3d", 2, 1, width=4)
    ranger = build_optimizer(model, model_stages(cfg(optimizer="lookahead_radam"), "loss")[0])
    assert isinstance(ranger, Lookahead) and isinstance(ranger._base_optimizer, torch.optim.RAdam)
    momentum = build_optimizer(model, model_stages(cfg(optimizer="momentum", optimizer_params={"momentum": 0.8}),
                                                   "loss")[0])
    assert isinstance(momentum, torch.optim.SGD) and momentum.param_groups[0]["momentum"] == 0.8
    with pytest.raises(ConfigError, match="'ranger' is not a timm optimizer; choose one of adabelief"):
        check_models(resolve({"models": {"m": {"optimizer": "ranger"}}}))
    with pytest.raises(ConfigError, match="stages/1/optimizer: 'adamm'"):
        check_models(resolve({"models": {"m": {"stages": [{"epochs": 1}, {"epochs": 1, "optimizer": "adamm"}]}}}))
    with pytest.raises(ConfigError, match="freeze_epochs is the shorthand"):
        check_models(resolve({"models": {"m": {"freeze_epochs": 1, "stages": [{"epochs": 1}]}}}))
    with pytest.raises(ConfigError, match="config key 'models/m/scheduler'"):
        resolve({"models": {"m": {"scheduler": "cosinewarm"}}})


def test_gradient_centralization_is_rangers_inside_lookahead():
    """Ranger's GC: each weight gradient (conv, linear) loses its mean over all but the output dimension before
    the update; biases and norms keep theirs. The update equals RAdam's on centralised gradients."""
    torch.manual_seed(0)
    models = [build_model("tiny3d", 2, 1, width=4) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    gc = {"gradient_centralization": True}
    ranger = build_optimizer(models[0], model_stages(cfg(optimizer="lookahead_radam", optimizer_params=gc), "loss")[0])
    plain = build_optimizer(models[1], model_stages(cfg(optimizer="lookahead_radam"), "loss")[0])
    assert (ranger.defaults["lookahead_alpha"], ranger.defaults["lookahead_k"]) == (0.5, 6)  # Ranger's
    x = torch.randn(2, 1, 4, 16, 16)
    for model in models:
        torch.manual_seed(1)  # the same dropout draws
        model(x).sum().backward()
    for p in models[1].parameters():  # centralise by hand for the plain one
        if p.grad.dim() > 1:
            p.grad -= p.grad.mean(dim=tuple(range(1, p.grad.dim())), keepdim=True)
    ranger.step()
    plain.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.allclose(a, b, atol=1e-7)
    weights = [p for p in models[0].parameters() if p.dim() > 1]
    assert all(p.grad.mean(dim=tuple(range(1, p.dim()))).abs().max() < 1e-6 for p in weights)
    assert any(p.grad.abs().sum() > 0 and p.dim() == 1 and p.grad.mean().abs() > 1e-6
               for p in models[0].parameters())  # biases are left alone


def test_stages_take_the_models_values_and_freeze_epochs_is_two_of_them():
    c = cfg(epochs=7, freeze_epochs=2, lr=1e-3, backbone_lr=1e-5, optimizer="adamw", monitor="accuracy")
    head, rest = model_stages(c, "accuracy")
    assert (head.epochs, head.train, rest.epochs, rest.train) == (2, "head", 5, "all")
    assert rest.backbone_lr == 1e-5 and rest.optimizer == "adamw" and rest.stop_on == "accuracy"
    lung = cfg(monitor="accuracy", stop_on="loss", stages=[
        {"epochs": 5, "train": "head", "optimizer": "adam", "lr": 1e-4, "weight_decay": 0.0, "scheduler": "none",
         "patience": 0},
        {"epochs": 15, "optimizer": "adamw", "lr": 3e-5, "backbone_lr": 5e-6, "weight_decay": 0.01,
         "scheduler_params": {"min_lr": 1e-7}, "patience": 5}])
    one, two = model_stages(lung, "accuracy")
    assert (one.optimizer, one.patience, one.monitor, one.stop_on) == ("adam", 0, "accuracy", "loss")
    assert (two.scheduler, two.backbone_lr, two.train) == ("cosine", 5e-6, "all")
    model = build_model("frame2d", 2, 1, backbone="test_resnet")
    assert isinstance(build_optimizer(model, one), torch.optim.Adam)
    groups = {g["name"]: g["lr"] for g in build_optimizer(model, two).param_groups}
    assert groups == {"backbone": 5e-6, "head": 3e-5}


def test_trainable_parts_head_last_blocks_growing_and_all():
    c = cfg(stages=[{"epochs": 2, "train": "head"}, {"epochs": 3, "train": 1, "grow": 1}, {"epochs": 1}])
    head, grow, rest = model_stages(c, "loss")
    assert [trainable_blocks(head, 0), trainable_blocks(grow, 0), trainable_blocks(grow, 2),
            trainable_blocks(rest, 0)] == [0, 1, 3, None]
    # the echo quality study's progressive unfreezing in one stage: 2, 4 then 6 blocks, 7 epochs apart
    phases, = model_stages(cfg(stages=[{"epochs": 20, "train": 2, "grow": 2, "grow_every": 7}]), "loss")
    assert [trainable_blocks(phases, e) for e in (0, 6, 7, 13, 14, 19)] == [2, 2, 4, 4, 6, 6]
    model = build_model("frame2d", 2, 1, backbone="test_resnet")
    blocks = backbone_blocks(model.backbone)

    def trainable(module):
        return all(p.requires_grad for p in module.parameters())

    model.train()
    assert apply_trainable(model, head, 0) == "head only"
    assert not any(p.requires_grad for p in model.backbone.parameters()) and trainable(model.head)
    assert not model.backbone.training  # frozen BatchNorm statistics stay put
    model.train()
    assert apply_trainable(model, grow, 1) == f"head + last 2 of {len(blocks)} backbone blocks"
    assert [trainable(b) for b in blocks[-3:]] == [False, True, True]
    assert not blocks[-3].training and blocks[-1].training
    model.train()
    assert apply_trainable(model, grow, 50) == "all" and trainable(model)


def test_balanced_batches_hold_the_classes_equally_and_are_reproducible():
    y = np.array([0] * 18 + [1] * 6)
    batches = epoch_batches("balanced_batches", y, 6, seed=1, epoch=0)
    assert len(batches) == 4 and all(len(b) == 6 for b in batches)
    assert all((y[b] == 1).sum() == 3 for b in batches)
    assert batches == epoch_batches("balanced_batches", y, 6, seed=1, epoch=0)
    assert batches != epoch_batches("balanced_batches", y, 6, seed=1, epoch=1)
    weighted = np.concatenate(epoch_batches("weighted", np.array([0] * 90 + [1] * 10), 10, 0, 0))
    assert 0.35 < (weighted >= 90).mean() < 0.65  # 10 % minority drawn about half the time
    plain = epoch_batches("shuffle", y, 5, seed=1, epoch=0)
    assert len(plain) == 4 and len(set(np.concatenate(plain))) == 20  # the short last batch is dropped


def test_gradient_clipping_bounds_the_update_and_cpu_stays_in_full_precision():
    precision = Precision("auto", torch.device("cpu"))
    assert precision.name == "fp32"
    w = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([w], lr=1.0)
    (w * torch.tensor([300.0, 400.0, 0.0])).sum().backward()
    precision.step(opt, [w], clip_grad_norm=1.0)
    assert torch.allclose(w.detach(), torch.tensor([-0.6, -0.8, 0.0]))
    assert w.grad is None  # zeroed for the next accumulation window
