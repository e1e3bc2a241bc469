"""Rule train: one model on one fold."""

import json

import pandas as pd

from cineflow.config import ModelConfig, TrackingConfig
from cineflow.devices import job_device
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.seeding import seed_everything
from cineflow.tracking import open_trackers
from cineflow.trainer import train_fold

run = f"{snakemake.wildcards.model}/fold_{snakemake.wildcards.fold}"
with to_log(snakemake.log[0]), open_trackers(TrackingConfig.from_dict(snakemake.config["tracking"]),
                                             snakemake.params.tracking, run) as trackers, job_device() as device:
    resources = snakemake.config["resources"]
    seed_everything(snakemake.params.seed, resources["train_threads"])
    print(f"device: {device}")
    train_fold(ModelConfig.from_dict(snakemake.params.model), snakemake.params.classes,
               pd.read_csv(snakemake.input.split, keep_default_na=False), pd.read_parquet(snakemake.input.manifest),
               json.loads(open(snakemake.input.norm, encoding="utf-8").read()),
               snakemake.output.model, snakemake.output.history, snakemake.params.state, snakemake.params.seed,
               device, provenance(snakemake.config, device), last_path=snakemake.output.last, trackers=trackers,
               workers=resources["loader_workers"])
