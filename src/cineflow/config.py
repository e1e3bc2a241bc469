"""Typed views of the validated config. Defaults live in one place: the schema, package data at
cineflow/schema/config.schema.yaml, which the Snakefile validates against too.

The workflow imports this module while it parses, so it imports nothing heavier than PyYAML.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "config.schema.yaml"


AUTO_LOADER_WORKERS = 4  # resources.loader_workers "auto" on a GPU: EchoNet-Dynamic's default


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


NAME_MAX = 128  # characters of a name that becomes part of a file path


def unsafe_name(name: object) -> str | None:
    """Why `name` (a video id, model, external set or class) cannot be part of a file path under results/,
    or None when it can. Such names become file and folder names, so anything that could climb out of
    results/ or hide a file is refused; spaces and other printable characters are fine.
    """
    if not isinstance(name, str) or not name:
        return "it is empty or not text"
    if len(name) > NAME_MAX:
        return f"it is {len(name)} characters long (at most {NAME_MAX})"
    for bad, what in (("..", "'..'"), ("/", "a '/'"), ("\\", "a '\\'"), ("\0", "a NUL character")):
        if bad in name:
            return f"it contains {what}"
    if name.startswith("."):
        return "it starts with a dot"
    if any(not ch.isprintable() for ch in name):
        return "it contains a control character"
    return None


def check_name(name: object, where: str) -> None:
    """Raise ConfigError naming `where` when `name` cannot be part of a file path (see unsafe_name)."""
    reason = unsafe_name(name)
    if reason:
        raise ConfigError(f"{where}: '{name!s:.60}' cannot name files: {reason}. Rename it with letters, digits, "
                          "spaces, '-' or '_'")


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def fill_defaults(config: dict, schema: dict, root: dict | None = None) -> dict:
    """Fill schema defaults in place, including inside `additionalProperties` maps (models).

    snakemake.utils.validate only fills `properties`; model entries live under
    `additionalProperties`, so they get their defaults here.
    """
    root = schema if root is None else root
    schema = _deref(schema, root)
    types = schema.get("type")
    if not isinstance(config, dict) or "object" not in (types if isinstance(types, list) else [types]):
        return config
    for key, sub in schema.get("properties", {}).items():
        sub = _deref(sub, root)
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if key in config:
            fill_defaults(config[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in config:
            if key not in schema.get("properties", {}):
                fill_defaults(config[key], extra, root)
    return config


def typed_scalars(config: Any, schema: dict, root: dict | None = None) -> Any:
    """Strings where the schema wants a number, a boolean or null, parsed as YAML, in place.

    `snakemake --config key='{a: 8, b: true}'` reads nested values with YAML's base loader, which keeps every
    scalar a string ('8', 'true', 'null'). A string the schema does not allow becomes what YAML makes of it
    when the schema allows that (so true, True and 8 work on the command line as in config.yaml); 'null' and
    '~' become null where null is allowed. Strings the schema allows, and anything else, stay as they are.
    """
    root = schema if root is None else root
    schema = _deref(schema, root)
    if isinstance(config, dict):
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, value in config.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                config[key] = typed_scalars(value, sub, root)
        return config
    if isinstance(config, list) and isinstance(schema.get("items"), dict):
        return [typed_scalars(item, schema["items"], root) for item in config]
    if not isinstance(config, str):
        return config
    types, constants = _allowed(schema, root)
    if config in constants:
        return config
    try:
        parsed = yaml.safe_load(config)
    except yaml.YAMLError:
        return config
    if parsed is None:
        return None if "null" in types else config
    kind = {bool: "boolean", int: "integer", float: "number"}.get(type(parsed))
    if "string" in types or kind is None:
        return config
    return parsed if kind in types or (kind == "integer" and "number" in types) else config


def _allowed(schema: dict, root: dict) -> tuple[set[str], list]:
    """(JSON types, constants) a schema node admits, through oneOf/anyOf."""
    schema = _deref(schema, root)
    types = schema.get("type", [])
    types = set(types if isinstance(types, list) else [types])
    constants = list(schema.get("enum", [])) + ([schema["const"]] if "const" in schema else [])
    for option in schema.get("oneOf", []) + schema.get("anyOf", []):
        more, also = _allowed(option, root)
        types |= more
        constants += also
    return types, constants


def resolve(config: dict | None = None, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Validate `config` against the schema and return a copy with every default filled."""
    import jsonschema

    schema = load_schema(schema_path)
    config = fill_defaults(copy.deepcopy(config or {}), schema)
    try:
        jsonschema.validate(config, schema)
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "<top level>"
        raise ConfigError(f"config key '{where}': {err.message}") from None
    return config


