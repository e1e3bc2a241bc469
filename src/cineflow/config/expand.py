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
    """The `cache:` section of the cache `name` (model_caches): the shared settings, its size and colour, and
    data.deidentify's rules where it is on (they change what is cached, so they are the cache's settings too)."""
    rules = ingest_rules(config["data"].get("deidentify", {}))
    settings = dict(config["cache"], **({"deidentify": rules} if rules else {}))
    if name is None:
        return settings
    size, color = name.split("px-")
    return dict(settings, size=int(size), color=color)


def ingest_rules(deidentify: dict) -> dict | None:
    """What of data.deidentify acts on each video as it is read (its header's profile, its pixels), for the cache
    settings; None when off. The salt stays out: it is for the groups alone, and the settings are written into
    results (the manifest's preprocess column, the checkpoints)."""
    if not deidentify.get("enabled"):
        return None
    return {key: deidentify[key] for key in ("profile", "burned_in", "ecg", "require_sector")}


def external_data(config: dict, name: str) -> tuple["DataConfig", "DemoConfig | None", int]:
    """(data settings, demo settings or None, seed) of the external set `name`: its own keys over the training
    data's, so that classes, targets and column mappings are the training's unless it says otherwise."""
    entry = dict(config["external"][name])
    seed, demo = entry.pop("seed", config["seed"]), entry.pop("demo", {})
    data = DataConfig.from_dict({**config["data"], **entry})
    if data.layout != "demo" and demo:
        raise ConfigError(f"external/{name}/demo: only layout demo has generator settings; remove them")
    return data, DemoConfig.from_dict({**config["demo"], **demo}) if data.layout == "demo" else None, seed


def expand_sweeps(config: dict) -> dict[str, dict[str, dict]]:
    """Add each sweep setting to config["models"] (a copy of its base entry with the setting's values) and
    return the sweeps: base -> {model name: the setting's values}. A setting equal to an existing entry (the
    base itself, or one written out by hand) is that entry, so nothing trains twice.

    Names come from the settings: <base>__<key>-<value> joined by "__", the last part of a dotted key
    (arch_params.width -> width-8).
    """
    import copy
    import itertools

    import jsonschema

    from cineflow.config.schema import cached_schema, deref

    schema = cached_schema()
    model_schema = {**deref(schema["properties"]["models"]["additionalProperties"], schema),
                    "definitions": schema["definitions"]}  # its $refs point there
    sweeps = {}
    for base, grid in config.get("sweep", {}).get("grids", {}).items():
        if base not in config["models"]:
            raise ConfigError(f"sweep/grids/{base}: no models: entry '{base}' to sweep; name one of "
                              f"{sorted(config['models'])}")
        settings = {}
        for values in itertools.product(*grid.values()):
            setting = dict(zip(grid, values))
            entry = copy.deepcopy(config["models"][base])
            for key, value in setting.items():
                *path, leaf = key.split(".")
                target = entry
                for part in path:
                    if not isinstance(target.get(part, {}), dict):
                        raise ConfigError(f"sweep/grids/{base}/{key}: '{part}' is not a mapping of the model entry")
                    target = target.setdefault(part, {})
                target[leaf] = value
            try:
                jsonschema.validate(entry, model_schema)
            except jsonschema.ValidationError as err:
                raise ConfigError(f"sweep/grids/{base}: the setting {setting} makes an invalid model entry: "
                                  f"{err.message}") from None
            same = [name for name, existing in config["models"].items() if existing == entry]
            name = same[0] if same else base + "".join(f"__{k.split('.')[-1]}-{v}" for k, v in setting.items())
            config["models"].setdefault(name, entry)
            settings[name] = setting
        if len(settings) < 2:
            raise ConfigError(f"sweep/grids/{base}: {len(settings)} distinct setting; a sweep selects among two or "
                              "more")
        sweeps[base] = settings
    return sweeps


ENCODER_KEYS = ("size", "color", "normalise", "clip_length", "clip_period", "pretrained", "weights")


def expand_probes(config: dict) -> dict[str, str]:
    """Give each probe model (arch: probe) its encoder's architecture and input keys, and return probe -> encoder.

    The probe's `arch_params` become the encoder's architecture and the head's kind and size (what the probe
    module is built from); its frames, size, colour and normalisation are the encoder's, so the probe reads
    the cache and clips its embeddings were computed on. Run after expand_sweeps, so swept probe settings
    are probes too."""
    encoders = config.get("encoders", {})
    for name, encoder in encoders.items():
        if encoder["arch"] == "probe":
            raise ConfigError(f"encoders/{name}/arch: an encoder is a network, not a probe; name an architecture")
        if encoder["normalise"] == "fold":
            raise ConfigError(f"encoders/{name}/normalise: an encoder's embeddings serve every fold, so its "
                              "normalisation must be fixed: imagenet, or {mean, std}")
    probes = {}
    for name, model in config["models"].items():
        if model["arch"] != "probe":
            continue
        spec = model.get("probe") or {}
        if spec.get("encoder") not in encoders:
            raise ConfigError(f"models/{name}/probe/encoder: '{spec.get('encoder')}' is not an encoders: entry; name "
                              f"one of {sorted(encoders)} (a probe needs probe: {{encoder: <name>}})")
        encoder = encoders[spec["encoder"]]
        model.update({key: encoder[key] for key in ENCODER_KEYS})
        model["arch_params"] = {"encoder_arch": encoder["arch"], "encoder_params": encoder["arch_params"],
                                "head": spec["head"], "hidden": spec["hidden"]}
        probes[name] = spec["encoder"]
    for name, model in config["models"].items():
        if model.get("probe") and model["arch"] != "probe":
            raise ConfigError(f"models/{name}/probe: probe settings need arch: probe; remove them or set the arch")
    return probes
