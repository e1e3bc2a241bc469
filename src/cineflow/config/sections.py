"""Typed views of the validated config's sections, and the stages of a model's training."""

from __future__ import annotations

from dataclasses import dataclass, fields

from cineflow.config.errors import ConfigError

AUTO_LOADER_WORKERS = 4  # resources.loader_workers "auto" on a GPU: EchoNet-Dynamic's default


def from_dict(cls, data: dict):
    """An instance of the dataclass `cls` from a config section; unknown keys are a ConfigError naming them."""
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {sorted(unknown)}; allowed: {sorted(names)}")
    return cls(**data)


@dataclass(frozen=True)
class DataConfig:
    layout: str
    root: str
    labels: str | list | None
    join_on: str | None
    columns: dict
    label_map: dict | None
    label_threshold: float | None
    augment_original: list
    synthetic_low_quality: dict
    query: str | None
    classes: list
    targets: list
    subgroups: list
    ef_threshold: float
    group_pattern: str | None
    folder: str | None
    strict: bool
    deidentify: dict

    from_dict = classmethod(from_dict)

    @property
    def tables(self) -> list[str]:
        """data.labels as a list of tables (one, or those joined on data.join_on)."""
        if not self.labels:
            return []
        return [self.labels] if isinstance(self.labels, str) else list(self.labels)


@dataclass(frozen=True)
class DemoConfig:
    n_patients: int
    clips_per_patient: int
    hflip_fraction: float
    n_frames: int
    size: int
    fps: float
    ef_range: list
    ef_threshold: float
    n_corrupt: int
    sites: list
    gain: float

    from_dict = classmethod(from_dict)


@dataclass(frozen=True)
class CacheConfig:
    shards: int
    store: str
    reader: str
    media: str
    crop: list | None
    sector_mask: bool
    fill: list
    keep_aspect: bool
    interpolation: str
    size: int
    color: str
    fps: float | None
    max_frames: int | None
    source_fps: float | None
    frame_normalisation: dict | None
    roi: dict
    # data.deidentify's pixel rules (deidentify.pixel_rules), put here by config.cache_settings so that they reach
    # every reader of a video: the cache, the CAMs and, through the checkpoint, predict and the app; None = off
    deidentify: dict | None = None

    from_dict = classmethod(from_dict)

    @property
    def channels(self) -> int:
        return 1 if self.color == "grey" else 3

    @property
    def outline_roi(self) -> bool:
        return bool(self.roi.get("outline_color"))


@dataclass(frozen=True)
class SplitConfig:
    mode: str
    folds: int
    repeats: int
    val_fraction: float

    from_dict = classmethod(from_dict)


@dataclass(frozen=True)
class ModelConfig:
    arch: str
    arch_params: dict
    pretrained: bool
    weights: str | None
    task: str
    target: str | None
    size: int | None
    color: str | None
    normalise: str | dict
    clip_length: int
    clip_period: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    loss: str | None
    loss_params: dict
    monitor: str | None
    stop_on: str | None
    patience: int
    optimizer: str
    optimizer_params: dict
    scheduler: str
    scheduler_params: dict
    freeze_epochs: int
    backbone_lr: float | None
    stages: list
    val_every_steps: int | None
    val_every_unit: str
    gradcam_every: int
    gradcam_videos: int
    output_bias: float | None
    weights_strict: bool
    fuse_directions: str | None
    fuse_params: dict
    accumulate: int
    clip_grad_norm: float | None
    amp: str
    channels_last: bool
    compile: bool | str
    gpus: int
    sampler: str
    clip_sampling: str
    clip_offset: int
    augment: dict
    ema: dict | None
    adapter: dict | None
    probe: dict | None

    from_dict = classmethod(from_dict)


@dataclass(frozen=True)
class Stage:
    """One stage of training (models.<name>.stages), every value filled from the model's."""

    epochs: int
    train: str | int  # "head", "all" or the last k backbone blocks
    grow: int  # blocks unfrozen in addition after each grow_every epochs
    grow_every: int
    optimizer: str
    optimizer_params: dict
    lr: float
    backbone_lr: float | None
    weight_decay: float
    scheduler: str
    scheduler_params: dict
    patience: int  # 0 = no early stopping
    monitor: str
    stop_on: str


def model_stages(cfg: ModelConfig, monitor: str) -> list[Stage]:
    """The model's stages, each key a stage leaves out taken from the model: `stages` as written, the two of
    the `freeze_epochs` shorthand, or one stage of `epochs` training everything.

    Args:
        cfg: the model's config.
        monitor: the selection metric with the task's default filled in (train.fold.model_task).
    """
    base = dict(train="all", grow=0, grow_every=1, optimizer=cfg.optimizer, optimizer_params=cfg.optimizer_params, lr=cfg.lr,
                backbone_lr=cfg.backbone_lr, weight_decay=cfg.weight_decay, scheduler=cfg.scheduler,
                scheduler_params=cfg.scheduler_params, patience=cfg.patience, monitor=monitor,
                stop_on=cfg.stop_on or monitor)
    if cfg.stages:
        stages = cfg.stages
    elif cfg.freeze_epochs:
        stages = [{"epochs": cfg.freeze_epochs, "train": "head"}, {"epochs": cfg.epochs - cfg.freeze_epochs}]
    else:
        stages = [{"epochs": cfg.epochs}]
    return [Stage(**{**base, **stage}) for stage in stages]


@dataclass(frozen=True)
class TrackingConfig:
    tensorboard: bool
    mlflow: bool
    wandb: bool
    experiment: str

    from_dict = classmethod(from_dict)


@dataclass(frozen=True)
class EvalConfig:
    threshold: str
    eval_clips: int | str
    block: int
    mc_dropout: int
    bootstrap: int
    calibration: str
    aggregate: dict
    calibration_bins: int
    regression_bins: list
    cutoffs: list
    min_subgroup: int
    shift_quantile: float
    shift_reference_videos: int

    from_dict = classmethod(from_dict)


@dataclass(frozen=True)
class GradcamConfig:
    n_videos: int
    select: list | None
    fps: float | None
    max_side: int
    target_layer: str | None

    from_dict = classmethod(from_dict)
