import json
import os
import sys
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import pandas as pd

# the library: the Snakefile put src/ first on sys.path (the installed package without it); rule scripts find it
# through the scripts/cineflow link (Snakemake puts the script's folder on sys.path), e.g. in conda envs, or
# installed

# the parse imports the config and light table code only: no torch, no scikit-learn
from cineflow.cluster import ClusterConfig
from cineflow.config import (
    AUTO_LOADER_WORKERS,
    DataConfig,
    DemoConfig,
    SplitConfig,
    cache_settings,
    check_data,
    check_models,
    expand_probes,
    expand_sweeps,
    external_data,
    fill_defaults,
    load_schema,
    model_caches,
)
from cineflow.data.demo import plan
from cineflow.data.labels import n_folds, shard_of
from cineflow.data.layouts import labels_table, table_source
from cineflow.data.splits import INNER_MARK, inner_fold_names, split_names
from cineflow.data.synthetic import with_low_quality_copies
from cineflow.io import sweep_temporaries
from cineflow.sources import script_sources

# snakemake's validate() fills `properties` defaults; model entries need the rest.
fill_defaults(config, load_schema(SCHEMA))
# each sweep setting becomes a models: entry (base -> {model: setting}); nested selection compares them
SWEEPS = expand_sweeps(config)
# each probe model (arch: probe) takes its encoder's architecture and input keys: probe -> encoder
PROBES = expand_probes(config)
check_data(config)
check_models(config)

DATA = DataConfig.from_dict(config["data"])
DATA_ROOT = DATA.root
LAYOUT = DATA.layout
# the demo writes its table into its own root
LABELS = table_source(DATA)
MODELS = list(config["models"])
# the models the train rule fits; probes are fitted by the probe rule, on their encoder's embeddings
TRAINED = [name for name in MODELS if name not in PROBES]
ENCODERS = list(config["encoders"])
EXTERNAL = list(config["external"])
# external sets the demo generator writes (another seed, another site): name -> (data, demo, seed)
EXTERNAL_DEMOS = {
    name: external_data(config, name)
    for name in EXTERNAL
    if external_data(config, name)[0].layout == "demo"
}
SHARDS = list(range(config["cache"]["shards"]))
CLASSES = config["data"]["classes"]
SEED = config["seed"]
ENV = "../envs/cineflow.yaml"
# the cores a training job's loader workers take ("auto": as many as on a GPU)
_workers = config["resources"]["loader_workers"]
LOADER_WORKERS = AUTO_LOADER_WORKERS if _workers == "auto" else _workers
TRAIN_THREADS = config["resources"]["train_threads"] + LOADER_WORKERS
# where jobs go under --profile slurm (config `cluster:`); the rules take it into their resources
CLUSTER = ClusterConfig.from_dict(config["cluster"])
CLUSTER.check(TRAIN_THREADS)


def cpu_job() -> dict:
    """A CPU rule's SLURM routing (partition, account), for `resources: **cpu_job()`."""
    return CLUSTER.cpu_job()


def gpu_job(cpus: int = 2, gpus=1) -> dict:
    """A GPU rule's SLURM routing (partition, account, GPUs, CPUs per GPU), for `resources: **gpu_job()`.

    `gpus` may be a function of the wildcards (train: the model's `gpus`); each resource then is one too.
    """
    if not callable(gpus):
        return CLUSTER.gpu_job(gpus, cpus)
    return {
        key: (lambda wildcards, key=key: CLUSTER.gpu_job(gpus(wildcards), cpus)[key])
        for key in CLUSTER.gpu_job(1, cpus)
    }


@lru_cache(maxsize=1)
def samples() -> pd.DataFrame:
    """The labels table, checked at parse time (errors name the row and the fix), with its shard."""
    table = labels_table(DATA, DemoConfig.from_dict(config["demo"]), SEED)
    table = with_low_quality_copies(table, DATA.synthetic_low_quality, DATA.classes)
    return table.assign(shard=[shard_of(v, len(SHARDS)) for v in table["video_id"]])


def labels_records(wildcards) -> list[dict]:
    """The checked table as a param: editing a label reruns the manifest, never the cache. The subgroup
    columns stay out: they go to the subgroups rule alone, so naming one retrains nothing.
    """
    return samples().drop(columns=["shard", *DATA.subgroups]).to_dict("records")


def subgroup_records(wildcards) -> list[dict]:
    """Each video's subgroup values (data.subgroups), the subgroups rule's param."""
    return samples()[["video_id", *DATA.subgroups]].to_dict("records")


def shard_rows(wildcards) -> list[dict]:
    """One shard's videos: id, path and, for data.synthetic_low_quality's copies, how to degrade them."""
    rows = samples()[samples()["shard"] == int(wildcards.shard)]
    return rows[[c for c in ("video_id", "path", "degrade") if c in rows]].to_dict(
        "records"
    )


def shard_videos(wildcards) -> list[str]:
    """Raw files of one shard. A missing file is left out here and quarantined by the job."""
    paths = [f"{DATA_ROOT}/{row['path']}" for row in shard_rows(wildcards)]
    return [p for p in paths if LAYOUT == "demo" or Path(p).exists()]


# each model's frame cache: None = the one of `cache:` (results/cache/shard_*, results/manifest.parquet);
# a model of another size or colour reads results/cache/<size>px-<colour>/, shared by the models that agree
MODEL_CACHE = model_caches(config)
ENCODER_CACHE = model_caches({"cache": config["cache"], "models": config["encoders"]})
CACHES = sorted(
    {name for name in [*MODEL_CACHE.values(), *ENCODER_CACHE.values()] if name}
)


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


