"""Rule train: one model on one fold."""

import json

import pandas as pd
import torch

from cineflow.config import ModelConfig, TrackingConfig
from cineflow.devices import job_device
from cineflow.distributed import launch
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.seeding import seed_everything
from cineflow.tracking import open_trackers
from cineflow.trainer import train_fold

run = f"{snakemake.wildcards.model}/fold_{snakemake.wildcards.fold}"
resources = snakemake.config["resources"]
cfg = ModelConfig.from_dict(snakemake.params.model)
with open(snakemake.input.norm, encoding="utf-8") as fh:
    norm = json.load(fh)
fold = dict(norm=norm, model_path=snakemake.output.model, history_path=snakemake.output.history,
            state_path=snakemake.params.state, seed=snakemake.params.seed, last_path=snakemake.output.last,
            workers=resources["loader_workers"])
if cfg.gpus > 1:  # several processes on one fold: torchrun, each GPU its own process (the job's visible GPUs)
    with to_log(snakemake.log[0]):
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        print(f"{cfg.gpus} processes on {device}")
        launch(dict(fold, model=snakemake.params.model, classes=snakemake.params.classes, split=snakemake.input.split,
                    manifest=snakemake.input.manifest, provenance=provenance(snakemake.config, device),
                    threads=resources["train_threads"]), cfg.gpus, snakemake.params.job)
else:
    with to_log(snakemake.log[0]), open_trackers(TrackingConfig.from_dict(snakemake.config["tracking"]),
                                                 snakemake.params.tracking, run) as trackers, job_device() as device:
        seed_everything(snakemake.params.seed, resources["train_threads"])
        print(f"device: {device}")
        train_fold(cfg, snakemake.params.classes, pd.read_csv(snakemake.input.split, keep_default_na=False),
                   pd.read_parquet(snakemake.input.manifest), device=device,
                   provenance=provenance(snakemake.config, device), trackers=trackers, **fold)
