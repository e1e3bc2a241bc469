"""Rule train: one model on one fold."""

import torch

from cineflow.config import ModelConfig, TrackingConfig
from cineflow.devices import job_device
from cineflow.io import read_csv, read_json, read_parquet
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.seeding import seed_everything
from cineflow.train.fold import FoldPaths, train_fold
from cineflow.train.launch import launch
from cineflow.train.tracking import open_trackers, run_name

run = run_name(snakemake.wildcards.model, snakemake.wildcards.fold)
resources = snakemake.config["resources"]
cfg = ModelConfig.from_dict(snakemake.params.model)
paths = FoldPaths(model=snakemake.output.model, last=snakemake.output.last, history=snakemake.output.history,
                  state=snakemake.params.state)
norm = getattr(snakemake.input, "norm", None)  # only for models.<name>.normalise: fold
fold = dict(norm=read_json(norm) if norm else None, seed=snakemake.params.seed, workers=resources["loader_workers"])
if cfg.gpus > 1:  # several processes on one fold: torchrun, each GPU its own process (the job's visible GPUs)
    with to_log(snakemake.log[0]):
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        print(f"{cfg.gpus} processes on {device}")
        launch(dict(fold, model=snakemake.params.model, classes=snakemake.params.classes, split=snakemake.input.split,
                    manifest=snakemake.input.manifest, paths=vars(paths),
                    provenance=provenance(snakemake.config, device), threads=resources["train_threads"],
                    deterministic=snakemake.config["deterministic"]),
               cfg.gpus, snakemake.params.job)
else:
    with to_log(snakemake.log[0]), open_trackers(TrackingConfig.from_dict(snakemake.config["tracking"]),
                                                 snakemake.params.tracking, run) as trackers, job_device() as device:
        seed_everything(snakemake.params.seed, resources["train_threads"], snakemake.config["deterministic"])
        print(f"device: {device}")
        train_fold(cfg, snakemake.params.classes, read_csv(snakemake.input.split),
                   read_parquet(snakemake.input.manifest), paths=paths, device=device, provenance=provenance(snakemake.config, device), trackers=trackers,
                   **fold)
        for tracker in trackers:
            tracker.log_artifacts([paths.model, paths.history], "checkpoint")
