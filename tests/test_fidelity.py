"""Each example carries the values its study states, checked on the resolved config (schema defaults filled),
so a changed example or a changed default that moves a study's recipe fails here. The rows of
docs/models-and-training.md ("The five studies' recipes") name the same values and where each comes from;
values a study leaves open ("not stated") are not listed."""

from __future__ import annotations

import pytest
import yaml

from cineflow.config import resolve
from helpers import REPO

# config path (dots; a stage by its index) -> the study's value, as the study's code runs
STATED = {
    "ann_vs_normal": {
        "data.columns.group": "SCAN", "data.columns.augment": "[{AUGMENT}]",
        "data.columns.path": "preprocessed_frames_aug/{VIDEO_NAME}[_{AUGMENT}]",
        "cache.size": 224, "cache.color": "rgb",
        "models.effnet_bilstm.arch": "frame2d", "models.effnet_bilstm.arch_params.temporal_head": "bilstm_attention",
        "models.effnet_bilstm.sampler": "balanced_batches", "evaluate.threshold": "youden", "evaluate.eval_clips": 1,
    },
    "echo_quality": {
        "data.labels": "data/echo_quality/echo_annotations.csv", "data.columns.path": "video_path",
        "data.columns.label": "quality_score", "data.label_map": {0: "POOR", 1: "GOOD"},
        "tracking.mlflow": True,
        **{f"models.{m}.{key}": value for m in ("r2plus1d_quality", "r2plus1d_quality_progressive") for key, value in {
            "arch": "r2plus1d_18", "batch_size": 8, "optimizer": "adam", "lr": 1e-4, "weight_decay": 1e-5,
            "scheduler": "plateau", "scheduler_params.decay_rate": 0.1, "loss": "focal", "loss_params.gamma": 2.0,
            "monitor": "loss", "stages.0.epochs": 20, "augment.brightness.p": 0.5, "augment.rotation.degrees": 5,
            "augment.translation.fraction": 0.05, "augment.zoom.range": 0.05, "augment.noise.std": [0.0, 0.02],
            "augment.temporal_crop.min_fraction": 0.9, "augment.frame_mask.fraction": 0.05}.items()},
        "models.r2plus1d_quality.stages.0.train": 4,  # NUM_UNFROZEN_LAYERS = 2 ResNet layers = 4 blocks
        "models.r2plus1d_quality_progressive.stages.0.train": 2, "models.r2plus1d_quality_progressive.stages.0.grow": 2,
    },
    "lung_xray": {
        "tracking.tensorboard": True, "tracking.mlflow": True, "tracking.wandb": True,
        "tracking.experiment": "lungs-disease",
        "cache.keep_aspect": False, "cache.interpolation": "bilinear", "cache.color": "grey",
        "cache.size": 224, "models.efficientnetv2_s.size": 288, "models.efficientnetv2_m.size": 320,
        "models.efficientnetv2_l.size": 384, "models.convnextv2_tiny.batch_size": 256,
        "models.efficientnetv2_s.batch_size": 192, "models.efficientnetv2_m.batch_size": 144,
        "models.efficientnetv2_l.batch_size": 96,
        **{f"models.convnextv2_tiny.{key}": value for key, value in {
            "arch_params.hidden": 128, "arch_params.dropout": [0.3, 0.25], "loss": "cross_entropy",
            "loss_params.label_smoothing": 0.1, "monitor": "accuracy", "stop_on": "loss", "normalise": "fold",
            "stages.0.epochs": 5, "stages.0.train": "head", "stages.0.optimizer": "adam", "stages.0.lr": 1e-4,
            "stages.0.weight_decay": 0.0, "stages.0.scheduler": "none", "stages.0.patience": 0,
            "stages.1.epochs": 15, "stages.1.train": "all", "stages.1.optimizer": "adamw", "stages.1.lr": 3e-5,
            "stages.1.backbone_lr": 5e-6, "stages.1.weight_decay": 0.01, "stages.1.scheduler": "cosine",
            "stages.1.scheduler_params.min_lr": 1e-7, "stages.1.patience": 5}.items()},
    },
    "echonet_videomae": {
        "cache.size": 224, "tracking.wandb": True, "tracking.experiment": "EchoNet-VideoMAE",
        **{f"models.videomae_ef.{key}": value for key, value in {
            "arch": "videomae", "arch_params.checkpoint": "MCG-NJU/videomae-base", "arch_params.pool_hidden": 128,
            "arch_params.hidden": [256, 64], "arch_params.dropout": 0.1, "clip_length": 16, "task": "regression",
            "loss": "weighted_mse", "loss_params.rules": [["<", 30, 3.0], ["<", 40, 2.0], [">", 70, 2.5]],
            "output_bias": 55.0, "batch_size": 12, "accumulate": 8, "optimizer": "adamw", "lr": 1e-3,
            "backbone_lr": 1e-5, "scheduler": "cosine", "scheduler_params.warmup_lr": 0.0,
            "scheduler_params.warmup_prefix": True, "clip_grad_norm": 1.0, "val_every_steps": 500,
            "val_every_unit": "batches", "patience": 5, "amp": "fp16", "normalise": "imagenet"}.items()},
    },
    "stall_catchers": {
        "data.columns.group": "project_id", "cache.fill": [0, 0, 255], "cache.size": 112,
        "cache.interpolation": "bicubic", "evaluate.threshold": "fixed",
        **{f"models.r2plus1d_stall.{key}": value for key, value in {
            "arch": "r2plus1d_18", "pretrained": False, "normalise": "imagenet", "clip_length": 40, "clip_period": 1,
            "clip_sampling": "middle_window", "fuse_directions": "concat_mlp",
            "fuse_params": {"latent": 512, "hidden": 1024, "dropout": 0.4}, "batch_size": 8, "accumulate": 8,
            "lr": 1e-4, "scheduler": "none", "monitor": "mcc", "amp": "fp16", "stages.0.train": 6,
            "stages.0.patience": 0, "stages.1.patience": 0,
            "stages.0.optimizer": "adam", "stages.0.optimizer_params.eps": 1e-4, "stages.0.weight_decay": 1e-4,
            "stages.1.train": 6, "stages.1.epochs": 27, "stages.1.optimizer": "lookahead_radam",
            "stages.1.optimizer_params.gradient_centralization": True,
            "augment.rotation.p": 0.5, "augment.rotation.angles": [45, 90, 135, 180, 225, 270, 315]}.items()},
        "models.resnext101_stall.arch": "resnext3d", "models.resnext101_stall.arch_params.depth": 101,
        "models.resnext101_stall.pretrained": False, "models.resnext101_stall.fuse_params.dropout": 0.0,
        "models.resnext101_stall.stages.0.train": 33, "models.resnext101_stall.stages.1.train": 33,
        "models.resnext101_stall.clip_sampling": "middle_window",
    },
}


def at(config: dict, path: str):
    node = config
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


@pytest.mark.parametrize("study", sorted(STATED))
def test_each_example_carries_its_studys_stated_values(study):
    config = resolve(yaml.safe_load((REPO / "config" / "examples" / f"{study}.yaml").read_text()))
    wrong = {path: (at(config, path), value) for path, value in STATED[study].items() if at(config, path) != value}
    assert not wrong, f"{study}: (example, study) differ at {wrong}"