def section(cls, name: str, **overrides):
    """The typed config section `name` (a dataclass `cls`): the schema's defaults with `overrides`, for code that
    runs without a config file (the command line, benchmarks, tests)."""
    return cls.from_dict(resolve({name: overrides})[name])


def check_models(config: dict) -> None:
    """Checks of the `models:` entries that the schema cannot express (it checks each entry's loss,
    monitor and sampler against its task); errors name the key and the fix."""
    targets = config["data"]["targets"]
    for name, model in config["models"].items():
        check_name(name, f"models/{name}")
        target = model.get("target")
        if target is not None and target not in targets:
            raise ConfigError(f"models/{name}/target: '{target}' is not a column of data.targets {targets}; add it "
                              "there so every row is checked for a number")
        check_optimizer(model["optimizer"], f"models/{name}/optimizer")
        for i, stage in enumerate(model["stages"]):
            if "optimizer" in stage:
                check_optimizer(stage["optimizer"], f"models/{name}/stages/{i}/optimizer")
        if model["stages"] and model["freeze_epochs"]:
            raise ConfigError(f"models/{name}: freeze_epochs is the shorthand of two stages; with `stages` give the "
                              "head-only stage there (train: head) and remove freeze_epochs")
        if model["freeze_epochs"] >= model["epochs"]:
            raise ConfigError(f"models/{name}/freeze_epochs: {model['freeze_epochs']} of {model['epochs']} epochs "
                              "leaves none for the backbone; lower it or raise epochs")
        if model["fuse_directions"] == "concat" and model["arch"] in ("frame2d", "image2d"):
            raise ConfigError(f"models/{name}/fuse_directions: concat needs a clip model (3D CNN or videomae), not "
                              f"'{model['arch']}'; use mean")
        norm = model.get("normalise")
        if isinstance(norm, dict):
            channels = 1 if (model.get("color") or config["cache"]["color"]) == "grey" else 3
            if not len(norm["mean"]) == len(norm["std"]) == channels:
                raise ConfigError(f"models/{name}/normalise: {len(norm['mean'])} mean and {len(norm['std'])} std "
                                  f"values for {channels}-channel frames; give {channels} of each (or set the "
                                  "model's color)")


def check_optimizer(name: str, where: str) -> None:
    """A timm optimizer name, with an optional lookahead_ prefix: the schema's list of timm's names, or, for
    a name a newer timm added, timm itself (imported only then: it takes seconds)."""
    known = load_schema()["definitions"]["timm_optimizers"]["enum"]
    base = name.removeprefix("lookahead_")
    if base in known:
        return
    try:
        from timm.optim import list_optimizers
    except ImportError:
        list_optimizers = list
    if base not in list_optimizers():
        raise ConfigError(f"{where}: '{name}' is not a timm optimizer; choose one of {', '.join(known)}, optionally "
                          "with the prefix lookahead_ (Ranger = lookahead_radam)")


