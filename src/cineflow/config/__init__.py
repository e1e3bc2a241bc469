"""The config: the schema (the one home of every default) and its machinery, typed sections, name safety,
cross-field checks and what the config expands into, one module each. The workflow imports this package while it
parses, so it imports nothing heavier than PyYAML; its public names are importable from here.
"""

from cineflow.config.checks import check_data, check_models, check_optimizer
from cineflow.config.errors import ConfigError
from cineflow.config.expand import (
                                    cache_settings,
                                    expand_probes,
                                    expand_sweeps,
                                    external_data,
                                    ingest_rules,
                                    model_caches,
)
from cineflow.config.names import NAME_MAX, check_name, unsafe_name
from cineflow.config.schema import (
                                    SCHEMA_PATH,
                                    cached_schema,
                                    deref,
                                    fill_defaults,
                                    load_schema,
                                    resolve,
                                    schema_default,
                                    section,
                                    typed_scalars,
)
from cineflow.config.sections import (
                                    AUTO_LOADER_WORKERS,
                                    CacheConfig,
                                    DataConfig,
                                    DemoConfig,
                                    EvalConfig,
                                    GradcamConfig,
                                    ModelConfig,
                                    SplitConfig,
                                    Stage,
                                    TrackingConfig,
                                    from_dict,
                                    model_stages,
)

__all__ = ["AUTO_LOADER_WORKERS", "NAME_MAX", "SCHEMA_PATH", "CacheConfig", "ConfigError", "DataConfig", "DemoConfig",
           "EvalConfig", "GradcamConfig", "ModelConfig", "SplitConfig", "Stage", "TrackingConfig", "cache_settings",
           "cached_schema", "check_data", "check_models", "check_name", "check_optimizer", "deref", "expand_probes",
           "expand_sweeps", "external_data", "ingest_rules",
           "fill_defaults", "from_dict", "load_schema", "model_caches", "model_stages", "resolve", "schema_default",
           "section", "typed_scalars", "unsafe_name"]
