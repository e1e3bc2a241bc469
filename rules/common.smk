import json
import os
import sys
from functools import lru_cache
from pathlib import Path

import pandas as pd

# the library without installation: src/ here; rule scripts find it through the
# scripts/cineflow link (Snakemake puts the script's folder on sys.path), e.g. in conda envs
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from cineflow.config import (
    AUTO_LOADER_WORKERS,
    DataConfig,
    DemoConfig,
    SplitConfig,
    fill_defaults,
    load_schema,
)
from cineflow.demo import LABEL_COLUMNS, plan
from cineflow.labels import shard_of, validate as validate_labels
from cineflow.layouts import load_layout, table_source
from cineflow.splits import n_folds
from cineflow.provenance import module_sources
from cineflow.tasks import check_model

# snakemake's validate() fills `properties` defaults; model entries need the rest.
fill_defaults(
    config, load_schema(Path(workflow.basedir) / "schemas" / "config.schema.yaml")
)

DATA = DataConfig.from_dict(config["data"])
DATA_ROOT = DATA.root
LAYOUT = DATA.layout
# the demo writes its table into its own root
LABELS = f"{DATA_ROOT}/labels.csv" if LAYOUT == "demo" else table_source(DATA)
MODELS = list(config["models"])
for _name, _model in config["models"].items():
    check_model(_name, _model, config["data"]["classes"], config["data"]["targets"])
SHARDS = list(range(config["cache"]["shards"]))
CLASSES = config["data"]["classes"]
SEED = config["seed"]
ENV = "../envs/cineflow.yaml"
# the cores a training job's loader workers take ("auto": as many as on a GPU)
_workers = config["resources"]["loader_workers"]
LOADER_WORKERS = AUTO_LOADER_WORKERS if _workers == "auto" else _workers
LIBRARY = Path(workflow.basedir) / "src" / "cineflow"


@lru_cache(maxsize=1)
def samples() -> pd.DataFrame:
    """The labels table, checked at parse time (errors name the row and the fix), with its shard."""
    if LAYOUT == "demo":
        table = plan(DemoConfig.from_dict(config["demo"]), SEED, CLASSES)[LABEL_COLUMNS]
    else:
        table = load_layout(DATA)
    table = validate_labels(
        table, CLASSES, DATA_ROOT, source=LABELS, targets=DATA.targets
    )
    return table.assign(shard=[shard_of(v, len(SHARDS)) for v in table["video_id"]])


def labels_records(wildcards) -> list[dict]:
    """The checked table as a param: editing a label reruns the manifest, never the cache."""
    return samples().drop(columns="shard").to_dict("records")


def shard_rows(wildcards) -> list[dict]:
    rows = samples()[samples()["shard"] == int(wildcards.shard)]
    return rows[["video_id", "path"]].to_dict("records")


def shard_videos(wildcards) -> list[str]:
    """Raw files of one shard. A missing file is left out here and quarantined by the job."""
    paths = [f"{DATA_ROOT}/{row['path']}" for row in shard_rows(wildcards)]
    return [p for p in paths if LAYOUT == "demo" or Path(p).exists()]


# one fold when the table brings its own train/val/test split (splits.mode)
FOLDS = list(range(n_folds(SplitConfig.from_dict(config["splits"]), samples())))


def canonical(section):
    """A config section with sorted keys: Snakemake compares params as text, so reordering
    keys in config.yaml must not look like a change."""
    return json.loads(json.dumps(section, sort_keys=True))


def code(module: str) -> list[str]:
    """Library sources a rule's script reaches: editing one reruns exactly the rules that use it."""
    return module_sources(f"cineflow.{module}", LIBRARY)


def predict_input(wildcards) -> str:
    """The new videos of the predict rule; asked for only when a predict target is requested."""
    source = config["predict"]["input"]
    if not source:
        raise ValueError(
            "predict.input is not set: point it at a folder or a CSV/Parquet table of new videos "
            "(--config predict='{input: path/to/videos}')"
        )
    return source


def fold_outputs(pattern: str) -> list[str]:
    return expand(pattern, model=MODELS, fold=FOLDS)