def model_caches(config: dict) -> dict[str, str | None]:
    """Each model's frame cache: None for the one of `cache:`, else the name of the cache of its own size
    and colour ("384px-rgb"), which the models that agree on them share."""
    base = config["cache"]
    caches = {}
    for name, model in config["models"].items():
        size, color = model.get("size") or base["size"], model.get("color") or base["color"]
        caches[name] = None if (size, color) == (base["size"], base["color"]) else f"{size}px-{color}"
    return caches


def cache_settings(config: dict, name: str | None) -> dict:
    """The `cache:` section of the cache `name` (model_caches): the shared settings, its size and colour."""
    if name is None:
        return config["cache"]
    size, color = name.split("px-")
    return dict(config["cache"], size=int(size), color=color)


def check_data(config: dict) -> None:
    """Checks of `data:` that the schema cannot express; errors name the key and the fix."""
    data = config["data"]
    for i, name in enumerate(data["classes"]):
        check_name(name, f"data.classes[{i}]")
    for name, entry in config.get("external", {}).items():
        check_name(name, f"external/{name}")
        for i, cls in enumerate((entry or {}).get("classes", [])):
            check_name(cls, f"external/{name}/classes[{i}]")
    if isinstance(data["labels"], list) and len(data["labels"]) > 1 and not data["join_on"]:
        raise ConfigError(f"data.labels lists {len(data['labels'])} tables but data.join_on is not set; name the "
                          "key column they share (e.g. join_on: filename)")
    if data["layout"] != "table" and (data["columns"] or data["label_map"] or data["query"]):
        raise ConfigError(f"data.columns, data.label_map and data.query apply to layout 'table', not "
                          f"'{data['layout']}'; set data.layout: table or remove them")


def external_data(config: dict, name: str) -> tuple["DataConfig", "DemoConfig | None", int]:
    """(data settings, demo settings or None, seed) of the external set `name`: its own keys over the training
    data's, so that classes, targets and column mappings are the training's unless it says otherwise."""
    entry = dict(config["external"][name])
    seed, demo = entry.pop("seed", config["seed"]), entry.pop("demo", {})
    data = DataConfig.from_dict({**config["data"], **entry})
    if data.layout != "demo" and demo:
        raise ConfigError(f"external/{name}/demo: only layout demo has generator settings; remove them")
    return data, DemoConfig.from_dict({**config["demo"], **demo}) if data.layout == "demo" else None, seed


def _deref(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if not ref:
        return schema
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _from_dict(cls, data: dict):
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
    augment_original: list
    query: str | None
    classes: list
    targets: list
    subgroups: list
    ef_threshold: float
    group_pattern: str | None
    folder: str | None
    strict: bool

    from_dict = classmethod(_from_dict)

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

    from_dict = classmethod(_from_dict)


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
    size: int
    color: str
    fps: float | None
    max_frames: int | None
    source_fps: float | None
    roi: dict

    from_dict = classmethod(_from_dict)

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

    from_dict = classmethod(_from_dict)


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
    weights_strict: bool
    fuse_directions: str | None
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

    from_dict = classmethod(_from_dict)


@dataclass(frozen=True)
class Stage:
    """One stage of training (models.<name>.stages), every value filled from the model's."""

    epochs: int
    train: str | int  # "head", "all" or the last k backbone blocks
    grow: int  # blocks unfrozen in addition after each epoch
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
    base = dict(train="all", grow=0, optimizer=cfg.optimizer, optimizer_params=cfg.optimizer_params, lr=cfg.lr,
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

    from_dict = classmethod(_from_dict)


@dataclass(frozen=True)
class EvalConfig:
    threshold: str
    eval_clips: int | str
    block: int
    mc_dropout: int
    bootstrap: int
    calibration_bins: int
    regression_bins: list
    cutoffs: list
    min_subgroup: int
    shift_quantile: float
    shift_reference_videos: int

    from_dict = classmethod(_from_dict)


@dataclass(frozen=True)
class GradcamConfig:
    n_videos: int
    select: list | None
    fps: float | None
    max_side: int
    target_layer: str | None

    from_dict = classmethod(_from_dict)
