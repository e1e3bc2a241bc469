"""Checks of the config that the schema cannot express; every error names the key and the fix."""

from __future__ import annotations

from cineflow.config.errors import ConfigError
from cineflow.config.names import check_name
from cineflow.config.schema import cached_schema


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
        if model["output_bias"] is not None and model["task"] != "regression":
            raise ConfigError(f"models/{name}/output_bias: a starting bias is for regression (the target's value); "
                              f"remove it for task '{model['task']}'")
        if model["freeze_epochs"] >= model["epochs"]:
            raise ConfigError(f"models/{name}/freeze_epochs: {model['freeze_epochs']} of {model['epochs']} epochs "
                              "leaves none for the backbone; lower it or raise epochs")
        if model["fuse_directions"] in ("concat", "concat_mlp") and model["arch"] in ("frame2d", "image2d"):
            raise ConfigError(f"models/{name}/fuse_directions: {model['fuse_directions']} needs a clip model (3D CNN "
                              f"or videomae), not '{model['arch']}'; use mean")
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
    known = cached_schema()["definitions"]["timm_optimizers"]["enum"]
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


def check_data(config: dict) -> None:
    """Checks of `data:` that the schema cannot express; errors name the key and the fix."""
    data = config["data"]
    for i, name in enumerate(data["classes"]):
        check_name(name, f"data.classes[{i}]")
    for name, entry in config.get("external", {}).items():
        check_name(name, f"external/{name}")
        for i, cls in enumerate((entry or {}).get("classes", [])):
            check_name(cls, f"external/{name}/classes[{i}]")
    deidentify = data["deidentify"]
    if deidentify["enabled"] and not deidentify["salt_file"]:
        raise ConfigError("data.deidentify is enabled but data.deidentify.salt_file is not set; name a file outside "
                          "results/ for the salt of the patient-id hash (written with a random salt when missing), "
                          "e.g. salt_file: ~/.cineflow/salt")
    if isinstance(data["labels"], list) and len(data["labels"]) > 1 and not data["join_on"]:
        raise ConfigError(f"data.labels lists {len(data['labels'])} tables but data.join_on is not set; name the "
                          "key column they share (e.g. join_on: filename)")
    if data["label_threshold"] is not None and (data["label_map"] or len(data["classes"]) != 2):
        raise ConfigError("data.label_threshold makes a score one of two classes: give data.classes two classes "
                          "and no data.label_map (a map lists discrete values; a threshold cuts a continuous one)")
    if data["layout"] != "table" and (data["columns"] or data["label_map"] or data["query"]
                                      or data["label_threshold"] is not None):
        raise ConfigError(f"data.columns, data.label_map, data.label_threshold and data.query apply to layout "
                          "'table', not "
                          f"'{data['layout']}'; set data.layout: table or remove them")
