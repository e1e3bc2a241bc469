"""Optimizers, schedules, two-stage fine-tuning stages, class-balanced batches and gradient clipping."""

import numpy as np
import pytest
import torch

from cineflow.config import ModelConfig, resolve
from cineflow.models.architectures import backbone_blocks, build_model
from cineflow.train.batching import epoch_batches
from cineflow.train.optim import apply_stage, build_optimizer, build_scheduler, step_scheduler, trainable_blocks
from cineflow.train.precision import Precision


def cfg(**over) -> ModelConfig:
    return ModelConfig.from_dict(resolve({"models": {"m": over}})["models"]["m"])


def lrs(c: ModelConfig, epochs: int, monitored=None) -> list[float]:
    model = build_model("tiny3d", 2, 1, width=4)
    opt = build_optimizer(model, c)
    sched = build_scheduler(opt, c, lower_is_better=True)
    out = []
    for e in range(epochs):
        out.append(opt.param_groups[-1]["lr"])
        opt.step()  # no gradients: changes nothing, keeps the scheduler's step order
        step_scheduler(sched, monitored[e] if monitored else 0.0)
    return out


def test_cosine_with_warmup_step_and_plateau_schedules():
    warm = lrs(cfg(lr=1.0, epochs=6, scheduler_params={"warmup_epochs": 2}), 6)
    assert warm[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert warm[3] == pytest.approx(0.5 * (1 + np.cos(np.pi / 4))) and warm[3] > warm[4] > warm[5]
    assert lrs(cfg(lr=1.0, scheduler="step", scheduler_params={"step_size": 2, "gamma": 0.5}), 5) == \
        pytest.approx([1, 1, 0.5, 0.5, 0.25])
    plateau = lrs(cfg(lr=1.0, scheduler="plateau", scheduler_params={"patience": 1, "factor": 0.1}), 5,
                  monitored=[1.0, 0.9, 0.9, 0.9, 0.9])
    assert plateau == pytest.approx([1, 1, 1, 1, 0.1])


def test_optimizers_from_the_registry_with_their_own_parameters():
    model = build_model("tiny3d", 2, 1, width=4)
    sgd = build_optimizer(model, cfg(optimizer="sgd", optimizer_params={"momentum": 0.9, "nesterov": True}))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["nesterov"]
    assert isinstance(build_optimizer(model, cfg(optimizer="adam")), torch.optim.Adam)


def test_two_stage_fine_tuning_freezes_then_unfreezes_progressively():
    c = cfg(freeze_epochs=2, unfreeze_blocks=2, lr=1e-3, backbone_lr=1e-5)
    assert [trainable_blocks(c, e) for e in range(5)] == [0, 0, 1, 2, 2]
    assert trainable_blocks(cfg(freeze_epochs=1), 1) is None
    model = build_model("frame2d", 2, 1, backbone="test_resnet")
    groups = {g["name"]: g["lr"] for g in build_optimizer(model, c).param_groups}
    assert groups == {"backbone": 1e-5, "head": 1e-3}
    blocks = backbone_blocks(model.backbone)

    def trainable(module):
        return all(p.requires_grad for p in module.parameters())

    model.train()
    assert apply_stage(model, c, 0) == "head only"
    assert not any(p.requires_grad for p in model.backbone.parameters()) and trainable(model.head)
    assert not model.backbone.training  # frozen BatchNorm statistics stay put
    model.train()
    apply_stage(model, c, 3)
    assert [trainable(b) for b in blocks[-3:]] == [False, True, True]
    assert not blocks[-3].training and blocks[-1].training


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
