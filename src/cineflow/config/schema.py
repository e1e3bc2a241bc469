"""The schema, the one home of every default (package data at cineflow/schema/config.schema.yaml, which the
Snakefile validates against too): loading it, filling its defaults, typing command-line scalars, validating."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from cineflow.config.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schema" / "config.schema.yaml"


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@lru_cache(maxsize=1)
def cached_schema() -> dict:
    """The package's schema, read once per process (callers must not change it)."""
    return load_schema()


def schema_default(*keys: str):
    """The schema's default of the key at `keys` (e.g. "data", "targets"): for code that runs without a
    config (library calls, the command line), so that no default is written twice."""
    node = cached_schema()
    for key in keys:
        node = deref(node, cached_schema())
        node = node.get("properties", {}).get(key) or node["additionalProperties"]
    return copy.deepcopy(deref(node, cached_schema())["default"])


def fill_defaults(config: dict, schema: dict, root: dict | None = None) -> dict:
    """Fill schema defaults in place, including inside `additionalProperties` maps (models).

    snakemake.utils.validate only fills `properties`; model entries live under
    `additionalProperties`, so they get their defaults here. A node's `x-arch-defaults` ({arch: {key: value}})
    comes first: an architecture's own input contract (the echo encoders' frames, size and normalisation).
    """
    root = schema if root is None else root
    schema = deref(schema, root)
    types = schema.get("type")
    if not isinstance(config, dict) or "object" not in (types if isinstance(types, list) else [types]):
        return config
    arch = config.get("arch", deref(schema.get("properties", {}).get("arch", {}), root).get("default"))
    for key, value in schema.get("x-arch-defaults", {}).get(arch, {}).items():
        config.setdefault(key, copy.deepcopy(value))
    for key, sub in schema.get("properties", {}).items():
        sub = deref(sub, root)
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if key in config:
            fill_defaults(config[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in config:
            if key not in schema.get("properties", {}):
                fill_defaults(config[key], extra, root)
    if "then" in schema and _holds(schema["if"], config, root):  # a nullable section's settings
        fill_defaults(config, {"type": "object", **schema["then"]}, root)
    return config


def _holds(condition: dict, config: dict, root: dict) -> bool:
    import jsonschema

    return jsonschema.Draft7Validator({**condition, "definitions": root.get("definitions", {})}).is_valid(config)


def typed_scalars(config: Any, schema: dict, root: dict | None = None) -> Any:
    """Strings where the schema wants a number, a boolean or null, parsed as YAML, in place.

    `snakemake --config key='{a: 8, b: true}'` reads nested values with YAML's base loader, which keeps every
    scalar a string ('8', 'true', 'null'). A string the schema does not allow becomes what YAML makes of it
    when the schema allows that (so true, True and 8 work on the command line as in config.yaml); 'null' and
    '~' become null where null is allowed. Strings the schema allows, and anything else, stay as they are.
    """
    root = schema if root is None else root
    schema = deref(schema, root)
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
    schema = deref(schema, root)
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


def deref(schema: dict, root: dict) -> dict:
    """`schema` with its $ref (a local JSON pointer into `root`) followed."""
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if not ref:
        return schema
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node
