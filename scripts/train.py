"""Rules train and train_inner: one model on one fold, in this process or (models.<name>.gpus > 1) in one process
per GPU; an inner fold of nested selection (rule train_inner) then scored by scripts/score_inner.py."""

import runpy
from dataclasses import asdict
from pathlib import Path

import torch

from cineflow.config import ModelConfig
from cineflow.devices import job_device
from cineflow.io import read_json
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.tracking import run_name
from cineflow.train.fold import FoldPaths
from cineflow.train.launch import FoldJob, launch, run_job


def job(device: torch.device) -> FoldJob:
    resources = snakemake.config["resources"]
    paths = FoldPaths(model=snakemake.output.model, last=snakemake.output.last, history=snakemake.output.history,
                      state=snakemake.params.state, cams=getattr(snakemake.output, "cams", None))
    norm = getattr(snakemake.input, "norm", None)  # only for models.<name>.normalise: fold
    return FoldJob(model=snakemake.params.model, classes=snakemake.params.classes, split=snakemake.input.split,
                   manifest=snakemake.input.manifest, paths=asdict(paths), seed=snakemake.params.seed,
                   workers=resources["loader_workers"], threads=resources["train_threads"],
                   deterministic=snakemake.config["deterministic"], norm=read_json(norm) if norm else None,
                   provenance=provenance(snakemake.config, device), tracking=snakemake.config["tracking"],
                   tracking_dir=snakemake.params.tracking,
                   run=run_name(snakemake.wildcards.model, snakemake.wildcards.fold))


gpus = ModelConfig.from_dict(snakemake.params.model).gpus
with to_log(snakemake.log[0]):
    if gpus > 1:  # torchrun, each GPU its own process (the job's visible GPUs)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        print(f"{gpus} processes on {device}")
        launch(job(device), gpus, snakemake.params.job)
    else:
        with job_device() as device:
            print(f"device: {device}")
            run_job(job(device), device)
if "metrics" in snakemake.output.keys():  # rule train_inner; Snakemake sets __file__ to this script's path
    runpy.run_path(str(Path(__file__).with_name("score_inner.py")), init_globals={"snakemake": snakemake})