def encoder_manifest(wildcards) -> str:
    """The manifest of an encoder's frame cache."""
    name = ENCODER_CACHE[wildcards.encoder]
    return (
        f"results/cache/{name}/manifest.parquet" if name else "results/manifest.parquet"
    )


def probe_inputs(wildcards) -> dict:
    """A probe fold's split and manifest, and its encoder's embeddings and weights."""
    encoder = f"results/embeddings/{PROBES[wildcards.model]}"
    return {
        "split": f"results/splits/fold_{wildcards.fold}.csv",
        "manifest": manifest_of(wildcards),
        "embeddings": f"{encoder}/embeddings.npz",
        "encoder": f"{encoder}/encoder.pt",
    }


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


# one fold when the table brings its own train/val/test split (splits.mode); fold k of repeat r > 0 is k_r<r>
FOLDS = split_names(SplitConfig.from_dict(config["splits"]), samples())
FOLDS_PER_REPEAT = n_folds(SplitConfig.from_dict(config["splits"]), samples())
# the report shows repeat 0's Grad-CAMs (each video once)
FIRST_REPEAT = FOLDS[:FOLDS_PER_REPEAT]
# the inner folds of repeat 0's outer folds, trained by the settings of a sweep only
INNER_FOLDS = (
    inner_fold_names(FIRST_REPEAT, config["sweep"]["inner_folds"]) if SWEEPS else []
)


def evaluate_params(wildcards) -> dict:
    """The evaluate section of a fold's evaluation; an inner fold (nested selection) only ranks the settings of
    its sweep, so it skips MC dropout, whose uncertainty nothing reads there."""
    section = canonical(config["evaluate"])
    return dict(section, mc_dropout=0) if INNER_MARK in wildcards.fold else section


def canonical(section):
    """A config section with sorted keys: Snakemake compares params as text, so reordering
    keys in config.yaml must not look like a change."""
    return json.loads(json.dumps(section, sort_keys=True))


# the splits' params leave `repeats` out: adding repeats leaves repeat 0 (and all it made) as it is
SPLIT_PARAMS = canonical({k: v for k, v in config["splits"].items() if k != "repeats"})


def code(script: str) -> list[str]:
    """Library sources the rule's script (scripts/<script>.py) reaches: editing one reruns exactly the
    rules that use it. Relative to the working directory where they sit below it, so a project folder
    that is moved or copied elsewhere does not look changed."""
    here = Path.cwd().resolve()
    sources = script_sources(Path(workflow.basedir) / "scripts" / f"{script}.py")
    return [
        str(Path(p).relative_to(here)) if Path(p).is_relative_to(here) else p
        for p in sources
    ]


def predict_input(wildcards) -> str:
    """The new videos of the predict rule; asked for only when a predict target is requested."""
    source = config["predict"]["input"]
    if not source:
        raise ValueError(
            "predict.input is not set: point it at a folder or a CSV/Parquet table of new videos "
            "(--config predict='{input: path/to/videos}')"
        )
    return source


# models.<name>.gradcam_every: the train rule's folder of Grad-CAMs drawn during training, declared when a model
# draws them (a model that draws none leaves its folder empty); otherwise the train rule's outputs are as before
TRAINING_CAMS = any(m["gradcam_every"] for m in config["models"].values())


def training_cams_output() -> dict:
    return (
        {"cams": directory("results/{model}/fold_{fold}/training_gradcam")}
        if TRAINING_CAMS
        else {}
    )


def report_inputs(wildcards) -> dict:
    """Each model's files for the report, named `<kind>_<model>`: the report reads exactly these."""
    files = {}
    for model in MODELS:
        folds = expand("results/{model}/fold_{fold}", model=model, fold=FOLDS)
        first = expand("results/{model}/fold_{fold}", model=model, fold=FIRST_REPEAT)
        files[f"summary_{model}"] = f"results/{model}/summary.json"
        files[f"oof_{model}"] = f"results/{model}/oof_predictions.parquet"
        files[f"plots_{model}"] = f"results/{model}/plots"
        files[f"metrics_{model}"] = [f"{fold}/metrics.json" for fold in folds]
        files[f"gradcam_{model}"] = [f"{fold}/gradcam" for fold in first]
        files[f"subgroups_{model}"] = f"results/{model}/subgroups.json"
        files[f"card_{model}"] = f"results/{model}/model_card.md"
        if config["models"][model]["gradcam_every"]:
            files[f"training_cams_{model}"] = [f"{first[0]}/training_gradcam"]
        files[f"external_{model}"] = [
            f"results/external/{name}/{model}/metrics.json" for name in EXTERNAL
        ]
    return files


def external_inputs(wildcards) -> dict:
    """An external set's files: its table(s) (the demo's labels and videos, which its rule writes), or its
    folder for the layouts that scan one."""
    data, demo, seed = external_data(config, wildcards.name)
    if data.layout == "demo":
        videos = [f"{data.root}/{p}" for p in plan(demo, seed, data.classes)["path"]]
        return {"labels": f"{data.root}/labels.csv", "videos": videos}
    if data.layout == "table":
        return {"labels": data.tables}
    if data.layout == "echonet":
        return {"labels": f"{data.root}/FileList.csv"}
    return {"labels": data.root}
