import json
import os
import sys
from functools import lru_cache
from pathlib import Path

import pandas as pd

# the library without installation: src/ here; rule scripts find it through the
# scripts/cineflow link (Snakemake puts the script's folder on sys.path), e.g. in conda envs
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

# the parse imports the config and light table code only: no torch, no scikit-learn
from cineflow.config import (
    AUTO_LOADER_WORKERS,
    DataConfig,
    DemoConfig,
    SplitConfig,
    cache_settings,
    check_data,
    check_models,
    fill_defaults,
    load_schema,
    model_caches,
)
from cineflow.data.demo import LABEL_COLUMNS, plan
from cineflow.data.labels import n_folds, shard_of, validate as validate_labels
from cineflow.data.layouts import load_layout, table_source
from cineflow.sources import script_sources

# snakemake's validate() fills `properties` defaults; model entries need the rest.
fill_defaults(config, load_schema(Path(workflow.basedir) / SCHEMA))
check_data(config)
check_models(config)

DATA = DataConfig.from_dict(config["data"])
DATA_ROOT = DATA.root
LAYOUT = DATA.layout
# the demo writes its table into its own root
LABELS = f"{DATA_ROOT}/labels.csv" if LAYOUT == "demo" else table_source(DATA)
MODELS = list(config["models"])
SHARDS = list(range(config["cache"]["shards"]))
CLASSES = config["data"]["classes"]
SEED = config["seed"]
ENV = "../envs/cineflow.yaml"
# the cores a training job's loader workers take ("auto": as many as on a GPU)
_workers = config["resources"]["loader_workers"]
LOADER_WORKERS = AUTO_LOADER_WORKERS if _workers == "auto" else _workers


@lru_cache(maxsize=1)
def samples() -> pd.DataFrame:
    """The labels table, checked at parse time (errors name the row and the fix), with its shard."""
    if LAYOUT == "demo":
        table = plan(DemoConfig.from_dict(config["demo"]), SEED, CLASSES)[LABEL_COLUMNS]
    else:
        table = load_layout(DATA)
    table = validate_labels(
        table,
        CLASSES,
        DATA_ROOT,
        source=LABELS,
        targets=DATA.targets,
        originals=DATA.augment_original,
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


# each model's frame cache: None = the one of `cache:` (results/cache/shard_*, results/manifest.parquet);
# a model of another size or colour reads results/cache/<size>px-<colour>/, shared by the models that agree
MODEL_CACHE = model_caches(config)
CACHES = sorted({name for name in MODEL_CACHE.values() if name})


wildcard_constraints:
    cache="|".join(CACHES) or "(?!)",


def cache_params(wildcards) -> dict:
    return canonical(cache_settings(config, wildcards.cache))


def manifest_of(wildcards) -> str:
    """The manifest of the model's frame cache."""
    name = MODEL_CACHE[wildcards.model]
    return (
        f"results/cache/{name}/manifest.parquet" if name else "results/manifest.parquet"
    )


def model_inputs(wildcards) -> dict:
    """A fold's split and the model's manifest, plus the fold's normalisation statistics when the model
    normalises with them (models.<name>.normalise: fold)."""
    inputs = {
        "split": f"results/splits/fold_{wildcards.fold}.csv",
        "manifest": manifest_of(wildcards),
    }
    if config["models"][wildcards.model]["normalise"] == "fold":
        name, fold = MODEL_CACHE[wildcards.model], wildcards.fold
        inputs["norm"] = (
            f"results/cache/{name}/fold_{fold}.norm.json"
            if name
            else f"results/splits/fold_{fold}.norm.json"
        )
    return inputs


# one fold when the table brings its own train/val/test split (splits.mode)
FOLDS = list(range(n_folds(SplitConfig.from_dict(config["splits"]), samples())))


def canonical(section):
    """A config section with sorted keys: Snakemake compares params as text, so reordering
    keys in config.yaml must not look like a change."""
    return json.loads(json.dumps(section, sort_keys=True))


def code(script: str) -> list[str]:
    """Library sources the rule's script (scripts/<script>.py) reaches: editing one reruns exactly the
    rules that use it."""
    return script_sources(Path(workflow.basedir) / "scripts" / f"{script}.py")


def predict_input(wildcards) -> str:
    """The new videos of the predict rule; asked for only when a predict target is requested."""
    source = config["predict"]["input"]
    if not source:
        raise ValueError(
            "predict.input is not set: point it at a folder or a CSV/Parquet table of new videos "
            "(--config predict='{input: path/to/videos}')"
        )
    return source


def report_inputs(wildcards) -> dict:
    """Each model's files for the report, named `<kind>_<model>`: the report reads exactly these."""
    files = {}
    for model in MODELS:
        folds = expand("results/{model}/fold_{fold}", model=model, fold=FOLDS)
        files[f"summary_{model}"] = f"results/{model}/summary.json"
        files[f"oof_{model}"] = f"results/{model}/oof_predictions.parquet"
        files[f"plots_{model}"] = f"results/{model}/plots"
        files[f"metrics_{model}"] = [f"{fold}/metrics.json" for fold in folds]
        files[f"gradcam_{model}"] = [f"{fold}/gradcam" for fold in folds]
    return files
