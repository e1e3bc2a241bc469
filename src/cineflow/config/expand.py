"""What the config expands into: each model's frame cache, and each external set's data settings."""

from __future__ import annotations

from cineflow.config.errors import ConfigError
from cineflow.config.sections import DataConfig, DemoConfig


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


def external_data(config: dict, name: str) -> tuple["DataConfig", "DemoConfig | None", int]:
    """(data settings, demo settings or None, seed) of the external set `name`: its own keys over the training
    data's, so that classes, targets and column mappings are the training's unless it says otherwise."""
    entry = dict(config["external"][name])
    seed, demo = entry.pop("seed", config["seed"]), entry.pop("demo", {})
    data = DataConfig.from_dict({**config["data"], **entry})
    if data.layout != "demo" and demo:
        raise ConfigError(f"external/{name}/demo: only layout demo has generator settings; remove them")
    return data, DemoConfig.from_dict({**config["demo"], **demo}) if data.layout == "demo" else None, seed
